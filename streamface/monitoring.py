"""The seed-era name of :mod:`streamface.ops.monitoring` (moved there; this name stays importable).

``import streamface.monitoring`` gives the same module object.
"""

import sys

from streamface.ops import monitoring

sys.modules[__name__] = monitoring
