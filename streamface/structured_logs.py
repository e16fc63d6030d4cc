"""The seed-era name of :mod:`streamface.ops.structured_logs` (moved there; this name stays importable).

``import streamface.structured_logs`` gives the same module object.
"""

import sys

from streamface.ops import structured_logs

sys.modules[__name__] = structured_logs
