"""Streamface: build face datasets from video streams.

The house, by verb (each folder imports only the ones below it; ``.importlinter``):

- :mod:`streamface.cli`: the ``streamface`` command, one module per group of commands;
- :mod:`streamface.evaluate` (metrics, evaluation stages, calibration) and
  :mod:`streamface.review` (FiftyOne);
- :mod:`streamface.ingest`: capture, keyframes, extraction, analysis, ``run``, ``ingest``;
- :mod:`streamface.identify`: features, tracks, clustering, identities, the retrieval index;
- :mod:`streamface.ops`: telemetry, monitoring, logs, memory settings, the Ray pool;
- :mod:`streamface.store` (the on-disk data model) and :mod:`streamface.engine` (decoding,
  models, backends), over the C kernels of :mod:`streamface.kernels`.

The seed's module names (``streamface.stream_capture``, ``streamface.face_extraction``,
...) stay importable: each is the moved module itself under its old name.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamface")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
