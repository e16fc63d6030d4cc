"""Frame preprocessing: decoded frames -> letterboxed float32 NCHW network batch.

One call fills a preallocated batch (reused from batch to batch) with every
frame resized to fit the network input, keeping its aspect ratio, padded,
normalised and in the channel order the model wants. Frames may be RGB arrays
or decoded YUV 4:2:0 frames straight from PyAV: their planes are read where the
decoder left them, converted to RGB per sampled pixel, never copied whole.
The returned `Letterbox` maps detections back to frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from streamface.kernels import _preprocess
from streamface.kernels._validate import as_image, as_threads

# Beside the batch kernel, the pieces of its contract that a device-side implementation
# (engine/backends/torch_preprocess.py) must reproduce exactly: the letterbox placement, the
# YUV coefficients and the argument checks.
__all__ = ["Letterbox", "check_choice", "letterbox_placement", "per_channel", "preprocess_batch",
           "yuv_coefficients"]

# libswscale's limited-range YUV -> RGB table (V->R, U->B, -U->G, -V->G in
# 1/65536, 255/224 folded in). PyAV converts with BT.601 unless a frame is
# tagged BT.709 (AVCOL_SPC_BT709 = 1).
_SWSCALE_COEFFS = {"bt601": (104597, 132201, 25675, 53279), "bt709": (117489, 138438, 13975, 34925)}
_AVCOL_SPC_BT709 = 1
# Frame kinds, as _preprocess.pyx numbers them.
_KIND_RGB, _KIND_YUV420 = 0, 1
_AVCOL_RANGE_JPEG = 2


@dataclass(frozen=True, eq=False)
class Letterbox:
    """Where each frame went in the batch, to map network coordinates back.

    For frame ``i``: ``frame_xy = (net_xy - offset[i]) / scale[i]``, exact up to
    the rounding of the resized size to whole pixels (under half a network
    pixel); `points_to_frame` and `boxes_to_frame` use the exact per-axis factors.

    Attributes
    ----------
    scale : numpy.ndarray of float32, shape (N,)
        Network pixels per frame pixel, ``min(W / width, H / height)``.
    offset : numpy.ndarray of float32, shape (N, 2)
        (x, y) of the resized frame's top-left corner in the network input.
    frame_size : numpy.ndarray of int32, shape (N, 2)
        (width, height) of each frame.
    resized : numpy.ndarray of int32, shape (N, 2)
        (width, height) of each frame inside the network input.
    input_size : tuple of int
        (W, H) of the network input.
    """

    scale: np.ndarray
    offset: np.ndarray
    frame_size: np.ndarray
    resized: np.ndarray
    input_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.scale)

    def points_to_frame(self, points, index: int) -> np.ndarray:
        """Map points (..., 2) in network pixels of batch item ``index`` to frame pixels."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim == 0 or points.shape[-1] != 2:
            raise ValueError(f"points must have shape (..., 2), got {points.shape}")
        factor = self.frame_size[index] / self.resized[index]
        return ((points - self.offset[index]) * factor).astype(np.float32)

    def boxes_to_frame(self, boxes, index: int) -> np.ndarray:
        """Map boxes (M, 4) as (x, y, w, h) in network pixels to frame pixels (float32)."""
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (M, 4), got {boxes.shape}")
        factor = self.frame_size[index] / self.resized[index]
        corner = (boxes[:, :2] - self.offset[index]) * factor
        return np.hstack([corner, boxes[:, 2:] * factor]).astype(np.float32)


def preprocess_batch(frames: Sequence, out: np.ndarray, *, mean=(0.0, 0.0, 0.0),
                     scale=(1.0, 1.0, 1.0), channel_order: str = "rgb", pad_value=0.0,
                     center: bool = False, yuv_range: str = "auto", yuv_matrix: str = "auto",
                     threads: int | None = None) -> Letterbox:
    """Letterbox ``frames`` into the preallocated float32 batch ``out``.

    Each frame is resized to fit W x H keeping its aspect ratio (bilinear,
    the arithmetic of ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)``:
    identical values for RGB frames), placed at the top-left corner (or
    centred), and written as ``(pixel - mean[c]) * scale[c]`` for output channel
    c; the rest of the W x H plane is ``pad_value``. Items ``len(frames):`` of
    ``out`` are left untouched.

    Parameters
    ----------
    frames : sequence
        Frames of any sizes, each one of:

        * an RGB uint8 array (h, w, 3);
        * a decoded frame with ``.planes``, ``.format.name`` in ``yuv420p`` /
          ``yuvj420p``, ``.width`` and ``.height`` (a PyAV ``VideoFrame``); its
          planes are read in place, row strides (``line_size``) respected;
        * a tuple of uint8 planes ``(y, u, v)``: y (h, w), u and v
          (ceil(h/2), ceil(w/2)); views with row padding are fine.

        An empty sequence gives an empty `Letterbox`.
    out : numpy.ndarray of float32, shape (B, 3, H, W)
        C-contiguous batch with B >= len(frames).
    mean, scale : sequence of 3 floats
        Per output channel (in ``channel_order``), applied to 0..255 values.
    channel_order : {"rgb", "bgr"}, default "rgb"
        Channel order of ``out``.
    pad_value : float or sequence of 3 floats, default 0.0
        Written as is (not normalised) where no frame pixel lands; e.g.
        ``(114 - mean[c]) * scale[c]`` for a grey border.
    center : bool, default False
        Centre the resized frame instead of placing it top-left.
    yuv_range : {"auto", "limited", "full"}, default "auto"
        For YUV frames. "auto": full for ``yuvj420p`` or a frame tagged full
        range (``color_range`` 2), else limited (16-235); tuples: limited.
    yuv_matrix : {"auto", "bt601", "bt709"}, default "auto"
        For YUV frames. "auto": BT.709 for a frame tagged so (``colorspace`` 1),
        else BT.601, the choices libswscale (PyAV's ``to_ndarray``) makes.
    threads : int, optional
        OpenMP threads; default: OpenMP's default.

    Returns
    -------
    Letterbox
        Per-frame scale and offset to map detections back to frame pixels.

    Raises
    ------
    ValueError
        If ``out`` is not a C-contiguous writeable float32 (B, 3, H, W) array, it
        has fewer than ``len(frames)`` items, a frame is empty or of an
        unsupported type/format/shape, or an option is not one of its values.

    Notes
    -----
    Agreement, measured on the skynews frames and clip: RGB frames give exactly
    ``cv2.resize`` + ``cv2.copyMakeBorder`` + normalisation. YUV frames give
    exactly PyAV's ``to_ndarray(format="rgb24")`` followed by that pipeline:
    the conversion reproduces libswscale's x86 SIMD arithmetic (chroma of each
    2x2 block, 13-bit coefficients, truncation). Against exact BT.601 rounded
    to nearest that arithmetic is about one grey level low on average (at most 3).
    For odd frame sizes PyAV switches to libswscale's generic scaler, which
    interpolates chroma; there the two differ at colour edges (a 333x201 frame:
    mean 1.8, max 71 grey levels). Decoded video frames have even sizes.

    Examples
    --------
    >>> batch = np.empty((2, 3, 640, 640), np.float32)
    >>> frame = np.zeros((1080, 1920, 3), np.uint8)
    >>> box = preprocess_batch([frame], batch, mean=(127.5,) * 3, scale=(1 / 128,) * 3)
    >>> box.scale.tolist(), box.offset.tolist()
    ([0.3333333432674408], [[0.0, 0.0]])
    """
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        raise ValueError("frames must be a sequence of frames; wrap a single frame in a list")
    out = _as_batch(out)
    n = len(frames)
    if n > out.shape[0]:
        raise ValueError(f"out holds {out.shape[0]} frames, got {n} frames")
    check_choice(channel_order, "channel_order", ("rgb", "bgr"))
    check_choice(yuv_range, "yuv_range", ("auto", "limited", "full"))
    check_choice(yuv_matrix, "yuv_matrix", ("auto", "bt601", "bt709"))
    mean = per_channel(mean, "mean")
    scale = per_channel(scale, "scale")
    pad = per_channel(pad_value, "pad_value")
    input_w, input_h = out.shape[3], out.shape[2]

    planes, geometry = [], np.zeros((n, 13), dtype=np.int32)
    ratios = np.zeros(n, dtype=np.float32)
    for i, frame in enumerate(frames):
        kind, width, height, frame_planes, conversion = _read_frame(frame, i, yuv_range, yuv_matrix)
        ratios[i], placement = letterbox_placement(width, height, input_w, input_h, center)
        geometry[i] = (kind, width, height, *placement, *conversion)
        planes.append(frame_planes)

    _preprocess.letterbox(planes, geometry, out, mean, scale, pad, channel_order == "bgr",
                          as_threads(threads, _preprocess.default_threads()))
    return Letterbox(
        scale=ratios,
        offset=geometry[:, 5:7].astype(np.float32),
        frame_size=geometry[:, 1:3].copy(),
        resized=geometry[:, 3:5].copy(),
        input_size=(input_w, input_h),
    )


def letterbox_placement(width: int, height: int, input_w: int, input_h: int, center: bool):
    """Letterbox ratio and (out_w, out_h, off_x, off_y) of a frame in the network input."""
    ratio = min(input_w / width, input_h / height)
    out_w = min(input_w, max(1, int(width * ratio + 0.5)))
    out_h = min(input_h, max(1, int(height * ratio + 0.5)))
    off_x, off_y = ((input_w - out_w) // 2, (input_h - out_h) // 2) if center else (0, 0)
    return ratio, (out_w, out_h, off_x, off_y)


def _read_frame(frame, index: int, yuv_range: str, yuv_matrix: str):
    """(kind, width, height, planes, conversion) of one frame, planes as 2-D uint8 views."""
    name = f"frames[{index}]"
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3:
            raise ValueError(f"{name} must be an RGB (h, w, 3) array, got shape {frame.shape}")
        rgb = as_image(frame, name, channels=(3,))
        height, width = rgb.shape[:2]
        return _KIND_RGB, width, height, (rgb.reshape(height, width * 3),), (0,) * 6
    if isinstance(frame, tuple):
        y, u, v = _yuv_tuple(frame, name)
        full = yuv_range == "full"
        matrix = "bt709" if yuv_matrix == "bt709" else "bt601"
        return _KIND_YUV420, y.shape[1], y.shape[0], (y, u, v), yuv_coefficients(matrix, full)
    if hasattr(frame, "planes") and hasattr(frame, "format"):
        width, height, planes = _video_frame_planes(frame, name)
        full = (frame.format.name == "yuvj420p"
                or getattr(frame, "color_range", 0) == _AVCOL_RANGE_JPEG)
        if yuv_range != "auto":
            full = yuv_range == "full"
        matrix = yuv_matrix
        if matrix == "auto":
            tagged_709 = getattr(frame, "colorspace", 0) == _AVCOL_SPC_BT709
            matrix = "bt709" if tagged_709 else "bt601"
        return _KIND_YUV420, width, height, planes, yuv_coefficients(matrix, full)
    raise ValueError(
        f"{name} must be an RGB uint8 array, a (y, u, v) tuple or a yuv420p VideoFrame, "
        f"got {type(frame).__name__}"
    )


def _yuv_tuple(frame: tuple, name: str):
    """Check a (y, u, v) tuple of 4:2:0 planes; only strided columns get copied."""
    if len(frame) != 3:
        raise ValueError(f"{name} must be a (y, u, v) tuple of planes, got {len(frame)} items")
    planes = []
    for plane, label in zip(frame, "yuv"):
        if not isinstance(plane, np.ndarray) or plane.dtype != np.uint8 or plane.ndim != 2:
            raise ValueError(f"{name}: plane {label} must be a 2-D uint8 array")
        if plane.strides[1] != 1 or plane.strides[0] < plane.shape[1]:
            plane = np.ascontiguousarray(plane)
        planes.append(plane)
    y, u, v = planes
    if y.size == 0:
        raise ValueError(f"{name} is empty (y plane shape {y.shape})")
    chroma = ((y.shape[0] + 1) // 2, (y.shape[1] + 1) // 2)
    if u.shape != chroma or v.shape != chroma:
        raise ValueError(
            f"{name}: u and v must have shape {chroma} for a y plane of shape {y.shape}, "
            f"got {u.shape} and {v.shape}"
        )
    return y, u, v


def _video_frame_planes(frame, name: str):
    """The Y, U, V planes of a decoded yuv420p/yuvj420p frame as (rows, line_size) views."""
    format_name = frame.format.name
    if format_name not in ("yuv420p", "yuvj420p"):
        raise ValueError(
            f"{name} has pixel format {format_name!r}; yuv420p or yuvj420p frames only "
            f"(convert others with frame.reformat(format='yuv420p') or to_ndarray('rgb24'))"
        )
    width, height = int(frame.width), int(frame.height)
    if width <= 0 or height <= 0:
        raise ValueError(f"{name} is empty ({width}x{height})")
    chroma = ((height + 1) // 2, (width + 1) // 2)
    sizes = ((height, width), chroma, chroma)
    planes = []
    for plane, (rows, cols), label in zip(frame.planes, sizes, "yuv"):
        line = int(plane.line_size)
        data = np.frombuffer(plane, np.uint8)
        if line < cols or data.size < rows * line:
            raise ValueError(f"{name}: plane {label} is too small for a {width}x{height} frame")
        # Rows of line_size bytes, cut to the visible width: a view, no copy.
        planes.append(data[: rows * line].reshape(rows, line)[:, :cols])
    if len(planes) != 3:
        raise ValueError(f"{name} must have 3 planes, got {len(planes)}")
    return width, height, tuple(planes)


def yuv_coefficients(matrix: str, full: bool) -> tuple[int, ...]:
    """(y_offset, y_coeff, vr, ug, vg, ub) for the kernel, derived as libswscale does.

    libswscale (PyAV's converter) keeps limited-range coefficients in 1/65536,
    rescales them for full range with truncating integer division, then rounds
    them to 1/8192 for its SIMD path; the kernel reproduces that path exactly.
    """
    vr, ub, ug, vg = _SWSCALE_COEFFS[matrix]
    ug, vg = -ug, -vg
    luma, y_offset = 1 << 16, 0
    if full:
        vr, ub, ug, vg = (_c_div(c * 224, 255) for c in (vr, ub, ug, vg))
    else:
        luma, y_offset = _c_div(luma * 255, 219), 16 << 16

    def to_13_bits(value: int) -> int:
        return (value * (1 << 13) + (1 << 15)) >> 16

    return ((y_offset * 8 + (1 << 15)) >> 16, to_13_bits(luma), to_13_bits(vr),
            to_13_bits(ug), to_13_bits(vg), to_13_bits(ub))


def _c_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as C does."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _as_batch(out) -> np.ndarray:
    if not isinstance(out, np.ndarray) or out.dtype != np.float32:
        got = out.dtype if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"out must be a float32 numpy array, got {got}")
    if out.ndim != 4 or out.shape[1] != 3 or out.shape[2] == 0 or out.shape[3] == 0:
        raise ValueError(f"out must have shape (B, 3, H, W) with H, W > 0, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    return out


def check_choice(value, name: str, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming ``name`` and the allowed values unless ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def per_channel(value, name: str) -> np.ndarray:
    """A scalar or 3 values as a float32 (3,) array."""
    try:
        array = np.broadcast_to(np.asarray(value, dtype=np.float32), (3,))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or 3 numbers, got {value!r}") from None
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return np.ascontiguousarray(array)
