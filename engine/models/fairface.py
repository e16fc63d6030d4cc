"""FairFace (ResNet-34, 7 races): race, gender and age bins from one network.

No weights are published on PyPI: users export the FairFace ``res34_fair_align_multi_7``
PyTorch model to ONNX (input N x 3 x 224 x 224, output N x 18) and give its path
(``streamface models prepare fairface --model-path FILE`` or ``path=``). As FairFace
does: a dlib face chip (padding 0.25) at 224, ImageNet normalisation; the 18 logits are
7 race, 2 gender (Male, Female) and 9 age bins (0-2 ... 70+), each group softmaxed.
The seed's ``race`` attribute and its 9 age bins come from this model.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.models.attribute_head import AttributeHead, rounded, softmax
from streamface.engine.weights.registry import REGISTRY, ModelSpec


class FairFace(AttributeHead):
    """:meth:`predict` gives (N, 18): per-group probabilities, columns ``group:class``.

    ``groups`` maps ``race``/``gender``/``age`` to their class names, in column order.
    """

    attribute = "race"

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        spec = spec if spec is not None else REGISTRY["fairface"]
        self.groups: dict[str, tuple[str, ...]] = dict(spec.extra["groups"])
        self._slices = {}
        start = 0
        for group, names in self.groups.items():
            self._slices[group] = slice(start, start + len(names))
            start += len(names)
        super().__init__(engine, spec)
        self.classes = tuple(f"{g}:{c}" for g, names in self.groups.items() for c in names)

    def postprocess(self, outputs: list[np.ndarray]) -> np.ndarray:
        logits = np.asarray(outputs[0], np.float32)
        if logits.ndim != 2 or logits.shape[1] != len(self.classes):
            raise ValueError(f"FairFace output must be (N, {len(self.classes)}), got "
                             f"{logits.shape}")
        out = np.empty_like(logits)
        for part in self._slices.values():
            out[:, part] = softmax(logits[:, part], axis=1)
        return out

    def group(self, rows: np.ndarray, name: str) -> np.ndarray:
        """The columns of one group (``"race"``, ``"gender"`` or ``"age"``)."""
        return np.asarray(rows)[:, self._slices[name]]

    def seed_attributes(self, rows: np.ndarray) -> list[dict]:
        """``{"race": {...}, "gender": {"Male", "Female"}, "age": {9 bins}}`` per face."""
        rows = np.asarray(rows)
        return [{g: rounded(row[self._slices[g]], names) for g, names in self.groups.items()}
                for row in rows]
