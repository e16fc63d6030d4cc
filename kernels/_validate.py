"""Argument checks shared by the kernel wrappers.

The C loops never see an unchecked array: every public kernel passes its inputs
through these functions first, so a wrong dtype, shape or an empty image becomes
one ``ValueError`` that names the argument instead of a crash or a silent copy.
"""

from __future__ import annotations

import numpy as np


def as_image(image, name: str = "image", *, channels: tuple[int, ...] = (1, 3)) -> np.ndarray:
    """Return ``image`` as a C-contiguous uint8 array of shape (H, W) or (H, W, C).

    Parameters
    ----------
    image : array-like
        Grayscale (H, W) / (H, W, 1) or colour (H, W, 3) uint8 image.
    name : str
        Argument name used in error messages.
    channels : tuple of int
        Channel counts accepted for 3-D input.

    Raises
    ------
    ValueError
        If the dtype is not uint8, the rank is not 2 or 3, the channel count is
        not accepted, or the image has no pixels.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy uint8 array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8, got {image.dtype}")
    if image.ndim == 3:
        if image.shape[2] not in channels:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, channels))} channels, "
                f"got shape {image.shape}"
            )
    elif image.ndim != 2:
        raise ValueError(f"{name} must be (H, W) or (H, W, C), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    # A C-contiguous view is free; only strided input (e.g. a crop) is copied.
    return np.ascontiguousarray(image)


def as_size(size, name: str = "size") -> tuple[int, int]:
    """Return ``size`` as a (width, height) pair of positive ints."""
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (width, height) pair, got {size!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return width, height


def as_points(values, name: str, *, ndim: int, width: int = 2, finite: bool = False) -> np.ndarray:
    """Return ``values`` as a C-contiguous float64 array of rank ``ndim`` ending in ``width``.

    Used for landmarks (N, 5, 2), templates (K, 2) and boxes (N, 4). An axis of
    length 0 is allowed (N = 0 faces); non-finite values are rejected only when
    ``finite`` is set, since the kernels turn them into an empty result.
    """
    array = np.asarray(values)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != ndim or array.shape[-1] != width:
        wanted = ", ".join(["N"] * (ndim - 1) + [str(width)])
        raise ValueError(f"{name} must have shape ({wanted}), got {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array


def as_threads(threads, default: int) -> int:
    """OpenMP team size: ``default`` for None, else a positive int."""
    if threads is None:
        return max(1, int(default))
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return int(threads)
