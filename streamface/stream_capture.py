"""The seed-era name of :mod:`streamface.ingest.capture` (moved there; this name stays importable).

``import streamface.stream_capture`` gives the same module object.
"""

import sys

from streamface.ingest import capture

sys.modules[__name__] = capture
