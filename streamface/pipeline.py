"""The seed-era name of :mod:`streamface.ingest.run` (moved there; this name stays importable).

``import streamface.pipeline`` gives the same module object.
"""

import sys

from streamface.ingest import run

sys.modules[__name__] = run
