"""The seed-era name of :mod:`streamface.engine.weights.onnx_rewrite` (moved there; this name stays importable).

``import streamface.engine.models.onnx_rewrite`` gives the same module object.
"""

import sys

from streamface.engine.weights import onnx_rewrite

sys.modules[__name__] = onnx_rewrite
