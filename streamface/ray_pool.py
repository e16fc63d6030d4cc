"""The seed-era name of :mod:`streamface.ops.ray_pool` (moved there; this name stays importable).

``import streamface.ray_pool`` gives the same module object.
"""

import sys

from streamface.ops import ray_pool

sys.modules[__name__] = ray_pool
