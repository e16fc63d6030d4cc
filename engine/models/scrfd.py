"""SCRFD (InsightFace): anchor-based face detector with 5 landmarks, user-supplied file.

Weights (e.g. buffalo_l ``det_10g.onnx``) carry InsightFace's non-commercial licence and
are not on PyPI: ``streamface models prepare scrfd --model-path FILE`` or
``load_detector("scrfd", path=FILE)``.

Input: RGB, ``(x - 127.5) / 128``, NCHW, letterboxed at the top-left (as InsightFace
does); height and width multiples of 32 (or the model's fixed size). Outputs, in
InsightFace's order: scores for strides 8, 16, 32, then box distances for the same
strides, then (when present) landmark offsets. Each stride has 2 anchors per cell,
centred on the cell's top-left corner ``(col * s, row * s)``, listed row-major, anchor
fastest. Decode (``distance2bbox``/``distance2kps``): ``x1 = cx - d0 * s``,
``y1 = cy - d1 * s``, ``x2 = cx + d2 * s``, ``y2 = cy + d3 * s``; point k is
``(cx + k_2k * s, cy + k_2k+1 * s)``. Then NMS (IoU 0.4). Exports with a batch axis
give (N, A, k) outputs; older ones give (A, k) for one image.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.errors import ModelError
from streamface.engine.models.detector import Candidates, LetterboxDetector
from streamface.engine.weights.registry import REGISTRY, ModelSpec


def anchor_centres(height: int, width: int, stride: int, anchors: int) -> np.ndarray:
    """(H/s * W/s * anchors, 2) float32 anchor centres (x, y) in network pixels."""
    rows, cols = np.mgrid[0:height // stride, 0:width // stride]
    centres = np.stack([cols, rows], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, anchors, axis=0)


def distance_to_boxes(centres: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(A, 4) x1, y1, x2, y2 from centres (A, 2) and (A, 4) left/top/right/bottom distances."""
    return np.concatenate([centres - distances[:, :2], centres + distances[:, 2:4]], axis=1)


def distance_to_points(centres: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(A, K, 2) points from centres (A, 2) and (A, 2K) offsets."""
    return centres[:, None, :] + offsets.reshape(offsets.shape[0], -1, 2)


class SCRFD(LetterboxDetector):
    """Batched SCRFD detector; ``detect(frames)`` returns one ``Detections`` per frame
    (NaN landmarks from a model without landmark outputs).

    Parameters
    ----------
    engine : InferenceEngine
    spec : ModelSpec, default the registry's ``scrfd``
    """

    DEFAULT_CONF_THRESHOLD = 0.5
    DEFAULT_NMS_THRESHOLD = 0.4
    default_spec = "scrfd"

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        spec = spec if spec is not None else REGISTRY[self.default_spec]
        self.strides = tuple(spec.extra["strides"])
        self.anchors = int(spec.extra["anchors_per_cell"])
        count = len(engine.output_names)
        if count not in (2 * len(self.strides), 3 * len(self.strides)):
            raise ModelError(f"SCRFD has {2 * len(self.strides)} or {3 * len(self.strides)} "
                             f"outputs (scores, boxes[, landmarks] per stride); this model has "
                             f"{count}: {list(engine.output_names)}")
        self.has_landmarks = count == 3 * len(self.strides)
        shape = engine.input_shapes.get(engine.input_names[0], ())
        fixed = tuple(shape[2:4]) if len(shape) == 4 else ()
        self.fixed_size = fixed if len(fixed) == 2 and all(isinstance(d, int) and d > 0
                                                            for d in fixed) else None
        super().__init__(engine, spec)

    def prepare(self, *, input_size: int = 640, conf_threshold: float = DEFAULT_CONF_THRESHOLD,
                nms_threshold: float = DEFAULT_NMS_THRESHOLD, top_k: int = 5000,
                max_batch: int | None = None, preprocess_threads: int | None = 1) -> SCRFD:
        """Set the options; see :meth:`YuNet.prepare` (same meaning). A model exported with a
        fixed input size uses that size whatever ``input_size`` says."""
        return self._configure(input_size, conf_threshold, nms_threshold, top_k, max_batch,
                               preprocess_threads)

    def _make_anchors(self, height: int, width: int) -> list[np.ndarray]:
        return [anchor_centres(height, width, s, self.anchors) for s in self.strides]

    def _per_image(self, output: np.ndarray, i: int, n: int) -> np.ndarray:
        if output.ndim == 3:
            return output[i]
        if n != 1:
            raise ModelError("this SCRFD export has no batch axis; use max_batch=1")
        return output

    def _decode(self, outputs, i: int, shape) -> Candidates:
        n, _, height, width = shape
        k = len(self.strides)
        boxes, points, scores = [], [], []
        for j, (s, centres) in enumerate(zip(self.strides, self._anchors(height, width))):
            score = self._per_image(outputs[j], i, n).reshape(-1)
            keep = np.flatnonzero(score >= self.conf_threshold)
            if keep.size == 0:
                continue
            distances = self._per_image(outputs[k + j], i, n).reshape(-1, 4)[keep] * s
            corners = distance_to_boxes(centres[keep], distances)
            boxes.append(np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], 1))
            if self.has_landmarks:
                offsets = self._per_image(outputs[2 * k + j], i, n).reshape(-1, 10)[keep] * s
                points.append(distance_to_points(centres[keep], offsets))
            else:
                points.append(np.full((keep.size, 5, 2), np.nan, np.float32))
            scores.append(score[keep])
        if not scores:
            return None
        return np.concatenate(boxes), np.concatenate(points), np.concatenate(scores)
