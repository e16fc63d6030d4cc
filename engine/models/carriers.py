"""The seed-era name of :mod:`streamface.engine.weights.carriers` (moved there; this name stays importable).

``import streamface.engine.models.carriers`` gives the same module object.
"""

import sys

from streamface.engine.weights import carriers

sys.modules[__name__] = carriers
