"""The seed-era name of :mod:`streamface.ingest.keyframes` (moved there; this name stays importable).

``import streamface.keyframes`` gives the same module object.
"""

import sys

from streamface.ingest import keyframes

sys.modules[__name__] = keyframes
