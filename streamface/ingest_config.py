"""The seed-era name of :mod:`streamface.ingest.config` (moved there; this name stays importable).

``import streamface.ingest_config`` gives the same module object.
"""

import sys

from streamface.ingest import config

sys.modules[__name__] = config
