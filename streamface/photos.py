"""The seed-era name of :mod:`streamface.ingest.photos` (moved there; this name stays importable).

``import streamface.photos`` gives the same module object.
"""

import sys

from streamface.ingest import photos

sys.modules[__name__] = photos
