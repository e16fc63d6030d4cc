"""Native TensorRT backend: an engine built from the prepared ONNX file, cached as a plan.

:class:`TensorRTEngine` parses the prepared ONNX bytes with TensorRT's ONNX parser,
builds an engine for one optimisation profile (:mod:`.tensorrt_profile`: the batch and
input sizes the pipeline runs) in FP16 where TensorRT and the GPU offer it (FP32 on
request), and keeps the serialised engine in the plan cache (:mod:`.plan_cache`, keyed by
the model's SHA-256, the GPU and its compute capability, the TensorRT version, the
profile and the precision), so only the first run on a machine pays the build (tens of
seconds to minutes).

It runs with device buffers from PyTorch's CUDA caching allocator on its own CUDA stream
(``IExecutionContext.execute_async_v3`` with tensor addresses), inputs staged through
pinned host memory. PyTorch is used rather than cuda-python because the project's device
preprocessing (:mod:`.torch_preprocess`) already hands torch tensors to
:meth:`TensorRTEngine.run_device`, and one CUDA library is one thing to get right.

Written against the TensorRT 10 Python API (``tensorrt`` on PyPI, 10.0 or newer):
explicit-batch networks (the only kind since 10.0), ``IBuilderConfig.set_flag(FP16)``,
``build_serialized_network``, ``Runtime.deserialize_cuda_engine``, named I/O tensors.
TensorRT 11 builds strongly typed networks only and has no FP16 builder flag; there the
engine keeps the ONNX file's FP32 and says so.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamface.engine.backends.base import Placement, announce, parse_device
from streamface.engine.backends.plan_cache import PlanCache, PlanKey
from streamface.engine.backends.tensorrt_profile import (
    Profile,
    ProfileRequest,
    choose_profile,
)
from streamface.engine.errors import BackendError, ModelError

logger = logging.getLogger("streamface.engine")

INSTALL_HINT = ("pip install 'streamface[tensorrt]' (TensorRT 10 or newer, and PyTorch with "
                "CUDA for the device buffers)")
MIN_TENSORRT = 10
#: TensorRT's scratch memory while building and running (the models here need far less).
WORKSPACE_BYTES = 1 << 30


# -- what is installed ------------------------------------------------------------------------

def tensorrt_major(version: str) -> int:
    """The major version of a ``tensorrt.__version__`` string (0 when unreadable)."""
    match = re.match(r"\s*(\d+)", str(version))
    return int(match.group(1)) if match else 0


def require_tensorrt(name: str | None = None):
    """Import tensorrt (10 or newer), or raise a one-line :class:`BackendError` saying how to
    install it."""
    if importlib.util.find_spec("tensorrt") is None:
        raise BackendError(f"{_who(name)}backend 'tensorrt' needs the tensorrt Python package, "
                           f"which is not installed; {INSTALL_HINT} on a CUDA host, or use "
                           f"backend='ort'")
    try:
        import tensorrt
    except Exception as exc:  # ImportError/OSError: its CUDA libraries are missing
        raise BackendError(f"{_who(name)}the tensorrt package is installed but does not load "
                           f"({_first_line(exc)}); reinstall it for this CUDA driver "
                           f"({INSTALL_HINT}), or use backend='ort'") from None
    if tensorrt_major(tensorrt.__version__) < MIN_TENSORRT:
        raise BackendError(f"{_who(name)}TensorRT {tensorrt.__version__} is too old for backend "
                           f"'tensorrt' ({MIN_TENSORRT}.0 or newer needed); {INSTALL_HINT}, or "
                           f"use backend='ort'")
    return tensorrt


def require_torch_cuda(name: str | None = None):
    """Import torch for the device buffers, or raise a one-line :class:`BackendError`."""
    if importlib.util.find_spec("torch") is None:
        raise BackendError(f"{_who(name)}backend 'tensorrt' keeps its buffers on the GPU with "
                           f"PyTorch, which is not installed; {INSTALL_HINT}, or use "
                           f"backend='ort'")
    import torch

    return torch


def tensorrt_placement(device: str | None, name: str | None = None) -> Placement:
    """The TensorRT placement for a parsed device (``None``: auto, ``cuda:0``).

    Raises
    ------
    BackendError
        tensorrt or torch missing, no CUDA GPU, the CPU asked for, or no such GPU.
    """
    if device == "cpu":
        raise BackendError("backend 'tensorrt' runs on CUDA only; use device='cuda:0' "
                           "or backend='ort' for the CPU")
    require_tensorrt(name)
    torch = require_torch_cuda(name)
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none: a CPU-only build"
        raise BackendError(f"{_who(name)}backend 'tensorrt' needs a CUDA GPU, and torch "
                           f"{torch.__version__} (CUDA {build}) sees none; check the driver "
                           f"(nvidia-smi), or use backend='ort' for the CPU")
    index = 0 if device is None else int(device.split(":")[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise BackendError(f"{_who(name)}device 'cuda:{index}' requested but there are {count} "
                           f"CUDA device(s); use cuda:0..cuda:{count - 1}")
    return Placement("tensorrt", f"cuda:{index}")


def tensorrt_status(device: str | None) -> tuple[bool, str]:
    """(usable, why or what) of TensorRT for a parsed ``device`` (``None``: auto), for
    backend ``auto`` and ``streamface models list``; imports nothing when tensorrt or
    torch is absent."""
    if importlib.util.find_spec("tensorrt") is None:
        return False, "not installed"
    if importlib.util.find_spec("torch") is None:
        return False, "installed, but PyTorch (its device buffers) is not"
    try:
        placement = tensorrt_placement(device)
    except BackendError as exc:
        return False, str(exc)
    import tensorrt

    return True, f"TensorRT {tensorrt.__version__} on {placement.device}"


def gpu_identity(torch, index: int) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of CUDA device ``index``."""
    props = torch.cuda.get_device_properties(index)
    return str(props.name), (int(props.major), int(props.minor))


# -- the ONNX side (no TensorRT needed) -------------------------------------------------------

@dataclass(frozen=True)
class ModelIO:
    """A graph's declared inputs (name -> shape, symbolic dimensions as strings) and
    output names, in graph order."""

    inputs: dict[str, tuple]
    outputs: tuple[str, ...]


def model_io(data: bytes, name: str = "model") -> ModelIO:
    """The declared inputs and outputs of ONNX ``data`` (initialisers are not inputs)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        graph = onnx.load_model_from_string(bytes(data)).graph
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{name}: not an ONNX model ({_first_line(exc)}); if it is a "
                         f"registry model run `streamface models prepare NAME`") from None
    constants = {i.name for i in graph.initializer}
    inputs = {i.name: tuple(d.dim_param or (d.dim_value if d.dim_value > 0 else "?")
                            for d in i.type.tensor_type.shape.dim)
              for i in graph.input if i.name not in constants}
    return ModelIO(inputs, tuple(o.name for o in graph.output))


def describe_node(data: bytes, index: int) -> tuple[str, str]:
    """(name, operator) of node ``index`` of ONNX ``data`` (``("?", "?")`` if out of range)."""
    import onnx

    nodes = onnx.load_model_from_string(bytes(data)).graph.node
    if 0 <= index < len(nodes):
        return nodes[index].name or f"#{index}", nodes[index].op_type
    return "?", "?"


@dataclass(frozen=True)
class ParseProblem:
    """One error of TensorRT's ONNX parser, as plain values."""

    description: str
    node: int  # -1: not about one node
    node_name: str = ""
    operator: str = ""


def parse_failure_message(name: str, problems: list[ParseProblem]) -> str:
    """One line naming the first node TensorRT could not parse, and how many more failed."""
    if not problems:
        return f"{name}: TensorRT's ONNX parser rejected the model without saying why"
    first = problems[0]
    where = (f"node {first.node} {first.node_name!r} ({first.operator})" if first.node >= 0
             else "the graph")
    more = f" (+{len(problems) - 1} more errors)" if len(problems) > 1 else ""
    return (f"{name}: TensorRT cannot parse {where}: {_first_line(first.description)[:300]}"
            f"{more}; use backend='ort' or 'torch' for this model")


def _who(name: str | None) -> str:
    """``"name: "`` to start a message about a model, ``""`` when there is none."""
    return f"{name}: " if name else ""


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- building ---------------------------------------------------------------------------------

def choose_precision(fp16: bool, has_fp16_flag: bool, capability: tuple[int, int]) -> str:
    """``"fp16"`` when asked for, this TensorRT has the FP16 builder flag (10.x; 11 builds
    strongly typed networks only) and the GPU has fast FP16 (compute capability 5.3 and
    up, except 6.1, the consumer Pascal parts); else ``"fp32"``."""
    capability = tuple(capability)
    fast = capability >= (5, 3) and capability != (6, 1)
    return "fp16" if fp16 and has_fp16_flag and fast else "fp32"


def build_plan(trt, trt_logger, data: bytes, profile: Profile, *, fp16: bool,
               workspace: int = WORKSPACE_BYTES, name: str = "model") -> bytes:
    """Parse ONNX ``data`` and build a serialised engine for ``profile``.

    Raises
    ------
    ModelError
        The parser rejected the model (the message names the first failing node).
    BackendError
        TensorRT could not build an engine.
    """
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT >= 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(bytes(data)):
        problems = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            node = int(error.node())
            node_name = _call(error, "node_name")
            operator = _call(error, "node_operator")
            if node >= 0 and not (node_name and operator):
                node_name, operator = describe_node(data, node)
            problems.append(ParseProblem(str(error.desc()), node, node_name, operator))
        raise ModelError(parse_failure_message(name, problems))
    parsed = {network.get_input(i).name for i in range(network.num_inputs)}
    if parsed != {n for n, _ in profile.inputs}:
        raise BackendError(f"{name}: TensorRT sees inputs {sorted(parsed)}, the profile covers "
                           f"{[n for n, _ in profile.inputs]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation = builder.create_optimization_profile()
    for input_name, shapes in profile.inputs:
        optimisation.set_shape(input_name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(optimisation)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"{name}: TensorRT could not build an engine for the profile "
                           f"{profile.key()} ({'fp16' if fp16 else 'fp32'}); see TensorRT's "
                           f"log above, or use backend='ort'")
    return bytes(serialized)


def deserialize(runtime, plan: bytes):
    """``runtime.deserialize_cuda_engine(plan)``, ``None`` when TensorRT refuses it (a plan
    from another TensorRT build or damaged in a way its checksum cannot see)."""
    try:
        return runtime.deserialize_cuda_engine(plan)
    except Exception as exc:  # the bindings raise for some malformed plans
        logger.warning("TensorRT could not deserialise a plan: %s", _first_line(exc))
        return None


def _call(obj, method: str) -> str:
    """``obj.method()`` as text, ``""`` where this TensorRT lacks it."""
    fn = getattr(obj, method, None)
    try:
        return str(fn()) if fn is not None else ""
    except Exception:  # an older binding without the field
        return ""


def make_trt_logger(trt):
    """A ``tensorrt.ILogger`` that sends TensorRT's messages to the ``streamface.engine``
    logger (errors as errors, warnings as warnings, the rest at debug level)."""
    severity = trt.ILogger.Severity
    errors = {severity.INTERNAL_ERROR, severity.ERROR}

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, level, msg):
            if level in errors:
                logger.error("TensorRT: %s", msg)
            elif level == severity.WARNING:
                logger.warning("TensorRT: %s", msg)
            else:
                logger.debug("TensorRT: %s", msg)

    return Logger()


# -- the engine -------------------------------------------------------------------------------

class TensorRTEngine:
    """An :class:`~streamface.engine.backends.base.InferenceEngine` on native TensorRT.

    Parameters
    ----------
    model : bytes or path-like
        A prepared ONNX model (float32 inputs and outputs).
    device : str, default "cuda:0"
        ``"auto"`` or ``"cuda:N"``.
    profile : ProfileRequest or None, default None
        The batch and input sizes to build for (see :mod:`.tensorrt_profile`);
        ``None``: batches 1..``max_batch`` (32 by default), for models whose other
        dimensions are fixed.
    max_batch : int or None, default None
        Shorthand for ``ProfileRequest(max_batch=...)`` when ``profile`` is ``None``.
    fp16 : bool, default True
        Let TensorRT choose FP16 kernels where the GPU and this TensorRT offer them
        (inputs and outputs stay float32); ``False`` builds FP32.
    plan_dir : path-like or None
        The plan cache folder (``None``: ``<model cache>/plans``).
    workspace : int, default :data:`WORKSPACE_BYTES`
        TensorRT's workspace memory pool, bytes.
    intra_op_threads : int or None
        Accepted for the common loader call; unused (TensorRT runs on the GPU).
    name : str
        The model's name or path, for messages and the plan's file name.

    Attributes
    ----------
    precision : {"fp16", "fp32"}
        What the engine was built with.
    plan_path : Path
    plan_source : {"cache", "built"}
        Whether this engine came from the plan cache or was built now.
    profile : Profile
    """

    backend = "tensorrt"

    def __init__(self, model, *, device: str = "cuda:0", profile: ProfileRequest | None = None,
                 max_batch: int | None = None, fp16: bool = True, plan_dir=None,
                 workspace: int = WORKSPACE_BYTES, intra_op_threads: int | None = None,
                 name: str = "model"):
        data = bytes(model) if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        if profile is not None and max_batch is not None:
            raise ValueError("pass max_batch inside the ProfileRequest, not both")
        if profile is None:
            profile = ProfileRequest() if max_batch is None else ProfileRequest(max_batch=max_batch)
        if not isinstance(profile, ProfileRequest):
            raise ValueError(f"profile must be a ProfileRequest, got {type(profile).__name__}")
        if not isinstance(workspace, int) or workspace <= 0:
            raise ValueError(f"workspace must be a positive int (bytes), got {workspace!r}")
        io = model_io(data, name)
        self.profile = choose_profile(io.inputs, profile, name)
        placement = tensorrt_placement(parse_device(device), name)
        trt = require_tensorrt(name)
        torch = require_torch_cuda(name)
        self.torch, self.trt = torch, trt
        self.device = placement.device
        self._device = torch.device(self.device)
        self._logger = make_trt_logger(trt)
        with torch.cuda.device(self._device):
            gpu, capability = gpu_identity(torch, placement.device_id)
            self.precision = choose_precision(fp16, hasattr(trt.BuilderFlag, "FP16"), capability)
            if fp16 and self.precision == "fp32":
                logger.info("%s: no FP16 build with TensorRT %s on %s (compute capability "
                            "%d.%d); building FP32", name, trt.__version__, gpu, *capability)
            key = PlanKey(hashlib.sha256(data).hexdigest(), gpu, capability, trt.__version__,
                          self.profile.key(), self.precision)
            if plan_dir is None:
                # Imported here: the model cache imports the backends.
                from streamface.engine.weights.cache import ModelCache

                plan_dir = ModelCache().plans_dir
            cache = PlanCache(plan_dir)
            self.plan_path = cache.path(key, name)
            runtime = trt.Runtime(self._logger)
            self._runtime = runtime
            self.engine, self.plan_source = cache.get_or_build(
                key,
                lambda: build_plan(trt, self._logger, data, self.profile,
                                   fp16=self.precision == "fp16", workspace=workspace,
                                   name=name),
                lambda plan: deserialize(runtime, plan),
                name)
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise BackendError(f"{name}: TensorRT could not create an execution context "
                                   f"(GPU memory?)")
            self._stream = torch.cuda.Stream(self._device)
        self.name = name
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names
                  if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        missing = set(io.outputs) - set(names)
        if set(inputs) != set(io.inputs) or missing:
            raise BackendError(f"{name}: the TensorRT engine's tensors {names} are not the "
                               f"model's inputs {list(io.inputs)} and outputs {list(io.outputs)}")
        # The graph's order, as ONNX Runtime gives it (wrappers zip names with outputs).
        self.input_names = tuple(io.inputs)
        self.output_names = io.outputs
        self.input_shapes = dict(io.inputs)
        self.max_batch = self.profile.max_batch
        self._dtypes = {n: _torch_dtype(torch, trt, self.engine.get_tensor_dtype(n))
                        for n in names}
        self._pinned: dict[str, object] = {}
        self._lock = threading.Lock()  # one execution context: one call at a time
        announce(placement, f"TensorRT {trt.__version__}, {self.precision}, plan "
                            f"{'from the cache' if self.plan_source == 'cache' else 'built'} "
                            f"{self.plan_path.name}")

    # -- the protocol -------------------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on host arrays; float32 outputs in ``output_names`` order.

        Raises
        ------
        BackendError
            A batch larger than the profile's, or an input shape outside it.
        """
        arrays = {k: np.ascontiguousarray(inputs[k], np.float32) for k in self.input_names}
        self.profile.check({k: a.shape for k, a in arrays.items()}, self.name)
        torch = self.torch
        with self._lock, torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            tensors = {k: self._upload(k, a) for k, a in arrays.items()}
            outputs = self._execute(tensors)
            hosts = [self._download(i, o) for i, o in enumerate(outputs)]
            self._stream.synchronize()
            # Copies: the pinned buffers are reused by the next call.
            return [h.numpy().astype(np.float32, copy=True) for h in hosts]

    def run_device(self, inputs: dict) -> list:
        """Run the model on device tensors (float32 NCHW on :attr:`device`); float32
        device tensors out. Queued on the engine's stream after the caller's current
        stream, and the caller's stream waits for the outputs."""
        torch = self.torch
        tensors = {k: inputs[k].to(self._device, torch.float32).contiguous()
                   for k in self.input_names}
        self.profile.check({k: tuple(t.shape) for k, t in tensors.items()}, self.name)
        with self._lock, torch.cuda.device(self._device):
            caller = torch.cuda.current_stream(self._device)
            self._stream.wait_stream(caller)
            with torch.cuda.stream(self._stream):
                outputs = [o.float() for o in self._execute(tensors)]
            caller.wait_stream(self._stream)
            for tensor in (*tensors.values(), *outputs):
                # Used on the engine's stream, freed on the caller's: keep the memory
                # from being reused before both are done with it.
                tensor.record_stream(self._stream)
                tensor.record_stream(caller)
            return outputs

    def _execute(self, tensors: dict) -> list:
        """Set shapes and addresses, enqueue on the engine's stream; device outputs."""
        torch = self.torch
        for k, tensor in tensors.items():
            if not self.context.set_input_shape(k, tuple(tensor.shape)):
                raise BackendError(f"{self.name}: TensorRT refused input {k!r} of shape "
                                   f"{tuple(tensor.shape)} (profile {self.profile.key()})")
            self._address(k, tensor)
        outputs = []
        for k in self.output_names:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(k))
            out = torch.empty(shape, dtype=self._dtypes[k], device=self._device)
            self._address(k, out)
            outputs.append(out)
        if not self.context.execute_async_v3(self._stream.cuda_stream):
            raise BackendError(f"{self.name}: TensorRT failed to run the engine; see "
                               f"TensorRT's log above")
        return outputs

    def _address(self, name: str, tensor) -> None:
        if not self.context.set_tensor_address(name, int(tensor.data_ptr())):
            raise BackendError(f"{self.name}: TensorRT refused the device buffer of {name!r}")

    def _upload(self, name: str, array: np.ndarray):
        """Host array -> pinned buffer -> device, asynchronously on the engine's stream."""
        torch = self.torch
        pinned = self._pinned.get(name)
        if pinned is None or pinned.numel() < array.size:
            pinned = torch.empty(max(array.size, 1), dtype=torch.float32).pin_memory()
            self._pinned[name] = pinned
        # No wait before overwriting: every run() ends with a stream sync.
        host = pinned[:array.size]
        host.numpy()[:] = array.ravel()
        return host.view(array.shape).to(self._device, non_blocking=True)

    def _download(self, index: int, tensor):
        """Device output -> a pinned host buffer, asynchronously (synchronised by run)."""
        key = f"out{index}"
        pinned = self._pinned.get(key)
        if pinned is None or pinned.numel() < tensor.numel() or pinned.dtype != tensor.dtype:
            pinned = self.torch.empty(max(tensor.numel(), 1), dtype=tensor.dtype).pin_memory()
            self._pinned[key] = pinned
        host = pinned[:tensor.numel()].view(tensor.shape)
        host.copy_(tensor, non_blocking=True)
        return host

    def __repr__(self) -> str:
        return (f"TensorRTEngine(device={self.device!r}, precision={self.precision!r}, "
                f"profile={self.profile.key()!r}, plan={str(self.plan_path)!r})")


def _torch_dtype(torch, trt, dtype):
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.INT8: torch.int8,
             trt.DataType.BOOL: torch.bool}
    if hasattr(trt.DataType, "INT64"):
        table[trt.DataType.INT64] = torch.int64
    if dtype not in table:
        raise BackendError(f"TensorRT tensor type {dtype} is not supported by backend 'tensorrt'")
    return table[dtype]
