"""The seed-era name of :mod:`streamface.identify.identities` (moved there; this name stays importable).

``import streamface.identities`` gives the same module object.
"""

import sys

from streamface.identify import identities

sys.modules[__name__] = identities
