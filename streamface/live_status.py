"""The seed-era name of :mod:`streamface.ops.live_status` (moved there; this name stays importable).

``import streamface.live_status`` gives the same module object.
"""

import sys

from streamface.ops import live_status

sys.modules[__name__] = live_status
