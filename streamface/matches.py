"""The seed-era name of :mod:`streamface.identify.tracks` (moved there; this name stays importable).

``import streamface.matches`` gives the same module object.
"""

import sys

from streamface.identify import tracks

sys.modules[__name__] = tracks
