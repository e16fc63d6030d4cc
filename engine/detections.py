"""What a face detector returns, and the non-maximum suppression every detector shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Landmark order of every detector: left eye, right eye, nose, left and right mouth
#: corner, "left"/"right" as seen in the image (the seed's order).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame, in frame pixels, sorted by decreasing score.

    Attributes
    ----------
    boxes : ndarray, shape (N, 4), float32
        ``x, y, w, h`` (top-left corner, width, height).
    landmarks : ndarray, shape (N, 5, 2), float32
        ``x, y`` of the points in :data:`LANDMARK_NAMES` order.
    scores : ndarray, shape (N,), float32
        Detector confidence in [0, 1].
    """

    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32),
                   np.zeros((0,), np.float32))

    def select(self, keep) -> Detections:
        """The detections at ``keep`` (indices or a boolean mask)."""
        return Detections(self.boxes[keep], self.landmarks[keep], self.scores[keep])

    def relative_sizes(self, frame_shape: tuple[int, ...]) -> np.ndarray:
        """Box area over frame area, the seed's ``size_threshold`` measure (N,) float32."""
        height, width = frame_shape[:2]
        return (self.boxes[:, 2] * self.boxes[:, 3] / float(height * width)).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        top_k: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : ndarray, shape (N, 4)
        ``x, y, w, h``.
    scores : ndarray, shape (N,)
    iou_threshold : float
        A box is dropped when its IoU with a kept, higher-scoring box exceeds this.
    top_k : int or None
        Only the ``top_k`` highest-scoring boxes are considered.

    Returns
    -------
    ndarray of int64
        Indices of the kept boxes, by decreasing score.
    """
    order = np.argsort(-scores, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    if order.size == 0:
        return order.astype(np.int64)
    x1 = boxes[:, 0].astype(np.float64)
    y1 = boxes[:, 1].astype(np.float64)
    x2 = x1 + boxes[:, 2]
    y2 = y1 + boxes[:, 3]
    areas = np.maximum(boxes[:, 2], 0) * np.maximum(boxes[:, 3], 0)
    keep = []
    # np.maximum, not np.clip: this loop runs once per kept face of every frame, and
    # np.clip's Python-level overhead was most of its cost (same values, NaN included).
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0.0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0.0)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of ``x, y, w, h`` boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    w, h = np.clip(w, 0, None), np.clip(h, 0, None)
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
