"""The seed-era name of :mod:`streamface.evaluate.cluster_evaluation` (moved there; this name stays importable).

``import streamface.cluster_evaluation`` gives the same module object.
"""

import sys

from streamface.evaluate import cluster_evaluation

sys.modules[__name__] = cluster_evaluation
