"""The seed-era name of :mod:`streamface.ingest.ray_streams` (moved there; this name stays importable).

``import streamface.ray_ingest`` gives the same module object.
"""

import sys

from streamface.ingest import ray_streams

sys.modules[__name__] = ray_streams
