"""Face geometry kernels: 5-point alignment and the seed's square face crop.

``align_faces`` produces the aligned crops recognisers expect (the ArcFace
112x112 template, SFace included); ``crop_faces`` produces the seed's loose
256x256 dataset crops (docs/stages.md §2). Both take every face of one frame in one
call and run their pixel loops in C without the GIL.
"""

from __future__ import annotations

import math

import numpy as np

from streamface.kernels import _geometry
from streamface.kernels._validate import as_image, as_points, as_size, as_threads

__all__ = ["ARCFACE_TEMPLATE", "align_faces", "crop_faces", "similarity_transform"]

#: The standard ArcFace 5-point template for a 112x112 crop, in pixels:
#: left eye, right eye, nose tip, left and right mouth corners.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_TEMPLATE.setflags(write=False)


def similarity_transform(src, dst) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    The Umeyama fit without reflection; in 2-D it has a closed form, identical
    to ``cv2.estimateAffinePartial2D`` when every point is an inlier.

    Parameters
    ----------
    src : array-like, shape (K, 2) or (N, K, 2)
        Source points (x, y), e.g. detected landmarks in frame pixels, K >= 2.
    dst : array-like, shape (K, 2)
        Destination points, e.g. a template in output pixels.

    Returns
    -------
    numpy.ndarray of float64, shape (2, 3) or (N, 2, 3)
        ``[[a, -b, tx], [b, a, ty]]`` with ``dst ≈ M @ [x, y, 1]``. Where
        ``src`` has no spread (all points equal) or holds a non-finite value no
        similarity exists, and that matrix is all zeros.

    Raises
    ------
    ValueError
        If the shapes do not match or a value is not a real number.

    Examples
    --------
    >>> m = similarity_transform([[0, 0], [1, 0]], [[0, 0], [0, 2]])
    >>> np.round(m, 6).tolist()
    [[0.0, -2.0, 0.0], [2.0, 0.0, 0.0]]
    """
    dst = as_points(dst, "dst", ndim=2)
    single = np.ndim(src) == 2
    src = as_points(np.asarray(src)[None] if single else src, "src", ndim=3)
    if src.shape[1:] != dst.shape or dst.shape[0] < 2:
        raise ValueError(
            f"src must be (K, 2) or (N, K, 2) matching dst (K, 2) with K >= 2, "
            f"got src {src.shape[-2:]} and dst {dst.shape}"
        )
    out = np.zeros((src.shape[0], 2, 3), dtype=np.float64)
    _geometry.similarity_transforms(src, dst, out)
    return out[0] if single else out


def align_faces(image, landmarks, size: int = 112, out=None, *, template=None,
                threads: int | None = None) -> np.ndarray:
    """Warp every face of one frame onto the 5-point template (ArcFace alignment).

    For each face, the least-squares similarity from its landmarks to the
    template (see `similarity_transform`) is inverted and the output is
    sampled bilinearly from ``image``; pixels that map outside the frame are 0.
    The arithmetic is OpenCV's ``warpAffine`` (INTER_LINEAR, BORDER_CONSTANT),
    so the result matches ``cv2.warpAffine(image, M, (size, size))`` for the
    same matrix.

    Parameters
    ----------
    image : numpy.ndarray of uint8, shape (H, W), (H, W, 1) or (H, W, 3)
        The frame; the channel order is kept.
    landmarks : array-like of float, shape (N, 5, 2)
        Per face: left eye, right eye, nose, left and right mouth corners, (x, y)
        in frame pixels. N = 0 gives an empty result.
    size : int, default 112
        Side of the square output; the template is scaled by ``size / 112``.
    out : numpy.ndarray of uint8, optional
        C-contiguous batch of shape (>= N, size, size, C) ((>= N, size, size) for
        a 2-D image) to write into, e.g. a recogniser's preallocated input.
    template : array-like of float, shape (K, 2), optional
        Destination points in output pixels, replacing the scaled ArcFace
        template (then ``landmarks`` is (N, K, 2)); e.g. a dlib-style chip.
    threads : int, optional
        OpenMP threads; default: OpenMP's default (``OMP_NUM_THREADS`` or all cores).

    Returns
    -------
    numpy.ndarray of uint8, shape (N, size, size, C) or (N, size, size)
        The aligned faces; a view of ``out[:N]`` when ``out`` is given. A face
        whose landmarks define no similarity (all equal, non-finite) is all zeros.

    Raises
    ------
    ValueError
        For a wrong dtype or shape of ``image``, ``landmarks``, ``template`` or
        ``out``, an empty image or a non-positive ``size``.

    Notes
    -----
    On the seed's 37 faces the result differs from
    ``cv2.estimateAffinePartial2D(landmarks, template, ransacReprojThreshold=1e6)``
    + ``cv2.warpAffine`` by 0.0002 grey levels on average (OpenCV refines the fit
    iteratively, the matrices agree to 1e-3), and is identical for the same
    matrix. OpenCV's default RANSAC and its LMEDS fit drop landmarks as
    outliers, which is not the least-squares alignment: on the same faces they
    land 17.5 and 3.7 grey levels away on average.

    Examples
    --------
    >>> frame = np.zeros((480, 640, 3), np.uint8)
    >>> align_faces(frame, ARCFACE_TEMPLATE[None] * 2 + 100).shape
    (1, 112, 112, 3)
    """
    image = as_image(image, "image")
    size = _positive_int(size, "size")
    if template is None:
        template = ARCFACE_TEMPLATE * (size / 112.0)
    template = as_points(template, "template", ndim=2)
    if template.shape[0] < 2:
        raise ValueError(f"template must have at least 2 points, got shape {template.shape}")
    landmarks = as_points(landmarks, "landmarks", ndim=3)
    if landmarks.shape[1:] != template.shape:
        raise ValueError(
            f"landmarks must have shape (N, {template.shape[0]}, 2), got {landmarks.shape}"
        )
    planar = image.reshape(image.shape[0], image.shape[1], -1)
    n, channels = landmarks.shape[0], planar.shape[2]
    shape = (n, size, size) + ((channels,) if image.ndim == 3 else ())
    result = _output_batch(out, shape)
    _geometry.align(planar, landmarks, template, result.reshape(n, size, size, channels),
                    as_threads(threads, _geometry.default_threads()))
    return result


def crop_faces(image, boxes, margin: float = 1.0, padding: float = 0.5, size=256, *,
               threads: int | None = None) -> list[np.ndarray]:
    """The seed's loose face crops: a square around each box, shrunk to fit ``size``.

    Follows docs/stages.md §2: the square has side ``(1 + margin) * max(w, h)``
    and is centred on the box (seed integer arithmetic: centre ``x + w // 2``,
    half side ``int((1 + margin) * max(w, h) / 2)``). The frame is thought
    zero-padded by ``padding`` times its width/height on each side: the square
    is cut at that padded border, like the seed's slice of its padded frame
    (with the default padding this only happens for faces larger than half
    the frame), and reads zeros beyond the frame. The crop is then shrunk to fit
    ``size`` keeping its aspect ratio, never enlarged (Pillow's ``thumbnail``
    sizes and Lanczos filter, in C): a 92x126 box gives 252x252, larger ones
    256x256.

    Parameters
    ----------
    image : numpy.ndarray of uint8, shape (H, W), (H, W, 1) or (H, W, 3)
        The frame.
    boxes : array-like, shape (N, 4)
        Boxes (x, y, w, h) in frame pixels, rounded to whole pixels; they may
        reach beyond the frame. N = 0 gives an empty list.
    margin : float, default 1.0
        Context around the box, as a fraction of its larger side.
    padding : float, default 0.5
        Zero padding of the frame, as a fraction of its size, that limits the crop.
    size : int or (int, int), default 256
        Largest output side, or the (width, height) bound.
    threads : int, optional
        OpenMP threads; default: OpenMP's default.

    Returns
    -------
    list of numpy.ndarray of uint8, shape (h_i, w_i, C) or (h_i, w_i)
        One crop per box. A box whose square lies wholly beyond the padded frame
        gives an all-zero square of the uncut size.

    Raises
    ------
    ValueError
        For a wrong ``image``, ``boxes`` not (N, 4) finite numbers, a negative
        box size, or a negative ``margin`` or ``padding``.

    Notes
    -----
    Pillow's ``thumbnail`` first box-reduces crops more than twice the target
    (reducing_gap 2) before its Lanczos pass; this kernel does the single,
    exact Lanczos pass. On the seed's 37 faces the two differ only for the two
    crops over 1024 px (mean 0.3 grey level); the others match the seed's PNGs
    exactly. The seed also moved boxes with x < 0 or y < 0 to 0 before centring;
    here the square stays centred on the box.
    """
    image = as_image(image, "image")
    if np.ndim(size) == 0:
        bound_w = bound_h = _positive_int(size, "size")
    else:
        bound_w, bound_h = as_size(size, "size")
    boxes = _as_boxes(boxes)
    margin = _non_negative(margin, "margin")
    padding = _non_negative(padding, "padding")
    planar = image.reshape(image.shape[0], image.shape[1], -1)
    threads = as_threads(threads, _geometry.default_threads())
    crops = []
    for box in boxes:
        x0, y0, win_w, win_h = _crop_window(box, planar.shape, margin, padding)
        out_w, out_h = _thumbnail_size(win_w, win_h, bound_w, bound_h)
        crop = np.zeros((out_h, out_w, planar.shape[2]), dtype=np.uint8)
        if _overlaps_frame(x0, y0, win_w, win_h, planar.shape):
            _geometry.shrink_window(planar, x0, y0, win_w, win_h, crop, threads)
        crops.append(crop if image.ndim == 3 else crop[:, :, 0])
    return crops


def _crop_window(box, shape, margin: float, padding: float) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of a face's crop in frame pixels (seed arithmetic)."""
    x, y, w, h = (int(v) for v in box)
    half = max(1, int((1 + margin) * max(w, h) / 2))
    cx, cy = x + w // 2, y + h // 2
    pad_x, pad_y = int(padding * shape[1]), int(padding * shape[0])
    x0, x1 = max(cx - half, -pad_x), min(cx + half, shape[1] + pad_x)
    y0, y1 = max(cy - half, -pad_y), min(cy + half, shape[0] + pad_y)
    if x1 <= x0 or y1 <= y0:
        # Nothing of the padded frame is inside: keep the full (all-zero) square.
        return cx - half, cy - half, 2 * half, 2 * half
    return x0, y0, x1 - x0, y1 - y0


def _overlaps_frame(x0: int, y0: int, width: int, height: int, shape) -> bool:
    """Whether the window holds any frame pixel (otherwise the crop is all zeros)."""
    return x0 < shape[1] and x0 + width > 0 and y0 < shape[0] and y0 + height > 0


def _thumbnail_size(width: int, height: int, bound_w: int, bound_h: int) -> tuple[int, int]:
    """Pillow's ``thumbnail`` size: fit (bound_w, bound_h), keep the aspect, never enlarge."""
    if width <= bound_w and height <= bound_h:
        return width, height
    aspect = width / height
    # Of floor and ceil, Pillow keeps the size whose aspect is closest to the original.
    if bound_w / bound_h >= aspect:
        candidates = (math.floor(bound_h * aspect), math.ceil(bound_h * aspect))
        out_w = min(candidates, key=lambda n: abs(aspect - n / bound_h))
        return max(out_w, 1), bound_h
    candidates = (math.floor(bound_w / aspect), math.ceil(bound_w / aspect))
    out_h = min(candidates, key=lambda n: 0 if n == 0 else abs(aspect - bound_w / n))
    return bound_w, max(out_h, 1)


def _as_boxes(boxes) -> np.ndarray:
    """``boxes`` as an (N, 4) int64 array of whole pixels (x, y, w, h)."""
    boxes = as_points(boxes, "boxes", ndim=2, width=4, finite=True)
    if np.any(boxes[:, 2:] < 0):
        raise ValueError("boxes must have non-negative width and height")
    if boxes.size and np.abs(boxes).max() > 2**31:
        raise ValueError("boxes hold coordinates beyond any frame (|value| > 2**31)")
    return np.floor(boxes + 0.5).astype(np.int64)


def _output_batch(out, shape: tuple[int, ...]) -> np.ndarray:
    """A fresh uint8 array of ``shape``, or the first ``shape[0]`` items of ``out``."""
    if out is None:
        return np.empty(shape, dtype=np.uint8)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8:
        raise ValueError("out must be a numpy uint8 array")
    if out.ndim != len(shape) or out.shape[1:] != shape[1:] or out.shape[0] < shape[0]:
        wanted = ("N>=" + str(shape[0]),) + shape[1:]
        raise ValueError(f"out must have shape ({', '.join(map(str, wanted))}), got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    return out[: shape[0]]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _non_negative(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value
