"""The seed-era name of :mod:`streamface.ingest.extraction` (moved there; this name stays importable).

``import streamface.face_extraction`` gives the same module object.
"""

import sys

from streamface.ingest import extraction

sys.modules[__name__] = extraction
