"""The seed-era name of :mod:`streamface.review.fiftyone_database` (moved there; this name stays importable).

``import streamface.fiftyone_database`` gives the same module object.
"""

import sys

from streamface.review import fiftyone_database

sys.modules[__name__] = fiftyone_database
