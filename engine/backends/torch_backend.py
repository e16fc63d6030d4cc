"""Torch backend: the prepared ONNX graph converted to a torch module, on the CPU or CUDA.

For GPU hosts that have PyTorch but no TensorRT and no onnxruntime-gpu. The graph is
converted by :mod:`.onnx_torch`. On CUDA the engine runs on its own stream, copies
inputs through pinned host buffers, optionally in FP16, and replays one CUDA graph per
input shape: a batch of ``n`` is padded to the smallest of ``graph_batches`` that holds
it (the padding rows are zeros and their outputs are dropped), so a stream of batches
of varying size reuses a handful of graphs. On the CPU it runs eagerly (that is how it is
tested where there is no GPU).

Besides :meth:`TorchEngine.run` (numpy in, numpy out, the protocol) there is
:meth:`TorchEngine.run_device` (device tensors in and out), which device-side
preprocessing (:mod:`streamface.engine.backends.torch_preprocess`) feeds without a
host round trip.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from streamface.engine.backends.base import Placement, announce
from streamface.engine.errors import BackendError

#: Batch sizes a CUDA graph is captured for; a batch is padded up to the next one.
GRAPH_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)

INSTALL_HINT = "pip install 'streamface[torch]'"


def require_torch(name: str = "model"):
    """Import torch, or raise a :class:`BackendError` naming the extra that installs it."""
    if importlib.util.find_spec("torch") is None:
        raise BackendError(f"{name}: backend 'torch' needs PyTorch, which is not installed; "
                           f"{INSTALL_HINT} (torch>=2.4), or use backend='ort'")
    import torch

    return torch


def torch_placement(device: str | None) -> Placement:
    """The torch backend's placement for a parsed device (``None``: auto).

    ``auto`` takes ``cuda:0`` when torch sees a CUDA device, else the CPU; an explicit
    CUDA device torch cannot use is an error.
    """
    torch = require_torch()
    cuda = torch.cuda.is_available()
    if device is None:
        return Placement("torch", "cuda:0" if cuda else "cpu")
    if device.startswith("cuda"):
        index = int(device.split(":")[1])
        if not cuda or index >= torch.cuda.device_count():
            seen = torch.cuda.device_count() if cuda else 0
            raise BackendError(f"backend 'torch': device {device!r} requested but torch "
                               f"{torch.__version__} sees {seen} CUDA device(s); use "
                               f"device='cpu' or backend='ort'")
    return Placement("torch", device)


def torch_cuda_status(device: str | None) -> tuple[bool, str]:
    """(usable, why or what) of torch on CUDA for a parsed ``device`` (``None``: auto,
    ``cuda:0``), for backend ``auto``; imports nothing when torch is absent."""
    if device == "cpu":
        return False, "the CPU was asked for"
    if importlib.util.find_spec("torch") is None:
        return False, "not installed"
    try:
        placement = torch_placement(device or "cuda:0")
    except BackendError as exc:
        return False, str(exc)
    return True, f"torch on {placement.device}"


class TorchEngine:
    """An :class:`~streamface.engine.backends.base.InferenceEngine` on PyTorch.

    Parameters
    ----------
    model : bytes or path-like
        A prepared ONNX model.
    device : str, default "cpu"
        ``"auto"``, ``"cpu"`` or ``"cuda:N"``.
    fp16 : bool, default False
        Run in half precision (CUDA only); inputs are cast on the device, outputs are
        returned as float32.
    cuda_graphs : bool, default True
        On CUDA, capture a graph per (padded batch, input shape) and replay it.
    graph_batches : tuple of int, default :data:`GRAPH_BATCHES`
        The padded batch sizes; batches larger than the last run eagerly.
    max_batch : int or None, default None
        Largest batch per call (``None``: no limit).
    intra_op_threads : int or None, default None
        ``torch.set_num_threads`` for the CPU (process-wide in torch); ``None`` leaves it.
    name : str
        Used in error messages.
    """

    backend = "torch"

    def __init__(self, model, *, device: str = "cpu", fp16: bool = False,
                 cuda_graphs: bool = True, graph_batches: tuple[int, ...] = GRAPH_BATCHES,
                 max_batch: int | None = None, intra_op_threads: int | None = None,
                 name: str = "model"):
        from streamface.engine.backends.base import parse_device

        torch = require_torch(name)
        from streamface.engine.backends.onnx_torch import convert

        placement = torch_placement(parse_device(device))
        if fp16 and not placement.is_cuda:
            raise ValueError(f"{name}: fp16=True needs a CUDA device, got {placement.device!r}")
        if intra_op_threads is not None and (not isinstance(intra_op_threads, int)
                                             or intra_op_threads < 0):
            raise ValueError(f"intra_op_threads must be a non-negative int or None, "
                             f"got {intra_op_threads!r}")
        batches = tuple(sorted(set(int(b) for b in graph_batches)))
        if not batches or batches[0] < 1:
            raise ValueError(f"graph_batches must be positive ints, got {graph_batches!r}")
        if intra_op_threads:
            torch.set_num_threads(intra_op_threads)
        self.torch = torch
        self.device = placement.device
        self.fp16 = bool(fp16)
        self.cuda_graphs = bool(cuda_graphs) and placement.is_cuda
        self.graph_batches = batches
        self.max_batch = max_batch
        self._device = torch.device(self.device)
        module = convert(model, name).eval().to(self._device)
        self.module = module.half() if self.fp16 else module
        self.input_names = module.input_names
        self.output_names = module.output_names
        self.input_shapes = module.input_shapes
        self._stream = torch.cuda.Stream(self._device) if placement.is_cuda else None
        self._pinned: dict[str, object] = {}
        self._graphs: dict[tuple, _Graph] = {}
        detail = f"onnx->torch, {'fp16' if self.fp16 else 'fp32'}"
        if placement.is_cuda:
            detail += ", cuda graphs" if self.cuda_graphs else ", eager"
        announce(placement, detail)

    # -- the protocol -----------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on host arrays; float32 outputs in ``output_names`` order."""
        torch = self.torch
        if self._stream is None:
            with torch.inference_mode():
                tensors = [torch.from_numpy(np.ascontiguousarray(inputs[k]))
                           for k in self.input_names]
                return [o.float().numpy() for o in self.module(*tensors)]
        with torch.cuda.stream(self._stream), torch.inference_mode():
            tensors = [self._upload(k, inputs[k]) for k in self.input_names]
            outputs = [self._download(i, o) for i, o in enumerate(self._forward(tensors))]
        self._stream.synchronize()
        # Copies: the pinned buffers are reused by the next call.
        return [o.numpy().copy() for o in outputs]

    def run_device(self, inputs: dict) -> list:
        """Run the model on device tensors (float32 NCHW on :attr:`device`); float32
        device tensors out, valid until the next call (they may be a graph's buffers).

        Work is queued on the engine's stream after the caller's current stream, so
        tensors the caller just produced are ready.
        """
        torch = self.torch
        tensors = [inputs[k] for k in self.input_names]
        if self._stream is None:
            with torch.inference_mode():
                return [o.float() for o in self.module(*tensors)]
        caller = torch.cuda.current_stream(self._device)
        self._stream.wait_stream(caller)
        with torch.cuda.stream(self._stream), torch.inference_mode():
            outputs = self._forward(tensors)
        caller.wait_stream(self._stream)
        if not self._uses_graph(tensors[0].shape[0]):
            for output in outputs:
                # Allocated on the engine's stream, used on the caller's: keep the memory
                # from being reused before the caller's work on it is done. (A graph's
                # outputs live in its own pool for as long as the engine.)
                output.record_stream(caller)
        return outputs

    def _uses_graph(self, n: int) -> bool:
        return self.cuda_graphs and n <= self.graph_batches[-1]

    # -- CUDA -------------------------------------------------------------------------
    def _upload(self, name: str, array: np.ndarray):
        """Host array -> pinned buffer -> device, asynchronously on the engine's stream."""
        torch = self.torch
        array = np.ascontiguousarray(array, np.float32)
        pinned = self._pinned.get(name)
        if pinned is None or pinned.numel() < array.size:
            pinned = torch.empty(max(array.size, 1), dtype=torch.float32).pin_memory()
            self._pinned[name] = pinned
        # No wait needed before overwriting: every run() ends with a stream sync.
        host = pinned[:array.size]
        host.numpy()[:] = array.ravel()
        return host.view(array.shape).to(self._device, non_blocking=True)

    def _download(self, index: int, tensor):
        """Device output -> a pinned host buffer, asynchronously (synchronised by run)."""
        key = f"out{index}"
        pinned = self._pinned.get(key)
        if pinned is None or pinned.numel() < tensor.numel():
            pinned = self.torch.empty(max(tensor.numel(), 1), dtype=self.torch.float32)
            pinned = pinned.pin_memory()
            self._pinned[key] = pinned
        host = pinned[:tensor.numel()].view(tensor.shape)
        host.copy_(tensor, non_blocking=True)
        return host

    def _forward(self, tensors: list) -> list:
        """Outputs (float32, on the device) for device inputs, via a graph when one fits."""
        n = tensors[0].shape[0]
        if not self._uses_graph(n):
            dtype = self.torch.float16 if self.fp16 else self.torch.float32
            return [o.float() for o in self.module(*(t.to(dtype) for t in tensors))]
        padded = next(b for b in self.graph_batches if b >= n)
        key = (padded,) + tuple(tuple(t.shape[1:]) for t in tensors)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = _Graph(self, padded, tensors)
        return graph.replay(tensors)

    def __repr__(self) -> str:
        return (f"TorchEngine(device={self.device!r}, fp16={self.fp16}, "
                f"cuda_graphs={self.cuda_graphs}, inputs={self.input_shapes!r})")


class _Graph:
    """One captured CUDA graph: static inputs of a padded batch, static float32 outputs."""

    def __init__(self, engine: TorchEngine, batch: int, like: list):
        torch = engine.torch
        dtype = torch.float16 if engine.fp16 else torch.float32
        self.inputs = [torch.zeros((batch,) + tuple(t.shape[1:]), dtype=dtype,
                                   device=engine._device) for t in like]

        def step():
            return [o.float() for o in engine.module(*self.inputs)]

        # Warm up on the engine's stream first: kernels pick their algorithms and the
        # converter uploads its host constants before capture (neither may be captured).
        for _ in range(2):
            step()
        engine._stream.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA work of other threads (decoders, other engines) during the
        # capture is not an error.
        with torch.cuda.graph(self.graph, stream=engine._stream,
                              capture_error_mode="thread_local"):
            self.outputs = step()

    def replay(self, tensors: list) -> list:
        n = tensors[0].shape[0]
        for static, tensor in zip(self.inputs, tensors):
            static[:n].copy_(tensor)
            if n < static.shape[0]:
                static[n:].zero_()
        self.graph.replay()
        return [o[:n] for o in self.outputs]
