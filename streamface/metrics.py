"""The seed-era name of :mod:`streamface.evaluate.metrics` (moved there; this name stays importable).

``import streamface.metrics`` gives the same module object.
"""

import sys

from streamface.evaluate import metrics

sys.modules[__name__] = metrics
