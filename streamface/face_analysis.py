"""The seed-era name of :mod:`streamface.ingest.analysis` (moved there; this name stays importable).

``import streamface.face_analysis`` gives the same module object.
"""

import sys

from streamface.ingest import analysis

sys.modules[__name__] = analysis
