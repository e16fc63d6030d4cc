"""The seed-era name of :mod:`streamface.engine.weights.cache` (moved there; this name stays importable).

``import streamface.engine.models.cache`` gives the same module object.
"""

import sys

from streamface.engine.weights import cache

sys.modules[__name__] = cache
