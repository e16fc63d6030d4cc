"""The seed-era name of :mod:`streamface.ingest.commit_queue` (moved there; this name stays importable).

``import streamface.commit_queue`` gives the same module object.
"""

import sys

from streamface.ingest import commit_queue

sys.modules[__name__] = commit_queue
