"""The seed-era name of :mod:`streamface.review.fiftyone_dataset` (moved there; this name stays importable).

``import streamface.fiftyone_dataset`` gives the same module object.
"""

import sys

from streamface.review import fiftyone_dataset

sys.modules[__name__] = fiftyone_dataset
