"""A reused NCHW float32 batch that detectors letterbox frames into.

Frames of any size go through ``streamface.kernels.preprocess_batch`` straight into one
preallocated buffer (top-left letterbox, the model's channel order and normalisation),
so the steady state of a stream of same-sized frames allocates nothing per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamface import kernels
from streamface.engine.weights.registry import Preprocessing


def default_detector_batch(engine) -> int:
    """Frames per detector call when the user does not say.

    On the CPU batching does not pay for detectors: YuNet at 640x384 ran 283 frames/s at
    batch 1 and 148 at batch 8 here (2-core EPYC; the activations of a batch outgrow the
    caches), so frames go one by one. On CUDA, batches of 8 keep the GPU busy.
    """
    return 8 if str(getattr(engine, "device", "cpu")).startswith("cuda") else 1


def frame_size(frame, index: int = 0) -> tuple[int, int]:
    """(height, width) of an RGB array, a (y, u, v) plane tuple or a decoded PyAV frame."""
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 \
                or frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(f"frames[{index}] must be an (H, W, 3) uint8 RGB array, got "
                             f"{frame.dtype} array of shape {frame.shape}")
        return frame.shape[0], frame.shape[1]
    if isinstance(frame, tuple) and len(frame) == 3 and isinstance(frame[0], np.ndarray) \
            and frame[0].ndim == 2:
        return frame[0].shape[0], frame[0].shape[1]
    if hasattr(frame, "planes") and hasattr(frame, "width") and hasattr(frame, "height"):
        return int(frame.height), int(frame.width)
    raise ValueError(f"frames[{index}] must be an (H, W, 3) uint8 RGB array, a (y, u, v) "
                     f"tuple of planes or a decoded yuv420p frame, got {type(frame).__name__}")


def check_frames(frames) -> tuple[list, list[tuple[int, int]]]:
    """``frames`` as a list, with each frame's (height, width); ``ValueError`` naming a bad one."""
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            raise ValueError("frames must be a list of (H, W, 3) uint8 RGB arrays (or an "
                             "(N, H, W, 3) array); for one frame pass [frame]")
        if frames.ndim != 4:
            raise ValueError(f"frames must be (N, H, W, 3), got shape {frames.shape}")
    frames = list(frames)
    return frames, [frame_size(frame, i) for i, frame in enumerate(frames)]


class FrameBatch:
    """Letterbox frames into a reused (B, 3, H, W) float32 tensor.

    Parameters
    ----------
    preprocessing : Preprocessing
        Channel order, mean, scale and size multiple of the model.
    long_side : int
        The longest frame side is scaled to this (a multiple of ``size_multiple``).
    fixed_size : (int, int) or None
        (height, width) of a model with a fixed input: frames are letterboxed into it.
    threads : int or None, default 1
        OpenMP threads of the letterbox kernel (``None``: the kernel's default, all
        cores). One thread is the default because the inference right after it already
        uses every core: on the shared 2-core test machine a 1080p frame took 1.0 ms on
        one thread and 12 ms on two (oversubscribed OpenMP barrier), 0.5 ms on two idle.
    """

    def __init__(self, preprocessing: Preprocessing, long_side: int, threads: int | None = 1,
                 fixed_size: tuple[int, int] | None = None):
        self.preprocessing = preprocessing
        self.long_side = long_side
        self.threads = threads
        self.fixed_size = fixed_size
        self._buffer = np.zeros((0, 3, 0, 0), np.float32)

    def network_size(self, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """(height, width) of the tensor for frames of ``sizes`` (height, width): every
        frame's long side scaled to ``long_side``, rounded up to the size multiple; or
        ``fixed_size`` (height, width) for models exported with a fixed input."""
        if self.fixed_size is not None:
            return self.fixed_size
        m = max(self.preprocessing.size_multiple, 1)
        height = width = 0
        for h, w in sizes:
            s = self.long_side / max(h, w)
            height, width = max(height, h * s), max(width, w * s)
        return int(-(-round(height) // m) * m), int(-(-round(width) // m) * m)

    def fill(self, frames: Sequence, sizes: Sequence[tuple[int, int]]):
        """Letterbox ``frames`` (of ``sizes``, from :func:`check_frames`) into the buffer.

        Returns
        -------
        tensor : ndarray, shape (n, 3, H, W), float32
            A view of the reused buffer (valid until the next ``fill``).
        letterbox : streamface.kernels.Letterbox
            Maps network pixels back to each frame's pixels (``boxes_to_frame``,
            ``points_to_frame``).
        """
        n = len(frames)
        height, width = self.network_size(sizes)
        b, _, h, w = self._buffer.shape
        if b < n or h != height or w != width:
            keep = b if (h, w) == (height, width) else 0
            self._buffer = np.zeros((max(n, keep), 3, height, width), np.float32)
        tensor = self._buffer[:n]
        p = self.preprocessing
        # Padding is black in pixel terms, as OpenCV's zero border before normalisation.
        pad = tuple((0.0 - m) * s for m, s in zip(p.mean, p.scale))
        letterbox = kernels.preprocess_batch(frames, tensor, mean=p.mean, scale=p.scale,
                                             channel_order=p.channel_order, pad_value=pad,
                                             center=False, threads=self.threads)
        return tensor, letterbox
