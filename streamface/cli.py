"""The ``streamface`` command line: one command per verb, no logic of its own."""

from __future__ import annotations

import click

from streamface import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="streamface")
def main() -> None:
    """Build face datasets from video streams.

    Streamface decodes videos and livestreams, keeps distinct sharp keyframes,
    detects, aligns and embeds faces into a Zarr store, clusters them into
    identities and helps a person review the clusters.
    """


if __name__ == "__main__":
    main()
