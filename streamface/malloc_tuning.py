"""The seed-era name of :mod:`streamface.ops.malloc_tuning` (moved there; this name stays importable).

``import streamface.malloc_tuning`` gives the same module object.
"""

import sys

from streamface.ops import malloc_tuning

sys.modules[__name__] = malloc_tuning
