"""The seed-era name of :mod:`streamface.engine.weights.listing` (moved there; this name stays importable).

``import streamface.engine.models.listing`` gives the same module object.
"""

import sys

from streamface.engine.weights import listing

sys.modules[__name__] = listing
