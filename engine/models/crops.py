"""The face crop each model expects, from the 5 landmarks.

Every recognizer and attribute head is trained on its own crop. A :class:`FaceCrop`
states it as data (registry entries carry one): a 5-point template in unit coordinates,
a padding around it and an output size; the destination points are
``(padding + T) / (1 + 2 * padding) * size``, the formula of dlib's
``get_face_chip_details`` (padding 0.2 for dlib's age/gender networks, 0.25 for FairFace).
The crop is the least-squares similarity from the landmarks to those points
(``kernels.align_faces`` with ``template=``), so it is upright and scaled the same for
every face: an unaligned crop gives unstable answers.

Head pose is the exception: de-rotating the face would erase the roll it should
measure, so :func:`upright_windows` gives axis-aligned square windows instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamface import kernels
from streamface.kernels.geometry import similarity_transform

#: dlib's mean face at the 5 points we detect (left eye, right eye, nose, mouth left,
#: mouth right), in units of the chip before padding (see docs/MODELS.md).
DLIB_TEMPLATE = np.array([(0.2273, 0.2214), (0.7528, 0.2212), (0.4901, 0.5156),
                          (0.2541, 0.7802), (0.7261, 0.7802)], dtype=np.float64)
DLIB_TEMPLATE.setflags(write=False)

#: Names of the templates a :class:`FaceCrop` can use.
TEMPLATES = ("arcface", "dlib")


def _unit_template(name: str) -> np.ndarray:
    if name == "arcface":
        return np.asarray(kernels.ARCFACE_TEMPLATE, np.float64) / 112.0
    if name == "dlib":
        return DLIB_TEMPLATE
    raise ValueError(f"template must be one of {', '.join(map(repr, TEMPLATES))}, got {name!r}")


@dataclass(frozen=True)
class FaceCrop:
    """A square crop aligned on the 5 landmarks.

    Parameters
    ----------
    template : {"arcface", "dlib"}
        ``"arcface"``: the standard ArcFace 112 template (recognizers); ``"dlib"``: dlib's
        5-point mean face (dlib's face chips).
    size : int
        Output side in pixels.
    padding : float, default 0.0
        Context around the template, as a fraction of the template's extent per side.
    """

    template: str
    size: int
    padding: float = 0.0

    def points(self) -> np.ndarray:
        """(5, 2) float64 destination points in output pixels."""
        unit = _unit_template(self.template)
        return (self.padding + unit) / (1.0 + 2.0 * self.padding) * self.size


def aligned_crops(frame: np.ndarray, landmarks: np.ndarray, crop: FaceCrop,
                  out: np.ndarray | None = None, threads: int | None = 1) -> np.ndarray:
    """``crop`` of every face of ``frame``: (N, size, size, 3) uint8, written into ``out``."""
    return kernels.align_faces(frame, np.ascontiguousarray(landmarks, np.float32),
                               size=crop.size, out=out, template=crop.points(),
                               threads=threads)


def check_frame(frame) -> None:
    """Raise ``ValueError`` unless ``frame`` is an (H, W, 3) uint8 RGB array."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
            or frame.shape[2] != 3:
        raise ValueError("frame must be an (H, W, 3) uint8 RGB array")


def check_landmarks(landmarks) -> np.ndarray:
    """``landmarks`` as an (N, 5, 2) float32 array (``ValueError`` for another shape)."""
    points = np.asarray(landmarks, np.float32)
    if points.size == 0:
        return np.zeros((0, 5, 2), np.float32)
    if points.ndim != 3 or points.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must be (N, 5, 2), got shape {points.shape}")
    return points


def check_crops(crops, size: int, name: str = "crops") -> np.ndarray:
    """``crops`` (an (N, size, size, 3) uint8 RGB array or a list of (size, size, 3)
    arrays) as one array; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(crops, (list, tuple)):
        crops = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
    if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8 or crops.ndim != 4 \
            or crops.shape[1:] != (size, size, 3):
        raise ValueError(f"{name} must be (N, {size}, {size}, 3) uint8 RGB, got "
                         f"{getattr(crops, 'shape', None)}")
    return crops


def batched_rows(run, items: np.ndarray, max_batch: int, width: int, cut=None,
                 buffer: np.ndarray | None = None) -> np.ndarray:
    """``run`` over ``items``, ``max_batch`` at a time: its rows stacked, (N, width) float32.

    Without ``cut``, ``items`` are crops and are run as they are. With ``cut``, they are
    what crops are cut from (landmarks, windows): ``cut(chunk, out)`` writes a chunk's
    crops into ``out``, the first rows of the reused uint8 ``buffer``, which is run.
    """
    out = np.empty((items.shape[0], width), np.float32)
    for start in range(0, items.shape[0], max_batch):
        chunk = items[start:start + max_batch]
        n = chunk.shape[0]
        if cut is not None:
            cut(chunk, buffer[:n])
            chunk = buffer[:n]
        out[start:start + n] = run(chunk)
    return out


def upright_windows(landmarks: np.ndarray, scale: float = 1.0,
                    offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Axis-aligned square windows (x, y, side) around faces, from their 5 landmarks.

    The window is the ArcFace crop's footprint with the rotation left in the image: its
    centre and side come from the similarity fit of the landmarks to the ArcFace
    template, so they do not depend on the face's roll. ``scale`` multiplies the side;
    ``offset`` moves the centre by fractions of the side (x right, y down).
    """
    points = np.asarray(landmarks, np.float64)
    template = np.asarray(kernels.ARCFACE_TEMPLATE, np.float64)
    matrices = similarity_transform(points, template)  # frame -> 112 crop
    out = np.zeros((points.shape[0], 3), np.float64)
    for i, m in enumerate(matrices.reshape(-1, 2, 3)):
        a, b = m[0, 0], m[1, 0]
        s = float(np.hypot(a, b))
        if s == 0.0:
            continue  # degenerate landmarks: an empty window reads black
        inverse = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
        centre = inverse @ np.array([56.0, 56.0, 1.0])
        side = 112.0 / s * scale
        cx, cy = centre[0] + offset[0] * side, centre[1] + offset[1] * side
        out[i] = (cx - side / 2, cy - side / 2, side)
    return out


def window_crops(frame: np.ndarray, windows: np.ndarray, size: int,
                 out: np.ndarray | None = None, threads: int | None = 1) -> np.ndarray:
    """Resample square windows (x, y, side) of ``frame`` to (N, size, size, 3) uint8.

    Uses the alignment kernel with two corner points, i.e. a pure scale and shift
    (bilinear, zero outside the frame).
    """
    windows = np.asarray(windows, np.float64).reshape(-1, 3)
    corners = np.stack([windows[:, :2], windows[:, :2] + np.stack(
        [windows[:, 2], np.zeros(len(windows))], axis=1)], axis=1)
    template = np.array([[0.0, 0.0], [float(size), 0.0]])
    return kernels.align_faces(frame, np.ascontiguousarray(corners, np.float32), size=size,
                               out=out, template=template, threads=threads)
