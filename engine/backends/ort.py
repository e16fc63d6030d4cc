"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers on GPUs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from streamface.engine.backends.base import Placement, announce, resolve
from streamface.engine.errors import BackendError, ModelError


class OrtEngine:
    """An :class:`~streamface.engine.backends.base.InferenceEngine` on ONNX Runtime.

    Parameters
    ----------
    model : bytes or path-like
        A prepared ONNX model (bytes are preferred: they are what was checksummed).
    device : str, default "cpu"
        ``"auto"``, ``"cpu"`` or ``"cuda:N"``.
    intra_op_threads : int or None, default None
        Threads ONNX Runtime uses inside one operator (``None``: all cores).
    max_batch : int or None, default None
        Largest batch per call; ``None`` takes the model's fixed batch dimension, or no
        limit when that dimension is symbolic.
    tensorrt : bool, default False
        On CUDA, put ONNX Runtime's TensorRT execution provider first (engines are
        built on first use and cached under ``trt_cache_dir``).
    trt_cache_dir : path-like or None
        Where the TensorRT EP caches its engines.
    name : str
        Used in error messages (the model's name or path).
    """

    backend = "ort"

    def __init__(self, model, *, device: str = "cpu", intra_op_threads: int | None = None,
                 max_batch: int | None = None, tensorrt: bool = False,
                 trt_cache_dir=None, name: str = "model"):
        import onnxruntime as ort

        placement = resolve(device, "ort")
        if intra_op_threads is not None and (not isinstance(intra_op_threads, int)
                                             or intra_op_threads < 0):
            raise ValueError(f"intra_op_threads must be a non-negative int or None, "
                             f"got {intra_op_threads!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads or 0
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = self._providers(placement, tensorrt, trt_cache_dir)
        source = model if isinstance(model, (bytes, bytearray)) else os.fspath(Path(model))
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{name}: ONNX Runtime cannot load it ({first[:300]}); if it is a "
                             f"registry model run `streamface models prepare NAME`") from None
        active = self.session.get_providers()
        if placement.is_cuda and active[0] not in ("CUDAExecutionProvider",
                                                   "TensorrtExecutionProvider"):
            if device == "auto":
                placement = Placement("ort", "cpu")
            else:
                raise BackendError(f"{name}: ONNX Runtime could not start on {placement.device} "
                                   f"(active providers: {', '.join(active)}); check the CUDA "
                                   f"driver and libraries, or use device='cpu'")
        announce(placement, "providers: " + ", ".join(active))
        self.device = placement.device
        self.providers = tuple(active)
        inputs = self.session.get_inputs()
        self.input_names = tuple(i.name for i in inputs)
        self.input_shapes = {i.name: tuple(i.shape) for i in inputs}
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        declared = inputs[0].shape[0] if inputs and inputs[0].shape else None
        self.max_batch = max_batch if max_batch is not None else (
            declared if isinstance(declared, int) else None)

    @staticmethod
    def _providers(placement: Placement, tensorrt: bool, trt_cache_dir) -> list:
        if not placement.is_cuda:
            return ["CPUExecutionProvider"]
        providers: list = []
        if tensorrt:
            trt = {"device_id": placement.device_id, "trt_engine_cache_enable": True}
            if trt_cache_dir is not None:
                trt["trt_engine_cache_path"] = os.fspath(trt_cache_dir)
            providers.append(("TensorrtExecutionProvider", trt))
        providers.append(("CUDAExecutionProvider", {"device_id": placement.device_id}))
        providers.append("CPUExecutionProvider")
        return providers

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on ``inputs`` (name -> array); outputs in ``output_names`` order."""
        return self.session.run(self.output_names, inputs)

    def __repr__(self) -> str:
        return (f"OrtEngine(device={self.device!r}, providers={list(self.providers)!r}, "
                f"inputs={self.input_shapes!r})")
