"""The seed-era name of :mod:`streamface.review.decisions` (moved there; this name stays importable).

``import streamface.review_decisions`` gives the same module object.
"""

import sys

from streamface.review import decisions

sys.modules[__name__] = decisions
