"""The seed-era name of :mod:`streamface.identify.hri` (moved there; this name stays importable).

``import streamface.hri`` gives the same module object.
"""

import sys

from streamface.identify import hri

sys.modules[__name__] = hri
