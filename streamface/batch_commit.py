"""The seed-era name of :mod:`streamface.ingest.batch_commit` (moved there; this name stays importable).

``import streamface.batch_commit`` gives the same module object.
"""

import sys

from streamface.ingest import batch_commit

sys.modules[__name__] = batch_commit
