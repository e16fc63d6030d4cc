"""The seed-era name of :mod:`streamface.review.fiftyone_annotation` (moved there; this name stays importable).

``import streamface.fiftyone_annotation`` gives the same module object.
"""

import sys

from streamface.review import fiftyone_annotation

sys.modules[__name__] = fiftyone_annotation
