"""A small ONNX -> torch converter: the prepared graph run node by node as a ``nn.Module``.

Why our own and not the ``onnx2torch`` package: onnx2torch 1.5 imports ``torchvision``
at import time (for its NMS and RoiAlign converters, which our models do not use), and a
torchvision wheel pins one exact torch version: beside a given torch (the CPU build on
dev machines, the image's CUDA build on GPU hosts) it either fails to install or replaces
that torch. And with that import stubbed out it still converted none of ours (tried with
1.5.15): no converters for opset 21's Resize (YuNet) and Flatten (SFace), and a KeyError
on RetinaFace's weights passed through Identity nodes. Our models use few operators,
listed in :data:`SUPPORTED_OPS`; a graph with any other operator is refused when it is
loaded, naming the operator.

The module is an interpreter, not generated code: the graph's nodes run in order
(ONNX stores them topologically sorted). Shape arithmetic (``Shape`` -> ``Gather`` ->
``Concat`` -> ``Resize`` sizes, as RetinaFace's FPN does) runs on the host in numpy, so
a forward pass never reads device memory back; that is what lets CUDA graphs capture
it (a graph is captured per input shape, where those host values are fixed).
Float initializers are registered buffers (moved and cast by ``.to()``/``.half()``);
integer ones stay on the host for the shape arithmetic.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

from streamface.engine.errors import ModelError

#: Operators this converter implements: those of YuNet, SFace, RetinaFace, CenterFace
#: and MTCNN as prepared (each checked against ONNX Runtime), and a few close relatives.
SUPPORTED_OPS = frozenset({
    "Add", "BatchNormalization", "Cast", "Concat", "Constant", "Conv", "ConvTranspose",
    "Div", "Flatten", "Gather", "Gemm", "Identity", "LeakyRelu", "MatMul", "MaxPool", "Mul",
    "PRelu", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice", "Softmax", "Sub",
    "Transpose", "Unsqueeze", "Upsample",
})

# Inputs read as host values (sizes, scales, indices): a constant there is taken from its
# host copy, never read back from the device (which a CUDA graph capture forbids).
_HOST_INPUTS = {"Resize": (1, 2, 3), "Upsample": (1,), "Reshape": (1,), "Slice": (1, 2, 3, 4),
                "Unsqueeze": (1,), "Gather": (1,)}

# Operators with a numpy path: when all their inputs are host values (constants, shape
# arithmetic) they run on the host, so float constants in shape arithmetic stay there too.
_HOST_CAPABLE = frozenset({"Add", "Sub", "Mul", "Div", "Cast", "Concat", "Gather", "Identity",
                           "Reshape", "Shape", "Slice", "Transpose", "Unsqueeze"})

# ONNX TensorProto element types -> numpy and torch, for Cast.
_CAST = {1: (np.float32, torch.float32), 6: (np.int32, torch.int32), 7: (np.int64, torch.int64),
         9: (np.bool_, torch.bool), 10: (np.float16, torch.float16),
         11: (np.float64, torch.float64)}


def convert(model, name: str = "model") -> OnnxModule:
    """Convert a prepared ONNX model (bytes, path or ``onnx.ModelProto``) to a module.

    Raises
    ------
    ModelError
        The bytes are not ONNX, or the graph uses an operator not in :data:`SUPPORTED_OPS`.
    """
    try:
        if isinstance(model, onnx.ModelProto):
            proto = model
        elif isinstance(model, (bytes, bytearray)):
            proto = onnx.load_from_string(bytes(model))
        else:
            proto = onnx.load(model)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"{name}: not a readable ONNX model ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    if not proto.graph.node or not proto.graph.input or not proto.graph.output:
        raise ModelError(f"{name}: not an ONNX model with a graph (no nodes, inputs or "
                         f"outputs); if it is a registry model run `streamface models "
                         f"prepare NAME`")
    unsupported = sorted({n.op_type for n in proto.graph.node} - SUPPORTED_OPS)
    if unsupported:
        raise ModelError(f"{name}: the torch backend cannot convert operator(s) "
                         f"{', '.join(unsupported)}; use backend='ort'")
    domain = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    return OnnxModule(proto.graph, opset=domain[0] if domain else 13)


class OnnxModule(torch.nn.Module):
    """An ONNX graph as a torch module: ``forward(*inputs)`` returns the graph's outputs.

    Parameters
    ----------
    graph : onnx.GraphProto
    opset : int
        The default domain's opset (Softmax's axis semantics changed at 13).
    """

    def __init__(self, graph, opset: int):
        super().__init__()
        self.opset = opset
        self.host: dict[str, np.ndarray] = {}
        # Host values that meet device tensors (resize indices...), uploaded once per
        # device: a CUDA graph cannot capture a copy from pageable host memory.
        self._uploaded: dict[tuple, torch.Tensor] = {}
        self._buffer_of: dict[str, str] = {}
        for init in graph.initializer:
            self._constant(init.name, numpy_helper.to_array(init))
        self.nodes = []
        for node in graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                if "value" not in attrs:
                    raise ModelError(f"Constant node {node.name!r} without a tensor value is "
                                     f"not supported by the torch backend; use backend='ort'")
                self._constant(node.output[0], numpy_helper.to_array(attrs["value"]))
                continue
            if node.op_type == "Identity" and node.input[0] in self.host:
                # An alias of a weight (as exporters write them): one more constant.
                self._constant(node.output[0], self.host[node.input[0]])
                continue
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
            self.nodes.append((node.op_type, tuple(node.input), tuple(node.output), attrs))
        constants = set(self.host)
        inputs = [i for i in graph.input if i.name not in constants]
        self.input_names = tuple(i.name for i in inputs)
        #: Declared shapes, symbolic dimensions as strings (as ONNX Runtime reports them).
        self.input_shapes = {i.name: tuple(d.dim_param or d.dim_value
                                           for d in i.type.tensor_type.shape.dim)
                             for i in inputs}
        self.output_names = tuple(o.name for o in graph.output)

    def _constant(self, name: str, value: np.ndarray) -> None:
        self.host[name] = value
        if value.dtype.kind == "f":
            key = f"c{len(self._buffer_of)}"
            self._buffer_of[name] = key
            self.register_buffer(key, torch.from_numpy(value.astype(np.float32)))

    def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        env: dict[str, object] = dict(zip(self.input_names, inputs))
        for op, ins, outs, attrs in self.nodes:
            if op in _HOST_CAPABLE and all(not name or name in self.host
                                           or isinstance(env.get(name), np.ndarray)
                                           for name in ins):
                host = range(len(ins))
            else:
                host = _HOST_INPUTS.get(op, ())
            values = [None if not name else self.host[name] if j in host and name in self.host
                      else self._value(env, name) for j, name in enumerate(ins)]
            if op not in _HOST_CAPABLE:
                values = self._on_device(values, host)
            result = getattr(self, "_op_" + op)(values, attrs)
            if not isinstance(result, tuple):
                result = (result,)
            env.update(zip(outs, result))
        return [self._tensor(self._value(env, name), inputs[0]) for name in self.output_names]

    def _on_device(self, values: list, host) -> list:
        """Host arrays outside the host-read inputs, as device tensors (a tensor op)."""
        like = next((v for v in values if isinstance(v, torch.Tensor)), None)
        if like is None:
            return values
        return [self._tensor(v, like, like.dtype if v.dtype.kind == "f" else None)
                if isinstance(v, np.ndarray) and j not in host else v
                for j, v in enumerate(values)]

    def _value(self, env: dict, name: str):
        """A device tensor, or a host numpy array for shape values and integer constants."""
        if name in env:
            return env[name]
        key = self._buffer_of.get(name)
        return getattr(self, key) if key is not None else self.host[name]

    def _tensor(self, value, like: torch.Tensor, dtype=None) -> torch.Tensor:
        """``value`` as a tensor on ``like``'s device (host arrays uploaded once, cached)."""
        if isinstance(value, torch.Tensor):
            return value
        array = np.ascontiguousarray(value)
        key = (array.tobytes(), array.dtype.str, array.shape, like.device, dtype)
        if key not in self._uploaded:
            self._uploaded[key] = torch.from_numpy(array.copy()).to(like.device, dtype)
        return self._uploaded[key]

    @staticmethod
    def _host(value) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            # Only when a graph computes shapes from device data: a device read, not capturable.
            return value.detach().cpu().numpy()
        return np.asarray(value)

    # -- elementwise ------------------------------------------------------------------
    def _binary(self, values, fn):
        a, b = values
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return np.asarray(fn(np.asarray(a), np.asarray(b)))
        like = a if isinstance(a, torch.Tensor) else b
        return fn(self._tensor(a, like, like.dtype), self._tensor(b, like, like.dtype))

    def _op_Add(self, v, a):
        return self._binary(v, lambda x, y: x + y)

    def _op_Sub(self, v, a):
        return self._binary(v, lambda x, y: x - y)

    def _op_Mul(self, v, a):
        return self._binary(v, lambda x, y: x * y)

    def _op_Div(self, v, a):
        if all(not isinstance(x, torch.Tensor) and np.asarray(x).dtype.kind == "i" for x in v):
            return np.asarray(np.asarray(v[0]) // np.asarray(v[1]))
        return self._binary(v, lambda x, y: x / y)

    def _op_Relu(self, v, a):
        return torch.relu(v[0])

    def _op_LeakyRelu(self, v, a):
        return F.leaky_relu(v[0], a.get("alpha", 0.01))

    def _op_Sigmoid(self, v, a):
        return torch.sigmoid(v[0])

    def _op_PRelu(self, v, a):
        x, slope = v
        return torch.where(x >= 0, x, x * slope)

    def _op_Identity(self, v, a):
        return v[0]

    def _op_Cast(self, v, a):
        if a["to"] not in _CAST:
            raise ModelError(f"Cast to ONNX type {a['to']} is not supported by the torch "
                             f"backend; use backend='ort'")
        numpy_type, torch_type = _CAST[a["to"]]
        if isinstance(v[0], torch.Tensor):
            return v[0].to(torch_type)
        return np.asarray(v[0]).astype(numpy_type)

    # -- layers -----------------------------------------------------------------------
    @staticmethod
    def _pads(x, a, kernel) -> list[int]:
        """ONNX pads [top, left, bottom, right], ``auto_pad`` SAME_* worked out for ``x``."""
        mode = a.get("auto_pad", "NOTSET")
        if mode in ("NOTSET", "VALID"):
            return list(a.get("pads", [0] * 4)) if mode == "NOTSET" else [0] * 4
        strides, dilations = a.get("strides", (1, 1)), a.get("dilations", (1, 1))
        begin, end = [], []
        for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small = total // 2
            # SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the start.
            begin.append(small if mode == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        return begin + end

    def _op_Conv(self, v, a):
        x, w = v[0], v[1]
        bias = v[2] if len(v) > 2 else None
        pads = self._pads(x, a, w.shape[2:])
        begin, end = pads[:2], pads[2:]
        if begin != end:
            x = F.pad(x, (begin[1], end[1], begin[0], end[0]))
            begin = [0, 0]
        return F.conv2d(x, w, bias, stride=tuple(a.get("strides", (1, 1))),
                        padding=tuple(begin), dilation=tuple(a.get("dilations", (1, 1))),
                        groups=a.get("group", 1))

    def _op_ConvTranspose(self, v, a):
        x, w = v[0], v[1]
        bias = v[2] if len(v) > 2 else None
        if a.get("auto_pad", "NOTSET") != "NOTSET" or "output_shape" in a:
            raise ModelError("ConvTranspose with auto_pad or output_shape is not supported "
                             "by the torch backend; use backend='ort'")
        pads = list(a.get("pads", [0] * 4))
        if pads[:2] != pads[2:]:
            raise ModelError("ConvTranspose with asymmetric pads is not supported by the "
                             "torch backend; use backend='ort'")
        return F.conv_transpose2d(x, w, bias, stride=tuple(a.get("strides", (1, 1))),
                                  padding=tuple(pads[:2]),
                                  output_padding=tuple(a.get("output_padding", (0, 0))),
                                  groups=a.get("group", 1),
                                  dilation=tuple(a.get("dilations", (1, 1))))

    def _op_MaxPool(self, v, a):
        x = v[0]
        pads = self._pads(x, a, a["kernel_shape"])
        if pads[:2] != pads[2:]:
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]), value=float("-inf"))
            pads = [0, 0, 0, 0]
        return F.max_pool2d(x, tuple(a["kernel_shape"]), tuple(a.get("strides", (1, 1))),
                            tuple(pads[:2]), ceil_mode=bool(a.get("ceil_mode", 0)))

    def _op_BatchNormalization(self, v, a):
        x, gamma, beta, mean, var = v
        return F.batch_norm(x, mean, var, gamma, beta, False, 0.0, a.get("epsilon", 1e-5))

    def _op_Gemm(self, v, a):
        x, w = v[0], v[1]
        if a.get("transA", 0):
            x = x.t()
        if a.get("transB", 0):
            w = w.t()
        out = torch.mm(x, w) * a.get("alpha", 1.0)
        if len(v) > 2 and v[2] is not None:
            out = out + v[2] * a.get("beta", 1.0)
        return out

    def _op_MatMul(self, v, a):
        return torch.matmul(v[0], v[1])

    def _op_Flatten(self, v, a):
        axis = a.get("axis", 1)
        x = v[0]
        return x.reshape(int(np.prod(x.shape[:axis])), -1)

    def _op_Softmax(self, v, a):
        x = v[0]
        axis = a.get("axis", 1 if self.opset < 13 else -1) % x.dim()
        if self.opset >= 13 or axis == x.dim() - 1:
            return torch.softmax(x, dim=axis)
        # Before opset 13 Softmax works on the input flattened to 2-D at ``axis``.
        return torch.softmax(x.reshape(int(np.prod(x.shape[:axis])), -1), 1).reshape(x.shape)

    def _op_Resize(self, v, a):
        x = v[0]
        if a.get("mode", "nearest") != "nearest" \
                or a.get("coordinate_transformation_mode") not in ("asymmetric", None) \
                or a.get("nearest_mode", "round_prefer_floor") != "floor":
            raise ModelError(f"Resize {a} is not supported by the torch backend (only "
                             f"nearest/asymmetric/floor); use backend='ort'")
        scales = self._host(v[2]) if len(v) > 2 and v[2] is not None else np.zeros(0)
        sizes = self._host(v[3]) if len(v) > 3 and v[3] is not None else np.zeros(0)
        return self._nearest(x, scales, sizes)

    def _op_Upsample(self, v, a):
        if a.get("mode", "nearest") != "nearest":
            raise ModelError("Upsample other than nearest is not supported by the torch "
                             "backend; use backend='ort'")
        scales = np.asarray(a["scales"]) if "scales" in a else self._host(v[1])
        return self._nearest(v[0], scales, np.zeros(0))

    def _nearest(self, x: torch.Tensor, scales: np.ndarray, sizes: np.ndarray) -> torch.Tensor:
        """ONNX nearest resize, asymmetric coordinates, floor: ``src = floor(dst / scale)``."""
        shape = x.shape
        if sizes.size:
            out_h, out_w = int(sizes[-2]), int(sizes[-1])
            scale_h, scale_w = out_h / shape[-2], out_w / shape[-1]
        else:
            scale_h, scale_w = float(scales[-2]), float(scales[-1])
            out_h, out_w = int(np.floor(shape[-2] * scale_h)), int(np.floor(shape[-1] * scale_w))
        rows = np.minimum(np.floor(np.arange(out_h, dtype=np.float32) / np.float32(scale_h)),
                          shape[-2] - 1).astype(np.int64)
        cols = np.minimum(np.floor(np.arange(out_w, dtype=np.float32) / np.float32(scale_w)),
                          shape[-1] - 1).astype(np.int64)
        if (scale_h, scale_w) == (2.0, 2.0) and out_h == 2 * shape[-2] and out_w == 2 * shape[-1]:
            return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        return x.index_select(-2, self._tensor(rows, x)).index_select(-1, self._tensor(cols, x))

    # -- shapes -----------------------------------------------------------------------
    def _op_Shape(self, v, a):
        return np.asarray(tuple(v[0].shape) if isinstance(v[0], torch.Tensor)
                          else np.shape(v[0]), np.int64)

    def _op_Gather(self, v, a):
        data, index = v
        axis = a.get("axis", 0)
        if isinstance(data, torch.Tensor):
            idx = self._tensor(self._host(index).astype(np.int64), data)
            return data.index_select(axis, idx.reshape(-1)).reshape(
                data.shape[:axis] + tuple(idx.shape) + data.shape[axis + 1:])
        return np.take(np.asarray(data), self._host(index), axis=axis)

    def _op_Unsqueeze(self, v, a):
        axes = a["axes"] if "axes" in a else self._host(v[1]).tolist()
        x = v[0]
        if isinstance(x, torch.Tensor):
            for axis in sorted(ax % (x.dim() + len(axes)) for ax in axes):
                x = x.unsqueeze(axis)
            return x
        return np.expand_dims(np.asarray(x), tuple(axes))

    def _op_Concat(self, v, a):
        axis = a["axis"]
        if any(isinstance(x, torch.Tensor) for x in v):
            like = next(x for x in v if isinstance(x, torch.Tensor))
            return torch.cat([self._tensor(x, like) for x in v], dim=axis)
        return np.concatenate([np.atleast_1d(np.asarray(x)) for x in v], axis=axis)

    def _op_Slice(self, v, a):
        x = v[0]
        if "starts" in a:  # opset < 10: attributes
            starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
        else:
            starts, ends = self._host(v[1]).tolist(), self._host(v[2]).tolist()
            axes = self._host(v[3]).tolist() if len(v) > 3 and v[3] is not None else None
            steps = self._host(v[4]).tolist() if len(v) > 4 and v[4] is not None else None
        rank = x.dim() if isinstance(x, torch.Tensor) else np.ndim(x)
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
        index = [slice(None)] * rank
        for start, end, axis, step in zip(starts, ends, axes, steps):
            if step <= 0:
                raise ModelError("Slice with a negative step is not supported by the torch "
                                 "backend; use backend='ort'")
            # ONNX clamps INT64 sentinels; Python slicing clamps the same way.
            index[axis % rank] = slice(int(start), int(end), int(step))
        return x[tuple(index)] if isinstance(x, torch.Tensor) else np.asarray(x)[tuple(index)]

    def _op_Reshape(self, v, a):
        x, shape = v[0], self._host(v[1]).tolist()
        current = tuple(x.shape) if isinstance(x, torch.Tensor) else np.shape(x)
        if not a.get("allowzero", 0):
            shape = [current[i] if s == 0 else s for i, s in enumerate(shape)]
        return x.reshape(shape) if isinstance(x, torch.Tensor) else np.reshape(x, shape)

    def _op_Transpose(self, v, a):
        x = v[0]
        perm = a.get("perm") or list(range(x.dim()))[::-1]
        return x.permute(*perm).contiguous() if isinstance(x, torch.Tensor) \
            else np.transpose(x, perm)
