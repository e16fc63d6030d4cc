"""Streamface: build face datasets from video streams.

The stages keep the seed's module and class names (``streamface.stream_capture``,
``streamface.face_extraction``, ...); the runtime lives in ``streamface.engine``,
the C kernels in ``streamface.kernels`` and the on-disk data model in
``streamface.store``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamface")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
