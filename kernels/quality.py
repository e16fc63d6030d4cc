"""Frame-quality scores of keyframe selection and face filtering, in C.

The scores are the seed's (docs/stages.md §1-2), so its thresholds keep their meaning:

- :func:`emptiness`: fraction of pixels that are not edges in ``Canny(gray, 0, 25)``;
  a keyframe is dropped if it is above 0.95.
- :func:`blur_score`: variance of ``Laplacian(GaussianBlur(gray, 3x3, 0.5), CV_64F,
  ksize=11)``; a keyframe is dropped below 50 (on the frame resized to 1280x720 and
  cropped 15% per side), an aligned face at or below 25 (no resize, no crop).
- :func:`frame_similarity`: ``1 - TM_SQDIFF_NORMED`` of the two gray frames resized
  to 1280x720; a keyframe is dropped above 0.9.

Every function takes uint8 images, RGB ``(H, W, 3)`` or grayscale ``(H, W)`` /
``(H, W, 1)``, releases the GIL and splits its rows over ``threads`` OpenMP threads (default:
``OMP_NUM_THREADS`` or the core count; results do not depend on it). Grayscale is OpenCV's ``COLOR_RGB2GRAY`` exactly, and
resizing is OpenCV's ``INTER_NEAREST``; for BGR input the gray values differ
slightly (swap channels first to match ``COLOR_BGR2GRAY``).
"""

from __future__ import annotations

import math

import numpy as np

from streamface.kernels import _quality
from streamface.kernels._validate import as_image, as_size, as_threads

__all__ = [
    "BLUR_CROP",
    "BLUR_RESIZE",
    "EMPTINESS_CANNY_THRESHOLDS",
    "SIMILARITY_SIZE",
    "blur_score",
    "emptiness",
    "frame_similarity",
    "gray",
    "resize_nearest",
]

#: Frame size (width, height) the seed resizes keyframes to before the blur score.
BLUR_RESIZE = (1280, 720)
#: Fraction cut off every side of the resized keyframe before the blur score.
BLUR_CROP = 0.15
#: Frame size (width, height) both frames are resized to for the similarity.
SIMILARITY_SIZE = (1280, 720)
#: The seed's ``cv2.Canny(gray, 0, 25)`` hysteresis thresholds (L1 gradient, 3x3).
EMPTINESS_CANNY_THRESHOLDS = (0, 25)


def _threads(threads) -> int:
    return as_threads(threads, _quality.default_threads())


def _as_hwc(image: np.ndarray) -> np.ndarray:
    # The C side takes (H, W, C); a reshape of a C-contiguous array is a view.
    return image.reshape(image.shape[0], image.shape[1], -1)


def _crop_margin(length: int, crop: float) -> int:
    # The seed's crop: int(length * crop) pixels off each end (the tests' OpenCV
    # reference crops with the same formula).
    return int(length * crop)


def gray(image, *, threads=None) -> np.ndarray:
    """The gray image every score starts from: ``cv2.cvtColor(image, COLOR_RGB2GRAY)``.

    Compute it once per frame and pass it to :func:`emptiness`, :func:`blur_score`
    and :func:`frame_similarity`: each gives the same result from the gray image as
    from the RGB one, without converting the frame again.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 image, RGB ``(H, W, 3)`` or already grayscale ``(H, W)`` / ``(H, W, 1)``.
    threads : int or None, default None
        OpenMP threads; None uses OpenMP's default.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W)
        Bit-exact with OpenCV; grayscale input comes back as an (H, W) view.

    Examples
    --------
    >>> import numpy as np
    >>> gray(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8))
    array([[ 76, 150,  29]], dtype=uint8)
    """
    image = as_image(image, "image")
    threads = _threads(threads)
    if image.ndim == 2 or image.shape[2] == 1:
        return image.reshape(image.shape[0], image.shape[1])
    out = np.empty(image.shape[:2], np.uint8)
    _quality.gray(image, out, threads)
    return out


def resize_nearest(image, size, *, threads=None) -> np.ndarray:
    """``cv2.resize(image, size, interpolation=INTER_NEAREST)``, the resize of the scores.

    :func:`frame_similarity` of two images already resized to its ``size`` (pass
    ``size=None`` then) equals that of the originals, so a frame compared with many
    others is resized once.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 image, ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``.
    size : tuple of int
        ``(width, height)`` of the result.
    threads : int or None, default None
        OpenMP threads; None uses OpenMP's default.

    Returns
    -------
    numpy.ndarray of uint8
        Shape ``(height, width)`` plus ``image``'s channel axis, if it has one.

    Examples
    --------
    >>> import numpy as np
    >>> resize_nearest(np.arange(16, dtype=np.uint8).reshape(4, 4), (2, 2))
    array([[ 0,  2],
           [ 8, 10]], dtype=uint8)
    """
    image = as_image(image, "image")
    width, height = as_size(size, "size")
    out = np.empty((height, width) + image.shape[2:], np.uint8)
    _quality.resize_nearest(_as_hwc(image), _as_hwc(out), _threads(threads))
    return out


def blur_score(image, resize=BLUR_RESIZE, crop=BLUR_CROP, *, threads=None) -> float:
    """Blur score of the seed: variance of the Laplacian of the lightly blurred gray image.

    Steps: gray (``COLOR_RGB2GRAY``); nearest-neighbour resize to ``resize``; keep
    rows ``int(h * crop) : h - int(h * crop)`` and the same for columns; 3x3
    Gaussian blur (sigma 0.5, OpenCV's 8-bit fixed-point result); Laplacian with
    ``ksize=11``; population variance. Borders are ``BORDER_REFLECT_101``. Higher
    means sharper.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 image, RGB ``(H, W, 3)`` or grayscale ``(H, W)`` / ``(H, W, 1)``.
    resize : tuple of int or None, default (1280, 720)
        ``(width, height)`` to resize to first; ``None`` keeps the image size.
    crop : float or None, default 0.15
        Fraction cut off every side after resizing, in ``[0, 0.5)``; ``None``
        means no crop. ``resize=None, crop=None`` is the seed's face blur score.
    threads : int or None, default None
        OpenMP threads; None uses OpenMP's default.

    Returns
    -------
    float
        The variance (>= 0). Keyframes below 50 and aligned faces at or below 25
        were dropped by the seed.

    Raises
    ------
    ValueError
        For a wrong dtype, shape or empty image, a bad ``resize`` or ``crop``.

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.full((720, 1280, 3), 128, np.uint8)
    >>> blur_score(flat)
    0.0
    >>> square = np.zeros((128, 128), np.uint8)
    >>> square[32:96, 32:96] = 255
    >>> blur_score(square, resize=None, crop=None) > 25
    True
    """
    image = as_image(image, "image")
    height, width = image.shape[:2]
    out_w, out_h = (width, height) if resize is None else as_size(resize, "resize")
    if crop is None:
        crop = 0.0
    try:
        crop = float(crop)
    except (TypeError, ValueError):
        raise ValueError(f"crop must be a number in [0, 0.5) or None, got {crop!r}") from None
    if not 0.0 <= crop < 0.5:
        raise ValueError(f"crop must be in [0, 0.5) or None, got {crop!r}")
    # crop < 0.5 keeps at least one row and column: int(n * crop) < n / 2.
    x0, y0 = _crop_margin(out_w, crop), _crop_margin(out_h, crop)
    return _quality.blur_score(_as_hwc(image), out_w, out_h, x0, y0, out_w - x0, out_h - y0,
                              _threads(threads))


def frame_similarity(a, b, size=SIMILARITY_SIZE, *, threads=None) -> float:
    """Similarity of two frames: ``1 - TM_SQDIFF_NORMED`` of their resized gray images.

    With ``A``, ``B`` the gray frames resized (nearest) to ``size``, this is
    ``1 - sum((A - B)**2) / sqrt(sum(A**2) * sum(B**2))``, clipped at 0 as
    OpenCV's ``matchTemplate`` clips the normalised difference at 1. The sums are
    exact integers.

    Parameters
    ----------
    a, b : numpy.ndarray
        uint8 frames, RGB ``(H, W, 3)`` or grayscale ``(H, W)`` / ``(H, W, 1)``; they
        may differ in size (both are resized) and in channel count.
    size : tuple of int or None, default (1280, 720)
        ``(width, height)`` both frames are resized to; ``None`` compares them as
        they are, which requires equal heights and widths.
    threads : int or None, default None
        OpenMP threads; None uses OpenMP's default.

    Returns
    -------
    float
        In ``[0, 1]``; 1 for identical frames. Two all-black frames give 1.0 (they
        are identical; OpenCV's 0/0 would give 0); one all-black frame against any
        other gives 0.0, as OpenCV.

    Raises
    ------
    ValueError
        For a wrong dtype, shape or empty frame, a bad ``size``, or frames of
        different sizes with ``size=None``.

    Examples
    --------
    >>> import numpy as np
    >>> frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), np.uint8)
    >>> frame_similarity(frame, frame)
    1.0
    >>> frame_similarity(frame, 255 - frame) < 0.9
    True
    """
    a = as_image(a, "a")
    b = as_image(b, "b")
    if size is None:
        if a.shape[:2] != b.shape[:2]:
            raise ValueError(
                f"a and b must have the same height and width when size=None, "
                f"got {a.shape} and {b.shape}"
            )
        out_w, out_h = a.shape[1], a.shape[0]
    else:
        out_w, out_h = as_size(size, "size")
    sum_aa, sum_bb, sum_dd = _quality.frame_sums(_as_hwc(a), _as_hwc(b), out_w, out_h,
                                                 _threads(threads))
    if sum_aa == 0 and sum_bb == 0:
        return 1.0
    if sum_aa == 0 or sum_bb == 0:
        return 0.0
    sqdiff_normed = sum_dd / (math.sqrt(sum_aa) * math.sqrt(sum_bb))
    return 1.0 - min(sqdiff_normed, 1.0)


def emptiness(image, *, threads=None) -> float:
    """Fraction of pixels that are not edges in the seed's ``cv2.Canny(gray, 0, 25)``.

    Canny as OpenCV computes it on the full-resolution gray image: 3x3 Sobel
    (replicated border), L1 magnitude, non-maximum suppression in four sectors,
    hysteresis from magnitudes above 25 through 8-connected local maxima above 0.
    The edge map is identical to OpenCV's, so the score is exact.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 image, RGB ``(H, W, 3)`` or grayscale ``(H, W)`` / ``(H, W, 1)``.
    threads : int or None, default None
        OpenMP threads; None uses OpenMP's default.

    Returns
    -------
    float
        In ``[0, 1]``; 1 for a frame without edges (black, flat). The seed dropped
        keyframes above 0.95.

    Raises
    ------
    ValueError
        For a wrong dtype, shape or empty image.

    Examples
    --------
    >>> import numpy as np
    >>> emptiness(np.zeros((720, 1280, 3), np.uint8))
    1.0
    >>> noise = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
    >>> emptiness(noise) < 0.95
    True
    """
    image = as_image(image, "image")
    low, high = EMPTINESS_CANNY_THRESHOLDS
    edges = _quality.edge_count(_as_hwc(image), low, high, _threads(threads))
    pixels = image.shape[0] * image.shape[1]
    return (pixels - edges) / pixels
