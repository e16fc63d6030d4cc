"""The seed-era name of :mod:`streamface.ops.telemetry` (moved there; this name stays importable).

``import streamface.telemetry`` gives the same module object.
"""

import sys

from streamface.ops import telemetry

sys.modules[__name__] = telemetry
