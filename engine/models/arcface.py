"""ArcFace recognizers from InsightFace (R50/R100, e.g. buffalo_l ``w600k_r50.onnx``).

Their weights carry a non-commercial research licence and are not on PyPI: the user
supplies the ONNX file (``streamface models prepare arcface --model-path FILE`` puts it
in the cache with its checksum, or ``load_recognizer("arcface", path=FILE)``).

Input: the face aligned to the ArcFace 5-point template at 112x112, RGB,
``(x - 127.5) / 127.5``, NCHW; output: one embedding per face (512-D for InsightFace's
models; the width is read from the model), which we L2-normalise.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.errors import ModelError
from streamface.engine.weights.registry import REGISTRY, ModelSpec
from streamface.engine.models.sface import SFace, l2_normalize


class ArcFace(SFace):
    """Batched ArcFace recognizer: ``embed(frame, landmarks)`` and ``embed_aligned(crops)``.

    Same interface as :class:`SFace`; the input is normalised here, as InsightFace's
    graphs expect (their ``w600k_r50`` does not normalise itself).
    """

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        spec = spec if spec is not None else REGISTRY["arcface"]
        shape = engine.input_shapes.get(engine.input_names[0], ())
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise ModelError(f"ArcFace input must be (N, 3, 112, 112), the model declares "
                             f"{shape}")
        p = spec.preprocessing
        self._mean = np.asarray(p.mean, np.float32).reshape(1, 3, 1, 1)
        self._scale = np.asarray(p.scale, np.float32).reshape(1, 3, 1, 1)
        self._dim: int | None = None
        super().__init__(engine, spec)

    @property
    def dim(self) -> int:
        """Embedding width, read from the model's output on first use."""
        if self._dim is None:
            probe = np.zeros((1, 3, self.size, self.size), np.float32)
            (features,) = self.engine.run({self.engine.input_names[0]: probe})[:1]
            if features.ndim != 2:
                raise ModelError(f"ArcFace output must be (N, D), got {features.shape}")
            self._dim = int(features.shape[1])
        return self._dim

    def _run(self, aligned: np.ndarray) -> np.ndarray:
        n = aligned.shape[0]
        tensor = self._tensor[:n]
        np.copyto(tensor, aligned.transpose(0, 3, 1, 2), casting="unsafe")
        tensor -= self._mean
        tensor *= self._scale
        features = self.engine.run({self.engine.input_names[0]: tensor})[0]
        return l2_normalize(features.reshape(n, -1))
