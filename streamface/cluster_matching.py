"""The seed-era name of :mod:`streamface.identify.cluster_matching` (moved there; this name stays importable).

``import streamface.cluster_matching`` gives the same module object.
"""

import sys

from streamface.identify import cluster_matching

sys.modules[__name__] = cluster_matching
