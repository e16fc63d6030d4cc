"""The seed-era name of :mod:`streamface.evaluate.annotation_evaluation` (moved there; this name stays importable).

``import streamface.annotation_evaluation`` gives the same module object.
"""

import sys

from streamface.evaluate import annotation_evaluation

sys.modules[__name__] = annotation_evaluation
