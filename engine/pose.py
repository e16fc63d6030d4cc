"""Head pose (yaw, pitch, roll in degrees) from the 5 landmarks, without a model.

The 5 points are fitted by a generic 3-D face (the ArcFace template's layout with the
nose tip in front of the eye/mouth plane) under weak perspective: ``image = A @ X + t``
with ``A`` 2x3, by least squares. The rows of ``A``, made orthonormal, are the first
two rows of the head's rotation; the angles follow from it. It is the default pose
because it needs no weights (the seed's WHENet has no stated licence); it is coarse
(a few degrees near frontal, unreliable near profile, where yaw saturates at +-90), and
meant for filtering and attributes, not measurement.

Conventions (image axes: x right, y down):
- yaw > 0: the face turns towards the image's left (the nose moves left of the eyes'
  midpoint; the person turns to their right) -- the sign of the seed's WHENet poses, so
  stored poses compare with the seed's annotations (yaw correlation 0.97 on its 37 faces);
- pitch > 0: the face tilts up (the nose moves towards the eyes);
- roll > 0: the face rotates clockwise in the image (the right-hand eye drops).
"""

from __future__ import annotations

import numpy as np

#: Generic face, template units (the ArcFace 112 template centred on its eye/mouth
#: centroid; y down, z towards the camera). The nose tip's depth (16 units, ~0.45 of the
#: eye distance) is an anthropometric average.
FACE_MODEL_3D = np.array([
    [-17.62, -20.05, 0.0],   # left eye (image left)
    [17.62, -20.05, 0.0],    # right eye
    [0.0, 0.18, 16.0],       # nose tip
    [-14.59, 20.61, 2.0],    # mouth left
    [14.59, 20.61, 2.0],     # mouth right
], dtype=np.float64)

POSE_NAMES = ("yaw", "pitch", "roll")


def _rotation(a: np.ndarray) -> np.ndarray:
    """Nearest rotation whose first two rows span ``a``'s rows (2x3)."""
    r1 = a[0] / max(np.linalg.norm(a[0]), 1e-12)
    r2 = a[1] - np.dot(a[1], r1) * r1
    r2 /= max(np.linalg.norm(r2), 1e-12)
    return np.stack([r1, r2, np.cross(r1, r2)])


def head_pose(landmarks) -> np.ndarray:
    """Yaw, pitch and roll in degrees for each face.

    Parameters
    ----------
    landmarks : array-like (N, 5, 2) or (5, 2)
        Image pixels, in the detector's order (left eye, right eye, nose, mouth left,
        mouth right).

    Returns
    -------
    ndarray (N, 3) float32
        Columns :data:`POSE_NAMES`; a frontal face gives about (0, 0, 0).

    Examples
    --------
    >>> from streamface.kernels import ARCFACE_TEMPLATE          # doctest: +SKIP
    >>> head_pose(ARCFACE_TEMPLATE[None]).round(1)               # doctest: +SKIP
    array([[0., 0., 0.]], dtype=float32)
    """
    points = np.asarray(landmarks, np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must be (N, 5, 2), got shape {points.shape}")
    model = FACE_MODEL_3D - FACE_MODEL_3D.mean(axis=0)
    pinv = np.linalg.pinv(model)  # (3, 5): least squares for A in model @ A.T = image
    out = np.empty((points.shape[0], 3), np.float32)
    for i, pts in enumerate(points):
        centred = pts - pts.mean(axis=0)
        a = (pinv @ centred).T  # (2, 3)
        r = _rotation(a)
        # r maps head axes to camera axes, r = Rz(roll) @ Ry(yaw) @ Rx(pitch) in this
        # y-down frame; the signs below give the conventions of the module docstring.
        yaw = np.degrees(np.arcsin(np.clip(r[2, 0], -1.0, 1.0)))
        pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
        roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
        if abs(pitch) > 90.0:
            # The fit turned the face away from the camera (near profile the 5 points are
            # ambiguous): take the equivalent angles with |pitch| <= 90, yaw at the profile.
            yaw = np.clip(np.copysign(180.0, yaw) - yaw, -90.0, 90.0)
            pitch -= np.copysign(180.0, pitch)
            roll -= np.copysign(180.0, roll)
        out[i] = (yaw, pitch, roll)
    return out
