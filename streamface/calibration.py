"""The seed-era name of :mod:`streamface.evaluate.calibration` (moved there; this name stays importable).

``import streamface.calibration`` gives the same module object.
"""

import sys

from streamface.evaluate import calibration

sys.modules[__name__] = calibration
