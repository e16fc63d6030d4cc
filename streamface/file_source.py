"""The seed-era name of :mod:`streamface.ingest.file_source` (moved there; this name stays importable).

``import streamface.file_source`` gives the same module object.
"""

import sys

from streamface.ingest import file_source

sys.modules[__name__] = file_source
