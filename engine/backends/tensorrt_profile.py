"""The TensorRT optimisation profile: which input shapes an engine is built for.

A TensorRT engine built from a graph with symbolic dimensions only runs the shapes of its
optimisation profile, a (min, opt, max) shape per input; TensorRT tunes its kernels for
``opt``. The pipeline's shapes are known before the engine is built:

* batch: a detector runs at most its ``max_batch`` frames per call (8 on CUDA unless the
  user says), a recognizer its ``max_batch`` crops (32); smaller batches occur at the end
  of a stream or when few faces are found, so the range is 1..max_batch, tuned for max;
* detector input: a frame's long side is scaled to ``input_size`` (640) and both sides
  rounded up to the model's size multiple (32), so the tensor is at most
  ``input_size`` x ``input_size``; 16:9 video, the common case, gives 384 x 640;
* fixed dimensions (SFace's 112 x 112) stay fixed.

Everything here is plain Python on shapes, so it is tested without TensorRT or a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamface.engine.errors import BackendError

#: Frames per detector call on CUDA when the user does not say (as the detector's own
#: default on CUDA, :func:`~streamface.engine.models.frame_batch.default_detector_batch`).
DETECTOR_CUDA_BATCH = 8


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class ShapeRange:
    """One input's (min, opt, max) shapes, each a tuple of positive ints."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def __post_init__(self):
        if not (len(self.min) == len(self.opt) == len(self.max)):
            raise ValueError(f"min, opt and max must have one rank, got {self.min}, "
                             f"{self.opt}, {self.max}")
        for lo, mid, hi in zip(self.min, self.opt, self.max):
            if not (all(map(_positive_int, (lo, mid, hi))) and lo <= mid <= hi):
                raise ValueError(f"need 0 < min <= opt <= max in every dimension, got "
                                 f"{self.min}, {self.opt}, {self.max}")

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= int(d) <= hi for lo, d, hi in zip(self.min, shape, self.max))

    def text(self) -> str:
        def dims(shape):
            return "x".join(map(str, shape))

        return f"{dims(self.min)}..{dims(self.opt)}..{dims(self.max)}"


@dataclass(frozen=True)
class Profile:
    """The optimisation profile of an engine: a :class:`ShapeRange` per input, in the
    model's input order."""

    inputs: tuple[tuple[str, ShapeRange], ...]

    @property
    def max_batch(self) -> int:
        """The largest batch every input accepts (dimension 0)."""
        return min(r.max[0] for _, r in self.inputs)

    def key(self) -> str:
        """Canonical text of the profile (part of the plan cache key)."""
        return ";".join(f"{name}={r.text()}" for name, r in self.inputs)

    def check(self, shapes: dict[str, tuple[int, ...]], name: str = "model") -> None:
        """Raise :class:`BackendError` unless every input shape is inside the profile.

        Parameters
        ----------
        shapes : dict of str to tuple of int
            The shapes of one call's inputs.
        name : str
            The model, for the message.
        """
        for input_name, r in self.inputs:
            shape = tuple(int(d) for d in shapes[input_name])
            if r.contains(shape):
                continue
            if len(shape) == len(r.max) and shape[0] > r.max[0] \
                    and r.contains((r.max[0],) + shape[1:]):
                raise BackendError(
                    f"{name}: batch {shape[0]} is larger than the TensorRT profile's maximum "
                    f"{r.max[0]} (input {input_name!r}); pass max_batch={r.max[0]} or less "
                    f"to the wrapper, or load it with max_batch={shape[0]} to build a plan "
                    f"for that batch")
            raise BackendError(
                f"{name}: input {input_name!r} of shape {'x'.join(map(str, shape))} is outside "
                f"the TensorRT profile {r.text()} the engine was built for; load the model "
                f"with the input_size/max_batch it will run at")


@dataclass(frozen=True)
class ProfileRequest:
    """The shapes the pipeline will run, from which :func:`choose_profile` makes a profile.

    Parameters
    ----------
    max_batch : int, default 32
        Largest batch per call.
    opt_batch : int or None, default None
        The batch to tune for (``None``: ``max_batch``, the steady state of a busy stream).
    max_size, opt_size : (int, int) or None
        (height, width) range of symbolic spatial dimensions (the last two of an NCHW
        input). ``None`` where the model has none.
    min_size : (int, int), default (32, 32)
        Smallest (height, width) (a detector's size multiple).
    """

    max_batch: int = 32
    opt_batch: int | None = None
    max_size: tuple[int, int] | None = None
    opt_size: tuple[int, int] | None = None
    min_size: tuple[int, int] = (32, 32)

    def __post_init__(self):
        if not _positive_int(self.max_batch):
            raise ValueError(f"max_batch must be an int >= 1, got {self.max_batch!r}")
        if self.opt_batch is not None and not (_positive_int(self.opt_batch)
                                               and self.opt_batch <= self.max_batch):
            raise ValueError(f"opt_batch must be an int in [1, {self.max_batch}], got "
                             f"{self.opt_batch!r}")
        for field in ("max_size", "opt_size", "min_size"):
            value = getattr(self, field)
            if value is not None and not (len(value) == 2 and all(map(_positive_int, value))):
                raise ValueError(f"{field} must be (height, width) positive ints, got {value!r}")


def detector_request(input_size: int = 640, max_batch: int | None = None,
                     size_multiple: int = 32) -> ProfileRequest:
    """The profile request of a letterboxing detector (see the module docstring).

    Parameters
    ----------
    input_size : int, default 640
        The detector's ``input_size`` (long side of the network input).
    max_batch : int or None, default None
        The detector's ``max_batch``; ``None``: :data:`DETECTOR_CUDA_BATCH`.
    size_multiple : int, default 32
        The model's size multiple (both sides are rounded up to it).
    """
    if not (_positive_int(size_multiple) and _positive_int(input_size)
            and input_size % size_multiple == 0):
        raise ValueError(f"input_size must be a positive multiple of {size_multiple!r}, got "
                         f"{input_size!r}")
    batch = DETECTOR_CUDA_BATCH if max_batch is None else max_batch
    # 16:9 video at the long side: the short side rounded up to the multiple.
    short = -(-round(input_size * 9 / 16) // size_multiple) * size_multiple
    return ProfileRequest(max_batch=batch, opt_batch=batch, max_size=(input_size, input_size),
                          opt_size=(short, input_size), min_size=(size_multiple, size_multiple))


def choose_profile(declared: dict[str, tuple], request: ProfileRequest,
                   name: str = "model") -> Profile:
    """The profile for a model's ``declared`` input shapes and the pipeline's ``request``.

    Parameters
    ----------
    declared : dict of str to tuple
        Input name -> declared shape; a dimension that is not a positive int (a name such
        as ``"batch"``, ``-1`` or ``None``) is symbolic.
    request : ProfileRequest
    name : str
        The model, for messages.

    Returns
    -------
    Profile
        Dimension 0 ranges over 1..max_batch (if symbolic); symbolic last two dimensions
        of a rank-4 input over the request's sizes; fixed dimensions stay.

    Raises
    ------
    BackendError
        A symbolic dimension the request does not cover (e.g. a symbolic height without
        ``max_size``).
    """
    inputs = []
    for input_name, shape in declared.items():
        low, mid, high = [], [], []
        for axis, dim in enumerate(shape):
            if _positive_int(dim):
                low.append(dim), mid.append(dim), high.append(dim)
                continue
            if axis == 0:
                low.append(1)
                mid.append(request.opt_batch or request.max_batch)
                high.append(request.max_batch)
            elif len(shape) == 4 and axis in (2, 3) and request.max_size is not None:
                side = axis - 2
                top = request.max_size[side]
                opt = request.opt_size[side] if request.opt_size is not None else top
                bottom = min(request.min_size[side], opt)
                low.append(bottom), mid.append(min(opt, top)), high.append(top)
            else:
                raise BackendError(
                    f"{name}: input {input_name!r} has a symbolic dimension {axis} ({dim!r}) "
                    f"that no TensorRT profile size covers; pass a ProfileRequest with "
                    f"max_size (height, width)")
        inputs.append((input_name, ShapeRange(tuple(low), tuple(mid), tuple(high))))
    if not inputs:
        raise BackendError(f"{name}: the model declares no inputs")
    return Profile(tuple(inputs))
