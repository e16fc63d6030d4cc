"""The seed-era name of :mod:`streamface.identify.face_clustering` (moved there; this name stays importable).

``import streamface.face_clustering`` gives the same module object.
"""

import sys

from streamface.identify import face_clustering

sys.modules[__name__] = face_clustering
