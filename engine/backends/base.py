"""The inference-engine protocol and the choice of device and backend.

A backend turns a prepared ONNX model into an :class:`InferenceEngine`: named float32
inputs in, a list of output arrays out. Wrappers only ever talk to this protocol, so a
detector runs the same on ONNX Runtime CPU, CUDA, torch or native TensorRT.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from streamface.engine.errors import BackendError

logger = logging.getLogger("streamface.engine")

DEVICES_HELP = "'auto', 'cpu', 'cuda' or 'cuda:N'"
BACKENDS = ("auto", "ort", "tensorrt", "torch")


@runtime_checkable
class InferenceEngine(Protocol):
    """What every backend provides.

    Attributes
    ----------
    input_names, output_names : tuple of str
    input_shapes : dict of str to tuple
        Declared input shapes; symbolic dimensions are strings (``"batch"``).
    max_batch : int or None
        Largest batch the engine accepts in one call (``None``: no limit).
    device : str
        ``"cpu"`` or ``"cuda:N"``: where it actually runs.
    backend : str
        ``"ort"``, ...
    """

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_shapes: dict[str, tuple]
    max_batch: int | None
    device: str
    backend: str

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; outputs in ``output_names`` order."""
        ...


@dataclass(frozen=True)
class Placement:
    """Where and with what a model will run, after resolving ``"auto"``."""

    backend: str
    device: str  # "cpu" or "cuda:N"

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def device_id(self) -> int:
        return int(self.device.split(":")[1]) if self.is_cuda else 0


def parse_device(device: str) -> str | None:
    """Normalise ``device``: ``"cpu"``, ``"cuda:N"``, or ``None`` for ``"auto"``."""
    if not isinstance(device, str):
        raise ValueError(f"device must be {DEVICES_HELP}, got {device!r}")
    text = device.strip().lower()
    if text == "auto":
        return None
    if text == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ValueError(f"device must be {DEVICES_HELP}, got {device!r}")
    return f"cuda:{int(match.group(1) or 0)}"


def ort_cuda_available() -> bool:
    """Whether the installed ONNX Runtime was built with the CUDA execution provider."""
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def resolve(device: str = "auto", backend: str = "auto") -> Placement:
    """Turn ``device``/``backend`` (possibly ``"auto"``) into a concrete placement.

    Backend ``"auto"`` on a GPU takes, first to last, native TensorRT (tensorrt and a CUDA
    GPU), ONNX Runtime's CUDA provider (onnxruntime-gpu), the torch backend on CUDA, and
    else ONNX Runtime on the CPU (:mod:`.availability`). An explicit ``cuda`` device that
    this machine cannot serve is an error, never a silent fallback.

    Raises
    ------
    ValueError
        Unknown device or backend string.
    BackendError
        The device or backend is not available here.
    """
    wanted = parse_device(device)
    if backend not in BACKENDS:
        allowed = ", ".join(map(repr, BACKENDS))
        raise ValueError(f"backend must be one of {allowed}, got {backend!r}")
    # Imported here: each backend module imports this one.
    if backend == "torch":
        # Torch runs on the CPU too; ``auto`` takes CUDA when torch sees a device.
        from streamface.engine.backends.torch_backend import torch_placement

        return torch_placement(wanted)
    if backend == "tensorrt":
        from streamface.engine.backends.tensorrt import tensorrt_placement

        return tensorrt_placement(wanted)
    if backend == "auto":
        from streamface.engine.backends.availability import auto_placement

        return auto_placement(wanted)
    # ONNX Runtime, asked for by name.
    cuda = ort_cuda_available()
    if wanted is None:
        return Placement("ort", "cuda:0" if cuda else "cpu")
    if wanted.startswith("cuda") and not cuda:
        import onnxruntime

        raise BackendError(
            f"device {wanted!r} requested but onnxruntime {onnxruntime.__version__} has no CUDA "
            f"execution provider (providers: {', '.join(onnxruntime.get_available_providers())}); "
            f"install onnxruntime-gpu on a CUDA machine, or use device='cpu' or 'auto'")
    return Placement("ort", wanted)


_announced: set[tuple] = set()


def announce(placement: Placement, detail: str) -> None:
    """Log the backend/device choice once per process and combination."""
    key = (placement.backend, placement.device, detail)
    if key not in _announced:
        _announced.add(key)
        logger.info("inference on %s via %s (%s)", placement.device, placement.backend, detail)
