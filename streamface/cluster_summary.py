"""The seed-era name of :mod:`streamface.identify.cluster_summary` (moved there; this name stays importable).

``import streamface.cluster_summary`` gives the same module object.
"""

import sys

from streamface.identify import cluster_summary

sys.modules[__name__] = cluster_summary
