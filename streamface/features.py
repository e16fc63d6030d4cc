"""The seed-era name of :mod:`streamface.identify.features` (moved there; this name stays importable).

``import streamface.features`` gives the same module object.
"""

import sys

from streamface.identify import features

sys.modules[__name__] = features
