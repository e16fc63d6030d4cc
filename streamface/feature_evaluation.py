"""The seed-era name of :mod:`streamface.evaluate.feature_evaluation` (moved there; this name stays importable).

``import streamface.feature_evaluation`` gives the same module object.
"""

import sys

from streamface.evaluate import feature_evaluation

sys.modules[__name__] = feature_evaluation
