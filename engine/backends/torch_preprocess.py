"""Device-side preprocessing in torch: letterboxed detector batches and aligned face crops.

The frames go to the device once (RGB, or the YUV 4:2:0 planes as the decoder left them:
half the bytes of RGB) and everything after happens there: the letterbox resize and
normalisation into the detector's NCHW input, and the recognizer's aligned crops warped
straight from the device frame. The arithmetic is that of the CPU kernels, not an
approximation of it:

* :func:`letterbox_batch` reproduces ``kernels.preprocess_batch`` (OpenCV's
  ``INTER_LINEAR`` on uint8 with 11-bit fixed-point weights and its rounding; YUV
  converted with libswscale's integer arithmetic) in int32, so the normalised floats are
  identical, not merely close.
* :func:`align_faces` reproduces ``kernels.align_faces`` (``cv2.warpAffine``: inverse
  map in single precision with OpenCV's rounding steps, bilinear taps reading 0 outside
  the frame, round half to even). The single-precision steps are emulated with float64
  products rounded to float32 once, the way the C kernel emulates fused multiply-adds.
  We use an explicit gather rather than ``grid_sample``: grid_sample's normalised
  coordinates (``align_corners``) and float interpolation cannot reproduce those
  roundings, and differ by a grey level here and there.

Frame geometry (letterbox placement, YUV coefficients, similarity fits) is worked out on
the host from the frame sizes and landmarks, with the kernels' own functions, and
uploaded as small tables; the pixels never come back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamface.engine.backends.torch_backend import require_torch
from streamface.engine.models.frame_batch import FrameBatch
from streamface.kernels.geometry import ARCFACE_TEMPLATE, similarity_transform
from streamface.kernels.preprocess import (
    Letterbox,
    check_choice,
    per_channel,
    letterbox_placement,
    yuv_coefficients,
)

torch = require_torch("device preprocessing")

# OpenCV's INTER_RESIZE_COEF_BITS: bilinear weights are multiples of 1/2048.
_COEF_SCALE = 2048
# Chroma 128 in the converter's 8x scale (see kernels/_preprocess.pyx).
_CHROMA_ZERO = 128 << 3
# Coordinates beyond this (in pixels) are outside any image (kernels/_geometry.pyx).
_COORD_LIMIT = 1e9


# --------------------------------------------------------------------------- uploads

class FrameUploader:
    """Host frames -> device tensors through one reused pinned buffer.

    One host->device copy per frame, asynchronous on the current stream; the buffer is
    only overwritten once the previous call's copies are done (an event, not a device
    sync). On the CPU the frames are wrapped, not copied (read-only ones are copied).

    Parameters
    ----------
    device : str or torch.device
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self._pinned = None
        self._done = None

    def __call__(self, frames: Sequence[np.ndarray]) -> list:
        """Device tensors of the same shapes and dtypes as ``frames`` (uint8 arrays)."""
        frames = [np.ascontiguousarray(f) for f in frames]
        if self.device.type != "cuda":
            return [torch.from_numpy(f if f.flags.writeable else f.copy()) for f in frames]
        pinned = self._host(sum(f.nbytes for f in frames))
        out, start = [], 0
        for frame in frames:
            host = pinned[start:start + frame.nbytes]
            host.numpy()[:] = frame.view(np.uint8).ravel()
            out.append(host.view(frame.shape).to(self.device, non_blocking=True))
            start += frame.nbytes
        return self._sent(out)

    def batch(self, frames: Sequence[np.ndarray]):
        """Same-sized frames -> one (N, H, W, 3) device tensor in one copy, the input of
        :class:`DeviceLetterbox`'s batched path."""
        shapes = {np.shape(f) for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"frames must all have one shape for a batch, got {sorted(shapes)}")
        shape = (len(frames),) + shapes.pop()
        if self.device.type != "cuda":
            return torch.from_numpy(np.stack(frames))
        host = self._host(int(np.prod(shape))).view(shape)
        np.stack(frames, out=host.numpy())
        return self._sent(host.to(self.device, non_blocking=True))

    def _host(self, nbytes: int):
        """The pinned buffer, at least ``nbytes``, once the previous copies out of it are done."""
        if self._done is not None:
            self._done.synchronize()
        if self._pinned is None or self._pinned.numel() < nbytes:
            self._pinned = torch.empty(max(nbytes, 1), dtype=torch.uint8).pin_memory()
        return self._pinned[:nbytes]

    def _sent(self, result):
        self._done = torch.cuda.Event()
        self._done.record()
        return result


def upload_frames(frames: Sequence[np.ndarray], device) -> list:
    """Host RGB frames (H, W, 3) uint8 -> device tensors (a one-off :class:`FrameUploader`)."""
    return FrameUploader(device)(frames)


def upload_planes(planes: tuple[np.ndarray, np.ndarray, np.ndarray], device) -> tuple:
    """A YUV 4:2:0 frame's (y, u, v) uint8 planes (views with row padding are fine) ->
    contiguous device tensors: 1.5 bytes per pixel instead of RGB's 3."""
    return tuple(upload_frames(list(planes), device))


# --------------------------------------------------------------------------- YUV -> RGB

def yuv420_to_rgb(y, u, v, coefficients: tuple[int, ...]):
    """RGB (H, W, 3) uint8 from YUV 4:2:0 device planes, libswscale's x86 arithmetic.

    Parameters
    ----------
    y : tensor (H, W) uint8
    u, v : tensor (ceil(H/2), ceil(W/2)) uint8
    coefficients : (y_offset, y_coeff, vr, ug, vg, ub)
        From ``kernels.preprocess.yuv_coefficients`` (multiples of 1/8192).
    """
    y_offset, y_coeff, vr, ug, vg, ub = coefficients
    height, width = y.shape
    luma = (((y.int() << 3) - y_offset) * y_coeff) >> 16
    # Each pixel takes the chroma of its 2x2 block.
    u = ((u.int() << 3) - _CHROMA_ZERO).repeat_interleave(2, 0).repeat_interleave(2, 1)
    v = ((v.int() << 3) - _CHROMA_ZERO).repeat_interleave(2, 0).repeat_interleave(2, 1)
    u, v = u[:height, :width], v[:height, :width]
    r = luma + ((v * vr) >> 16)
    g = luma + ((u * ug) >> 16) + ((v * vg) >> 16)
    b = luma + ((u * ub) >> 16)
    return torch.stack([r, g, b], dim=-1).clamp_(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------- letterbox

def _axis_taps(size: int, out: int, clamp_weights: bool):
    """OpenCV's taps along one axis for resizing ``size`` to ``out`` pixels.

    Returns (i0, i1, w0, w1) int arrays. Columns (``clamp_weights``) move a tap outside
    the frame to the edge pixel with full weight; rows keep the weight and clamp the
    index, as OpenCV's horizontal and vertical passes do.
    """
    scale = 1.0 / (out / size)
    f = ((np.arange(out, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    f = (f - i0.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low, high = i0 < 0, i0 >= size - 1
        f[low | high] = 0
        i0 = np.where(low, 0, np.where(high, size - 1, i0))
        i1 = np.minimum(i0 + 1, size - 1)
    else:
        i1 = np.clip(i0 + 1, 0, size - 1)
        i0 = np.clip(i0, 0, size - 1)
    w0 = np.rint(((1.0 - f.astype(np.float64)) * _COEF_SCALE).astype(np.float32))
    w1 = np.rint(f * np.float32(_COEF_SCALE))
    return i0, i1, w0.astype(np.int32), w1.astype(np.int32)


class _Taps:
    """Device tables of one (frame size -> resized size) resize, built once."""

    def __init__(self, width: int, height: int, out_w: int, out_h: int, device):
        x0, x1, a0, a1 = _axis_taps(width, out_w, clamp_weights=True)
        y0, y1, b0, b1 = _axis_taps(height, out_h, clamp_weights=False)

        def up(a, shape=(-1,)):
            return torch.from_numpy(np.ascontiguousarray(a)).to(device).reshape(shape)

        self.x0, self.x1, self.y0, self.y1 = up(x0), up(x1), up(y0), up(y1)
        self.a0, self.a1 = up(a0, (1, -1, 1)), up(a1, (1, -1, 1))
        self.b0, self.b1 = up(b0, (-1, 1, 1)), up(b1, (-1, 1, 1))


def resize_linear_u8(rgb, taps: _Taps):
    """``cv2.resize(rgb, INTER_LINEAR)`` for uint8 (..., H, W, 3) -> (..., out_h, out_w, 3)
    int32 (a batch of same-sized frames in one go)."""
    top, bottom = rgb.index_select(-3, taps.y0), rgb.index_select(-3, taps.y1)
    h0 = top.index_select(-2, taps.x0).int() * taps.a0 \
        + top.index_select(-2, taps.x1).int() * taps.a1
    h1 = bottom.index_select(-2, taps.x0).int() * taps.a0 \
        + bottom.index_select(-2, taps.x1).int() * taps.a1
    # OpenCV's SIMD vertical pass: inputs pre-shifted by 4, high 16 bits of each
    # product, the sum rounded by 2 bits.
    value = (((taps.b0 * (h0 >> 4)) >> 16) + ((taps.b1 * (h1 >> 4)) >> 16) + 2) >> 2
    return value.clamp_(0, 255)


class DeviceLetterbox:
    """Letterbox frames already on the device into a device (B, 3, H, W) float32 batch.

    The device counterpart of ``kernels.preprocess_batch`` (same parameters, same
    values, same :class:`~streamface.kernels.Letterbox`); resize tables are cached
    per (frame size, resized size).

    Parameters
    ----------
    mean, scale : sequence of 3 floats
        Per output channel (in ``channel_order``), applied to 0..255 values.
    channel_order : {"rgb", "bgr"}, default "rgb"
    pad_value : float or 3 floats, default 0.0
        Written as is where no frame pixel lands.
    center : bool, default False
        Centre the resized frame instead of placing it top-left.
    yuv_range : {"limited", "full"}, default "limited"
        For frames given as (y, u, v) planes.
    yuv_matrix : {"bt601", "bt709"}, default "bt601"
    """

    def __init__(self, *, mean=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0),
                 channel_order: str = "rgb", pad_value=0.0, center: bool = False,
                 yuv_range: str = "limited", yuv_matrix: str = "bt601"):
        check_choice(channel_order, "channel_order", ("rgb", "bgr"))
        check_choice(yuv_range, "yuv_range", ("limited", "full"))
        check_choice(yuv_matrix, "yuv_matrix", ("bt601", "bt709"))
        self.mean = per_channel(mean, "mean")
        self.scale = per_channel(scale, "scale")
        self.pad = per_channel(pad_value, "pad_value")
        self.order = [2, 1, 0] if channel_order == "bgr" else [0, 1, 2]
        self.center = center
        self.coefficients = yuv_coefficients(yuv_matrix, yuv_range == "full")
        self._taps: dict[tuple, _Taps] = {}
        self._norm: dict = {}

    def __call__(self, frames, out) -> Letterbox:
        """Fill ``out[:len(frames)]`` (device float32, (B, 3, H, W)) and return the
        :class:`~streamface.kernels.Letterbox`. Items past ``len(frames)`` are untouched.

        ``frames`` is a sequence of device (H, W, 3) uint8 RGB tensors or (y, u, v)
        uint8 plane tuples on ``out``'s device, or one (N, H, W, 3) uint8 tensor of
        same-sized frames (resized in one go: a few kernels for the whole batch).
        """
        if isinstance(frames, torch.Tensor) and frames.dim() == 4:
            return self._same_size(frames, out)
        n = len(frames)
        self._check_out(out, n)
        input_h, input_w = out.shape[2], out.shape[3]
        device = out.device
        mean, scale, pad = self._constants(device)
        geometry = np.zeros((n, 6), np.int32)
        ratios = np.zeros(n, np.float32)
        for i, frame in enumerate(frames):
            rgb = self._rgb(frame, i, device)
            height, width = rgb.shape[:2]
            ratios[i], (out_w, out_h, off_x, off_y) = letterbox_placement(width, height, input_w, input_h,
                                                             self.center)
            geometry[i] = (width, height, out_w, out_h, off_x, off_y)
            key = (width, height, out_w, out_h, device)
            if key not in self._taps:
                self._taps[key] = _Taps(width, height, out_w, out_h, device)
            pixels = resize_linear_u8(rgb, self._taps[key])  # (out_h, out_w, 3) int32
            # (value - mean) * scale in float32, as the kernel: identical floats.
            planes = (pixels.permute(2, 0, 1)[self.order].float() - mean) * scale
            target = out[i]
            if out_h < input_h or out_w < input_w:
                target.copy_(pad.expand_as(target))
            target[:, off_y:off_y + out_h, off_x:off_x + out_w] = planes
        return Letterbox(scale=ratios, offset=geometry[:, 4:6].astype(np.float32),
                         frame_size=geometry[:, 0:2].copy(), resized=geometry[:, 2:4].copy(),
                         input_size=(input_w, input_h))

    def _same_size(self, frames, out) -> Letterbox:
        """The batched path: one set of resize kernels for N frames of one size."""
        n, height, width = frames.shape[:3]
        self._check_out(out, n)
        self._rgb(frames[0], 0, out.device)  # dtype, layout and device checks
        input_h, input_w = out.shape[2], out.shape[3]
        ratio, (out_w, out_h, off_x, off_y) = letterbox_placement(width, height, input_w, input_h,
                                                     self.center)
        key = (width, height, out_w, out_h, out.device)
        if key not in self._taps:
            self._taps[key] = _Taps(width, height, out_w, out_h, out.device)
        mean, scale, pad = self._constants(out.device)
        pixels = resize_linear_u8(frames, self._taps[key])  # (n, out_h, out_w, 3) int32
        planes = (pixels.permute(0, 3, 1, 2)[:, self.order].float() - mean) * scale
        target = out[:n]
        if out_h < input_h or out_w < input_w:
            target.copy_(pad.expand_as(target))
        target[:, :, off_y:off_y + out_h, off_x:off_x + out_w] = planes
        return Letterbox(scale=np.full(n, ratio, np.float32),
                         offset=np.tile(np.float32([off_x, off_y]), (n, 1)),
                         frame_size=np.tile(np.int32([width, height]), (n, 1)),
                         resized=np.tile(np.int32([out_w, out_h]), (n, 1)),
                         input_size=(input_w, input_h))

    @staticmethod
    def _check_out(out, n: int) -> None:
        if out.dtype != torch.float32 or out.dim() != 4 or out.shape[1] != 3:
            raise ValueError(f"out must be a float32 (B, 3, H, W) tensor, got {out.dtype} "
                             f"{tuple(out.shape)}")
        if n > out.shape[0]:
            raise ValueError(f"out holds {out.shape[0]} frames, got {n} frames")

    def _rgb(self, frame, index: int, device):
        if isinstance(frame, tuple):
            if len(frame) != 3:
                raise ValueError(f"frames[{index}] must be a (y, u, v) tuple of planes")
            y, u, v = frame
            if y.dtype != torch.uint8 or y.dim() != 2 or y.device != device:
                raise ValueError(f"frames[{index}]: planes must be 2-D uint8 tensors on {device}")
            return yuv420_to_rgb(y, u, v, self.coefficients)
        if not isinstance(frame, torch.Tensor) or frame.dtype != torch.uint8 \
                or frame.dim() != 3 or frame.shape[2] != 3 or frame.device != device:
            raise ValueError(f"frames[{index}] must be an (H, W, 3) uint8 tensor on {device}, "
                             f"got {getattr(frame, 'dtype', type(frame).__name__)} "
                             f"{tuple(getattr(frame, 'shape', ()))}")
        return frame

    def _constants(self, device):
        if device not in self._norm:
            def column(a):
                return torch.from_numpy(a.copy()).to(device).reshape(3, 1, 1)
            self._norm[device] = (column(self.mean), column(self.scale), column(self.pad))
        return self._norm[device]


class DeviceFrameBatch(FrameBatch):
    """:class:`~streamface.engine.models.frame_batch.FrameBatch` on the device: the same
    network size and letterbox, into a reused device tensor.

    Parameters
    ----------
    preprocessing : Preprocessing
        The detector's (``detector.spec.preprocessing``).
    long_side : int
        The detector's ``input_size``.
    device : str or torch.device
    fixed_size : (int, int) or None
    """

    def __init__(self, preprocessing, long_side: int, device, fixed_size=None):
        super().__init__(preprocessing, long_side, threads=1, fixed_size=fixed_size)
        p = preprocessing
        pad = tuple((0.0 - m) * s for m, s in zip(p.mean, p.scale))
        self.device = torch.device(device)
        self.letterbox = DeviceLetterbox(mean=p.mean, scale=p.scale,
                                         channel_order=p.channel_order, pad_value=pad)
        self._device_buffer = torch.zeros((0, 3, 0, 0), dtype=torch.float32, device=self.device)

    def fill(self, frames: Sequence, sizes: Sequence[tuple[int, int]] | None = None):
        """Letterbox device ``frames`` into the reused device buffer.

        Returns
        -------
        tensor : torch.Tensor, shape (n, 3, H, W), float32 on the device
            A view of the reused buffer (valid until the next ``fill``).
        letterbox : streamface.kernels.Letterbox
        """
        if sizes is None:
            sizes = [tuple((f[0] if isinstance(f, tuple) else f).shape[:2]) for f in frames]
        n = len(frames)
        height, width = self.network_size(sizes)
        b, _, h, w = self._device_buffer.shape
        if b < n or (h, w) != (height, width):
            keep = b if (h, w) == (height, width) else 0
            self._device_buffer = torch.zeros((max(n, keep), 3, height, width),
                                              dtype=torch.float32, device=self.device)
        tensor = self._device_buffer[:n]
        return tensor, self.letterbox(frames, tensor)


def detect_on_device(detector, frames: Sequence, batch: DeviceFrameBatch):
    """``detector.detect`` for frames already on the device (torch backend).

    Letterbox and inference stay on the device; only the network outputs come back for
    the decoding and NMS, which are the detector's own.

    Returns
    -------
    list of Detections
    """
    results = []
    engine = detector.engine
    for start in range(0, len(frames), detector.max_batch):
        chunk = frames[start:start + detector.max_batch]
        tensor, letterbox = batch.fill(chunk)
        outputs = [o.cpu().numpy() for o in engine.run_device({engine.input_names[0]: tensor})]
        candidates = detector._decode_batch(outputs, tuple(tensor.shape))
        results += [detector._select(c, letterbox, i) for i, c in enumerate(candidates)]
    return results


# --------------------------------------------------------------------------- alignment

def inverse_similarities(landmarks: np.ndarray, template: np.ndarray):
    """Per face, the output -> frame map ``kernels.align_faces`` samples with.

    Returns
    -------
    inverse : ndarray (N, 6) float64
        ``cv2.warpAffine``'s inverse of the landmark -> template similarity.
    valid : ndarray (N,) bool
        False where no similarity exists (the crop is all zeros).
    """
    m = similarity_transform(np.asarray(landmarks, np.float64), template).reshape(-1, 6)
    det = m[:, 0] * m[:, 4] - m[:, 1] * m[:, 3]
    valid = (np.abs(det) > 0) & (np.abs(det) < 1e300)
    det = 1.0 / np.where(valid, det, 1.0)
    inv = np.zeros_like(m)
    inv[:, 0] = m[:, 4] * det
    inv[:, 1] = -m[:, 1] * det
    inv[:, 3] = -m[:, 3] * det
    inv[:, 4] = m[:, 0] * det
    inv[:, 2] = -inv[:, 0] * m[:, 2] - inv[:, 1] * m[:, 5]
    inv[:, 5] = -inv[:, 3] * m[:, 2] - inv[:, 4] * m[:, 5]
    return inv, valid


def _f32(x):
    """Round a float64 tensor to float32 and back: one single-precision rounding."""
    return x.float().double()


def align_faces(frames, landmarks, size: int = 112, *, template=None, frame_index=None):
    """Aligned crops warped on the device from device frames, as ``kernels.align_faces``.

    Parameters
    ----------
    frames : tensor (H, W, 3) or (F, H, W, 3) uint8
        The frame (or frames of one size) on the device.
    landmarks : array-like (N, K, 2)
        Frame pixels, host (the fits are tiny and done on the host).
    size : int, default 112
        Side of the output; the ArcFace template is scaled by ``size / 112``.
    template : array-like (K, 2), optional
        Destination points in output pixels (default: the scaled ArcFace template).
    frame_index : array-like (N,) of int, optional
        Which of the F frames each face is on (default: all on frame 0).

    Returns
    -------
    tensor (N, size, size, 3) uint8 on the frames' device
        Equal to ``kernels.align_faces`` per frame (see the module note).
    """
    if frames.dtype != torch.uint8 or frames.dim() not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (H, W, 3) or (F, H, W, 3) uint8, got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    if frames.dim() == 3:
        frames = frames.unsqueeze(0)
    count, height, width, _ = frames.shape
    if template is None:
        template = ARCFACE_TEMPLATE * (size / 112.0)
    template = np.asarray(template, np.float64)
    points = np.asarray(landmarks, np.float64).reshape(-1, template.shape[0], 2)
    n = points.shape[0]
    device = frames.device
    if n == 0:
        return torch.zeros((0, size, size, 3), dtype=torch.uint8, device=device)
    index = np.zeros(n, np.int64) if frame_index is None else np.asarray(frame_index, np.int64)
    if index.shape != (n,) or index.min() < 0 or index.max() >= count:
        raise ValueError(f"frame_index must be (N,) ints in [0, {count}), got {index!r}")
    inverse, valid = inverse_similarities(points, template)
    inv = _f32(torch.from_numpy(inverse).to(device)).unsqueeze(-1).unsqueeze(-1)  # (N, 6, 1, 1)
    grid = torch.arange(size, dtype=torch.float64, device=device)
    xs, ys = grid.view(1, 1, size), grid.view(1, size, 1)
    # OpenCV's order: per-row term float(float(y * m1) + m2), then a fused x * m0 + row.
    row_x = _f32(_f32(ys * inv[:, 1]) + inv[:, 2])
    row_y = _f32(_f32(ys * inv[:, 4]) + inv[:, 5])
    sx = _f32(inv[:, 0] * xs + row_x)  # (N, size, size)
    sy = _f32(inv[:, 3] * xs + row_y)
    inside = (sx.abs() < _COORD_LIMIT) & (sy.abs() < _COORD_LIMIT)
    inside &= torch.from_numpy(valid).to(device).view(n, 1, 1)
    sx, sy = torch.where(inside, sx, 0.0), torch.where(inside, sy, 0.0)
    ix, iy = sx.floor(), sy.floor()
    ax, ay = (sx - ix).unsqueeze(-1), (sy - iy).unsqueeze(-1)
    ix, iy = ix.long(), iy.long()
    flat = frames.reshape(-1, 3)
    base = torch.from_numpy(index).to(device).view(n, 1, 1) * (height * width)

    def tap(dx: int, dy: int):
        x, y = ix + dx, iy + dy
        ok = inside & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        at = base + y.clamp(0, height - 1) * width + x.clamp(0, width - 1)
        return flat[at.reshape(-1)].reshape(n, size, size, 3).double() * ok.unsqueeze(-1)

    v00, v01, v10, v11 = tap(0, 0), tap(1, 0), tap(0, 1), tap(1, 1)
    top = _f32(ax * (v01 - v00) + v00)
    bottom = _f32(ax * (v11 - v10) + v10)
    value = _f32(ay * _f32(bottom - top) + top)
    # torch.round rounds half to even, as lrintf in the kernel.
    return value.round().clamp_(0, 255).to(torch.uint8)


def crops_to_nchw(crops):
    """(N, S, S, 3) uint8 crops -> (N, 3, S, S) float32 0..255, the recognizer's input."""
    return crops.permute(0, 3, 1, 2).float().contiguous()


def embed_on_device(recognizer, frames, landmarks, frame_index=None):
    """SFace-style embeddings of faces cut from device frames (torch backend).

    Returns
    -------
    ndarray (N, D) float32, L2-normalised
    """
    crops = align_faces(frames, landmarks, recognizer.size, frame_index=frame_index)
    engine = recognizer.engine
    (features,) = engine.run_device({engine.input_names[0]: crops_to_nchw(crops)})
    features = torch.nn.functional.normalize(features.float(), dim=1, eps=1e-12)
    return features.cpu().numpy()
