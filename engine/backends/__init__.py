"""Inference backends behind one protocol, :class:`InferenceEngine`.

``create_engine(model, device=..., backend=...)`` resolves ``"auto"`` (CUDA through
ONNX Runtime when onnxruntime-gpu is present, else the CPU; ``backend="torch"`` runs
the graph converted to PyTorch, CPU or CUDA), logs the choice once, and
returns an engine. Asking for a device or backend this machine lacks raises
:class:`~streamface.engine.errors.BackendError`.
"""

from __future__ import annotations

from streamface.engine.backends.base import (
    BACKENDS,
    InferenceEngine,
    Placement,
    parse_device,
    resolve,
)
from streamface.engine.backends.ort import OrtEngine
from streamface.engine.backends.unavailable import tensorrt_engine


def create_engine(model, *, device: str = "auto", backend: str = "auto",
                  name: str = "model", **options) -> InferenceEngine:
    """Build an inference engine for a prepared ONNX model.

    Parameters
    ----------
    model : bytes or path-like
        Prepared ONNX model.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default "auto"
    backend : {"auto", "ort", "tensorrt", "torch"}, default "auto"
    name : str
        Model name for messages.
    **options
        Backend options, e.g. ``intra_op_threads``, ``max_batch``, ``tensorrt`` (ORT);
        ``fp16``, ``cuda_graphs``, ``graph_batches`` (torch, see ``TorchEngine``).

    Returns
    -------
    InferenceEngine
    """
    placement = resolve(device, backend)
    if placement.backend == "tensorrt":
        return tensorrt_engine(model, device=placement.device, name=name, **options)
    if placement.backend == "torch":
        # Imported here: torch is an optional extra and slow to import.
        from streamface.engine.backends.torch_backend import TorchEngine

        return TorchEngine(model, device=placement.device, name=name, **options)
    return OrtEngine(model, device=device, name=name, **options)


__all__ = ["BACKENDS", "InferenceEngine", "OrtEngine", "Placement", "create_engine",
           "parse_device", "resolve"]
