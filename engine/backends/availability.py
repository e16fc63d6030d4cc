"""What backend ``auto`` takes on this machine, and why not the others.

On a GPU, first to last: native TensorRT (the tensorrt package and a CUDA GPU), ONNX
Runtime's CUDA execution provider (onnxruntime-gpu), the torch backend on CUDA; else
ONNX Runtime on the CPU. Each check imports nothing whose package is absent, so ``auto``
costs nothing on a CPU-only install.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streamface.engine.backends.base import Placement, ort_cuda_available
from streamface.engine.errors import BackendError

#: The CUDA backends in the order ``auto`` tries them.
AUTO_ORDER = ("tensorrt", "ort", "torch")


@dataclass(frozen=True)
class Candidate:
    """One backend ``auto`` considered for CUDA: whether it can run, and why or what."""

    backend: str
    usable: bool
    detail: str


def cuda_candidate(backend: str, device: str | None) -> Candidate:
    """Whether ``backend`` can run on the parsed CUDA ``device`` (``None``: cuda:0) here."""
    if backend == "tensorrt":
        from streamface.engine.backends.tensorrt import tensorrt_status

        return Candidate(backend, *tensorrt_status(device))
    if backend == "torch":
        from streamface.engine.backends.torch_backend import torch_cuda_status

        return Candidate(backend, *torch_cuda_status(device))
    if backend == "ort":
        import onnxruntime

        if ort_cuda_available():
            return Candidate(backend, True, f"onnxruntime {onnxruntime.__version__} CUDA "
                                            f"execution provider")
        return Candidate(backend, False, f"onnxruntime {onnxruntime.__version__} has no CUDA "
                                         f"execution provider (onnxruntime-gpu not installed)")
    raise ValueError(f"backend must be one of {AUTO_ORDER}, got {backend!r}")


def pick(candidates: Iterable[Candidate], device: str | None) -> Placement:
    """The first usable of ``candidates`` (in ``auto``'s order; consumed lazily, so a
    generator stops at the first that can run), else the CPU when ``device`` is ``None``.

    Raises
    ------
    BackendError
        A CUDA ``device`` was asked for and none can run on it (every reason given).
    """
    tried = []
    for candidate in candidates:
        if candidate.usable:
            return Placement(candidate.backend, device or "cuda:0")
        tried.append(candidate)
    if device is None:
        return Placement("ort", "cpu")
    reasons = "; ".join(f"{c.backend}: {c.detail}" for c in tried)
    raise BackendError(f"device {device!r} requested but no backend here runs on CUDA "
                       f"({reasons}); install onnxruntime-gpu, tensorrt or torch with CUDA on a "
                       f"CUDA machine, or use device='cpu' or 'auto'")


def auto_placement(device: str | None, exclude: tuple[str, ...] = ()) -> Placement:
    """Backend ``auto``'s choice for a parsed ``device`` (``None``: auto, ``"cpu"``, ``"cuda:N"``).

    ``exclude`` names CUDA backends not to consider (a model one of them cannot run).

    Raises
    ------
    BackendError
        A CUDA device was asked for and no backend can run on it here (every reason given).
    """
    if device == "cpu":
        return Placement("ort", "cpu")
    return pick((cuda_candidate(b, device) for b in AUTO_ORDER if b not in exclude), device)


def auto_report() -> str:
    """One line: what ``auto`` picks on this machine, and what each CUDA backend lacks or has."""
    candidates = [cuda_candidate(b, None) for b in AUTO_ORDER]
    placement = pick(candidates, None)
    details = "; ".join(f"{c.backend}: {c.detail}" for c in candidates)
    return (f"backend auto here: {placement.backend} on {placement.device} (CUDA backends in "
            f"the order auto tries them: {details})")
