"""The seed-era name of :mod:`streamface.engine.weights.calibration_file` (moved there; this name stays importable).

``import streamface.engine.models.calibration_file`` gives the same module object.
"""

import sys

from streamface.engine.weights import calibration_file

sys.modules[__name__] = calibration_file
