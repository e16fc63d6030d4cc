"""The seed-era name of :mod:`streamface.evaluate.plots` (moved there; this name stays importable).

``import streamface.plots`` gives the same module object.
"""

import sys

from streamface.evaluate import plots

sys.modules[__name__] = plots
