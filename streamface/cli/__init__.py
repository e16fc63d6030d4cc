"""The ``streamface`` command line: one command per verb, no logic of its own.

Each group of commands lives in a module named for what it works on, and each command
parses its options, hands them to the library (``streamface.ingest.options`` builds the
stream stages) and prints the outcome:

- :mod:`~streamface.cli.stages`: ``run``, ``ingest``, ``capture``, ``extract``, ``analyze``
- :mod:`~streamface.cli.identify`: ``cluster``, ``match-clusters``, ``index build|query``
- :mod:`~streamface.cli.evaluate`: ``evaluate-features``, ``evaluate-clusters``,
  ``evaluate-annotations``, ``calibrate``
- :mod:`~streamface.cli.review`: ``annotate``
- :mod:`~streamface.cli.store`: ``info``, ``status``, ``export``
- :mod:`~streamface.cli.models`: ``models list|prepare|verify|fetch``

:mod:`~streamface.cli.options` holds the click options the stream commands share and
:mod:`~streamface.cli.common` the error, progress and exit-status helpers. Nothing in the
library imports this package.
"""

from __future__ import annotations

import click

from streamface import __version__
from streamface.cli import evaluate, identify, models, review, stages, store

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="streamface")
def main() -> None:
    """Build face datasets from video streams.

    Streamface decodes videos and livestreams, keeps distinct sharp keyframes,
    detects, aligns and embeds faces into a Zarr store, clusters them into
    identities and helps a person review the clusters.
    """


for command in (stages.run, stages.ingest, stages.capture, stages.extract, stages.analyze,
                identify.cluster, identify.match_clusters, identify.index_group,
                evaluate.evaluate_features, evaluate.evaluate_clusters, evaluate.evaluate_annotations,
                evaluate.calibrate, review.annotate, store.info, store.status, store.export, models.models):
    main.add_command(command)
