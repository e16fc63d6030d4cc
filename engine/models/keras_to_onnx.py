"""The seed-era name of :mod:`streamface.engine.weights.keras_to_onnx` (moved there; this name stays importable).

``import streamface.engine.models.keras_to_onnx`` gives the same module object.
"""

import sys

from streamface.engine.weights import keras_to_onnx

sys.modules[__name__] = keras_to_onnx
