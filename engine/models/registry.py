"""The seed-era name of :mod:`streamface.engine.weights.registry` (moved there; this name stays importable).

``import streamface.engine.models.registry`` gives the same module object.
"""

import sys

from streamface.engine.weights import registry

sys.modules[__name__] = registry
