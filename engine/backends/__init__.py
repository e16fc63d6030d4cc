"""Inference backends behind one protocol, :class:`InferenceEngine`.

``create_engine(model, device=..., backend=...)`` resolves ``"auto"`` (on a GPU: native
TensorRT when tensorrt is installed, then ONNX Runtime CUDA with onnxruntime-gpu, then
the torch backend on CUDA; else ONNX Runtime on the CPU; see :mod:`.availability`), logs
the choice once, and returns an engine. ``backend="torch"`` runs the graph converted to
PyTorch (CPU or CUDA), ``backend="tensorrt"`` an engine TensorRT builds from it
(:mod:`.tensorrt`, plans cached by :mod:`.plan_cache`). Asking for a device or backend this
machine lacks raises :class:`~streamface.engine.errors.BackendError`.
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
        ``fp16``, ``cuda_graphs``, ``graph_batches`` (torch, see ``TorchEngine``);
        ``profile``, ``fp16``, ``plan_dir``, ``workspace`` (TensorRT, see ``TensorRTEngine``).

    Returns
    -------
    InferenceEngine
    """
    placement = resolve(device, backend)
    if placement.backend == "tensorrt":
        # Imported here: tensorrt and torch are optional and slow to import.
        from streamface.engine.backends.tensorrt import TensorRTEngine

        return TensorRTEngine(model, device=placement.device, name=name, **options)
    if placement.backend == "torch":
        # Imported here: torch is an optional extra and slow to import.
        from streamface.engine.backends.torch_backend import TorchEngine

        return TorchEngine(model, device=placement.device, name=name, **options)
    return OrtEngine(model, device=device, name=name, **options)


__all__ = ["BACKENDS", "InferenceEngine", "OrtEngine", "Placement", "create_engine",
           "parse_device", "resolve"]
