"""YuNet (OpenCV Zoo, 2023mar): fast anchor-free face detector with 5 landmarks.

Network input: BGR 0..255, no normalisation, height and width multiples of 32. For each
stride ``s`` in (8, 16, 32) the model gives, per cell (row, col) of the ``H/s x W/s``
grid: ``cls_s`` and ``obj_s`` (score = sqrt(cls * obj)), ``bbox_s`` (cx = (col + dx) * s,
cy = (row + dy) * s, w = exp(dw) * s, h = exp(dh) * s) and ``kps_s`` (x = (col + kx) * s,
y = (row + ky) * s for 5 points). Candidates above the score threshold go through NMS
(IoU 0.3), as in OpenCV's ``FaceDetectorYN``.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.models.detector import Candidates, LetterboxDetector

STRIDES = (8, 16, 32)


class YuNet(LetterboxDetector):
    """Batched YuNet detector.

    An instance reuses its input buffers from call to call: use one per thread.

    Parameters
    ----------
    engine : InferenceEngine
        Runs the prepared YuNet graph (symbolic batch, height and width).
    spec : ModelSpec, default the registry's ``yunet``

    Examples
    --------
    >>> from streamface.engine import load_detector
    >>> detector = load_detector("yunet", device="cpu")            # doctest: +SKIP
    >>> [faces] = detector.detect([frame_rgb])                      # doctest: +SKIP
    >>> faces.boxes.shape, faces.landmarks.shape                    # doctest: +SKIP
    ((3, 4), (3, 5, 2))
    """

    #: Calibrated: the output of ``streamface calibrate ../shared/data/skynews
    #: ../shared/data/identities/johns ../shared/data/identities/orl --what detector
    #: --detector yunet`` (target recall 0.95, the rule of
    #: :func:`streamface.evaluate.calibration.detector_threshold`): the highest 0.01 step keeping
    #: recall >= 0.95 on every public set. Recall at 0.86: skynews 36/37 seed faces (IoU
    #: 0.5; the limiting set), johns 55/55 photos, orl 399/400 photos. YuNet scores real
    #: faces lower than RetinaFace does, so the seed's 0.95 would keep almost none.
    DEFAULT_CONF_THRESHOLD = 0.86
    DEFAULT_NMS_THRESHOLD = 0.3
    default_spec = "yunet"

    def prepare(self, *, input_size: int = 640, conf_threshold: float = DEFAULT_CONF_THRESHOLD,
                nms_threshold: float = DEFAULT_NMS_THRESHOLD, top_k: int = 5000,
                max_batch: int | None = None,
                preprocess_threads: int | None = 1) -> YuNet:
        """Set the detection options (all validated here).

        Parameters
        ----------
        input_size : int, default 640
            The longest frame side is scaled to this many network pixels; multiple of 32.
        conf_threshold : float, default 0.86
            Keep faces scoring at least this (YuNet's own scale; see the class note).
        nms_threshold : float, default 0.3
            IoU above which the lower-scoring of two boxes is dropped.
        top_k : int, default 5000
            Candidates per frame considered by NMS.
        max_batch : int or None, default None
            Frames per inference call; ``None``: 1 on the CPU, 8 on CUDA (see
            :func:`~streamface.engine.models.frame_batch.default_detector_batch`).
        preprocess_threads : int or None, default 1
            Threads of the letterbox kernel (see :class:`FrameBatch`; ``None``: all cores).
        """
        return self._configure(input_size, conf_threshold, nms_threshold, top_k, max_batch,
                               preprocess_threads)

    def _make_anchors(self, height: int, width: int) -> list[np.ndarray]:
        """Per stride, the (col, row) of every anchor, in the model's output order."""
        grids = []
        for s in STRIDES:
            rows, cols = np.mgrid[0:height // s, 0:width // s]
            grids.append(np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float32))
        return grids

    def _decode_batch(self, outputs, shape) -> list[Candidates]:
        named = dict(zip(self.engine.output_names, outputs))
        t = self.conf_threshold
        # cls and obj are sigmoid outputs in [0, 1]: sqrt(cls * obj) >= t only where the
        # raw product reaches about t^2, so the exact score is computed on those cells only.
        near = t * t * (1 - 1e-5)
        parts: list[list[tuple]] = [[] for _ in range(shape[0])]
        for s, grid in zip(STRIDES, self._anchors(*shape[2:])):
            cls, obj = named[f"cls_{s}"][..., 0], named[f"obj_{s}"][..., 0]
            if t > 0:
                frame, cell = np.nonzero(cls * obj >= near)
            else:
                frame, cell = np.indices(cls.shape).reshape(2, -1)
            # min(max(x, 0), 1) is np.clip(x, 0, 1) without its Python-level overhead.
            score = np.sqrt(np.minimum(np.maximum(cls[frame, cell], 0.0), 1.0)
                            * np.minimum(np.maximum(obj[frame, cell], 0.0), 1.0))
            exact = score >= t
            frame, cell, score = frame[exact], cell[exact], score[exact]
            if frame.size == 0:
                continue
            xy = grid[cell]
            bbox = named[f"bbox_{s}"][frame, cell]
            kps = named[f"kps_{s}"][frame, cell].reshape(-1, 5, 2)
            centre = (xy + bbox[:, :2]) * s
            size = np.exp(bbox[:, 2:4]) * s
            boxes = np.concatenate([centre - size / 2, size], axis=1)
            points = (xy[:, None, :] + kps) * s
            for i, found in enumerate(self._per_frame(frame, shape[0], boxes, points, score)):
                if found is not None:
                    parts[i].append(found)
        return self._join(parts)
