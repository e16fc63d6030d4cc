"""Test helpers for the Keras converter: Keras 2 HDF5 files written with h5py, and a
NumPy forward pass of the same Keras layers (NHWC, TensorFlow's padding rules).

Both are written from the Keras/TensorFlow definitions, independently of
``streamface.engine.weights.keras_to_onnx``: the reference reads the layer list and the
weights exactly as they are written, not through the converter's parser.
"""

from __future__ import annotations

import io
import json

import numpy as np


# -- writing Keras 2 HDF5 files ------------------------------------------------------------

def layer(kind: str, name: str, inbound=(), **config) -> dict:
    """One functional-model layer entry as Keras 2 writes it in ``model_config``."""
    return {"class_name": kind, "name": name, "config": {"name": name, **config},
            "inbound_nodes": [[[src, 0, 0, {}] for src in inbound]] if inbound else []}


def keras_h5(layers: list[dict], weights: dict[str, dict[str, np.ndarray]], *,
             inputs=None, outputs=None, weights_only: bool = False,
             sequential: bool = False) -> bytes:
    """A Keras 2 HDF5 file (``model.save`` layout, or ``save_weights`` when weights_only)."""
    import h5py

    buffer = io.BytesIO()
    inputs = inputs or [layers[0]["name"]]
    outputs = outputs or [layers[-1]["name"]]
    with h5py.File(buffer, "w") as h5:
        h5.attrs["keras_version"] = b"2.2.4"
        h5.attrs["backend"] = b"tensorflow"
        if not weights_only:
            if sequential:
                config = {"class_name": "Sequential", "config": {"name": "tiny", "layers": [
                    {"class_name": l["class_name"], "config": l["config"]} for l in layers]}}
            else:
                config = {"class_name": "Model", "config": {
                    "name": "tiny", "layers": layers,
                    "input_layers": [[n, 0, 0] for n in inputs],
                    "output_layers": [[n, 0, 0] for n in outputs]}}
            h5.attrs["model_config"] = json.dumps(config).encode()
            group = h5.create_group("model_weights")
        else:
            group = h5
        names = [l["name"] for l in layers]
        group.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name in names:
            sub = group.create_group(name)
            full = [f"{name}/{w}:0" for w in weights.get(name, {})]
            sub.attrs["weight_names"] = np.array([f.encode() for f in full])
            for f, (w, value) in zip(full, weights.get(name, {}).items()):
                sub.create_dataset(f, data=np.asarray(value, np.float32))
    return buffer.getvalue()


# -- a WHENet-shaped weights-only file -----------------------------------------------------

B0_STAGES = ((1, 1, 3, 1, 16), (2, 2, 3, 6, 24), (2, 2, 5, 6, 40), (3, 2, 3, 6, 80),
             (3, 1, 5, 6, 112), (4, 2, 5, 6, 192), (1, 1, 3, 6, 320))


def tiny_whenet_weights(width: float = 1 / 8, seed: int = 0):
    """A weights-only file laid out like WHENet.h5 (EfficientNet-B0 + 3 heads), narrow.

    Returns (file bytes, layer names in order, weights by layer)."""
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=0.5):
        return rng.normal(0, scale, shape).astype(np.float32)

    def bn(channels):
        return {"gamma": rng.uniform(0.5, 1.5, channels).astype(np.float32),
                "beta": rand(channels, scale=0.1), "moving_mean": rand(channels, scale=0.1),
                "moving_variance": rng.uniform(0.5, 1.5, channels).astype(np.float32)}

    names, weights, counts = [], {}, {}

    def add(kind, w=None):
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}_{counts[kind]}"
        names.append(name)
        if w:
            weights[name] = w
        return name

    def c(n):
        return max(2, int(round(n * width)))

    names.append("input_1")
    channels = c(32)
    add("conv2d", {"kernel": rand(3, 3, 3, channels, scale=0.3)})
    add("batch_normalization", bn(channels))
    add("swish")
    for repeats, _, k, expand, out in B0_STAGES:
        for r in range(repeats):
            cin, mid, cout = channels, channels * expand, c(out)
            if expand != 1:
                add("conv2d", {"kernel": rand(1, 1, cin, mid, scale=0.3)})
                add("batch_normalization", bn(mid))
                add("swish")
            add("depthwise_conv2d", {"depthwise_kernel": rand(k, k, mid, 1, scale=0.3)})
            add("batch_normalization", bn(mid))
            add("swish")
            squeezed = max(1, int(cin * 0.25))
            add("lambda")
            add("conv2d", {"kernel": rand(1, 1, mid, squeezed), "bias": rand(squeezed)})
            add("swish")
            add("conv2d", {"kernel": rand(1, 1, squeezed, mid), "bias": rand(mid)})
            add("activation")
            add("multiply")
            add("conv2d", {"kernel": rand(1, 1, mid, cout, scale=0.3)})
            add("batch_normalization", bn(cout))
            if r > 0:  # later repeats keep the shape: residual
                add("drop_connect")
                add("add")
            channels = cout
    add("conv2d", {"kernel": rand(1, 1, channels, c(1280), scale=0.3)})
    add("batch_normalization", bn(c(1280)))
    add("swish")
    add("global_average_pooling2d")
    for head, units in (("yaw_new", 120), ("pitch_new", 66), ("roll_new", 66)):
        names.append(head)
        weights[head] = {"kernel": rand(c(1280), units), "bias": rand(units)}
    data = keras_h5([layer("Weights", n) for n in names], weights, weights_only=True)
    return data, names, weights


# -- the NumPy reference -------------------------------------------------------------------

def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def tf_same_padding(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow: output ceil(size / s); the odd pixel of padding goes after."""
    k_eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + k_eff - size, 0)
    return total // 2, total - total // 2


def _pad_spatial(x, padding, k, s, d, value=0.0):
    if padding == "valid":
        return x, ((0, 0), (0, 0))
    (kh, kw), (sh, sw), (dh, dw) = k, s, d
    ph = tf_same_padding(x.shape[1], kh, sh, dh)
    pw = tf_same_padding(x.shape[2], kw, sw, dw)
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value), (ph, pw)


def _windows(x, k, s, d):
    """Yield (i, j, strided view) of every kernel offset."""
    (kh, kw), (sh, sw), (dh, dw) = k, s, d
    oh = (x.shape[1] - ((kh - 1) * dh + 1)) // sh + 1
    ow = (x.shape[2] - ((kw - 1) * dw + 1)) // sw + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                          j * dw:j * dw + (ow - 1) * sw + 1:sw, :]


def conv2d(x, kernel, bias, strides, padding, dilation=1):
    k, s, d = kernel.shape[:2], _pair(strides), _pair(dilation)
    x, _ = _pad_spatial(x, padding, k, s, d)
    out = None
    for i, j, view in _windows(x, k, s, d):
        term = view @ kernel[i, j].astype(np.float64)
        out = term if out is None else out + term
    return out if bias is None else out + bias


def depthwise2d(x, kernel, strides, padding, dilation=1):
    kh, kw, cin, mult = kernel.shape
    k, s, d = (kh, kw), _pair(strides), _pair(dilation)
    x, _ = _pad_spatial(x, padding, k, s, d)
    out = None
    for i, j, view in _windows(x, k, s, d):
        term = (view[..., :, None] * kernel[i, j]).reshape(view.shape[:3] + (cin * mult,))
        out = term if out is None else out + term
    return out


def pool(x, size, strides, padding, kind):
    k, s = _pair(size), _pair(strides or size)
    if kind == "max":
        xp, _ = _pad_spatial(x, padding, k, s, (1, 1), value=-np.inf)
        out = None
        for _, _, view in _windows(xp, k, s, (1, 1)):
            out = view if out is None else np.maximum(out, view)
        return out
    xp, _ = _pad_spatial(x, padding, k, s, (1, 1), value=0.0)
    ones, _ = _pad_spatial(np.ones_like(x[..., :1]), padding, k, s, (1, 1), value=0.0)
    total = count = None
    for (_, _, view), (_, _, valid) in zip(_windows(xp, k, s, (1, 1)),
                                           _windows(ones, k, s, (1, 1))):
        total = view if total is None else total + view
        count = valid if count is None else count + valid
    return total / count  # TensorFlow averages over the real pixels only


def activation(x, kind):
    if kind in (None, "linear"):
        return x
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "relu6":
        return np.clip(x, 0, 6)
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if kind == "swish":
        return x / (1 + np.exp(-x))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise NotImplementedError(kind)


def forward(layers: list[dict], weights: dict, x_nhwc: np.ndarray, outputs=None) -> list:
    """Run the Keras layers on NHWC input in float64; returns the output layers' values."""
    values = {}
    for entry in layers:
        kind, cfg, name = entry["class_name"], entry["config"], entry["name"]
        inbound = [n[0] for n in entry["inbound_nodes"][0]] if entry["inbound_nodes"] else []
        ins = [values[n] for n in inbound]
        w = weights.get(name, {})
        x = ins[0] if ins else None
        if kind == "InputLayer":
            y = x_nhwc.astype(np.float64)
        elif kind == "Conv2D":
            y = conv2d(x, w["kernel"], w.get("bias"), cfg.get("strides", 1),
                       cfg.get("padding", "valid"), cfg.get("dilation_rate", 1))
            y = activation(y, cfg.get("activation"))
        elif kind == "DepthwiseConv2D":
            y = depthwise2d(x, w["depthwise_kernel"], cfg.get("strides", 1),
                            cfg.get("padding", "valid"), cfg.get("dilation_rate", 1))
            y = y + w["bias"] if "bias" in w else y
            y = activation(y, cfg.get("activation"))
        elif kind == "SeparableConv2D":
            y = depthwise2d(x, w["depthwise_kernel"], cfg.get("strides", 1),
                            cfg.get("padding", "valid"), cfg.get("dilation_rate", 1))
            y = conv2d(y, w["pointwise_kernel"], w.get("bias"), 1, "valid")
            y = activation(y, cfg.get("activation"))
        elif kind == "BatchNormalization":
            eps = cfg.get("epsilon", 1e-3)
            gamma = w.get("gamma", 1.0)
            beta = w.get("beta", 0.0)
            y = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + eps) * gamma + beta
        elif kind == "Activation":
            y = activation(x, cfg["activation"])
        elif kind == "ReLU":
            y = np.where(x > 0, x, x * cfg.get("negative_slope", 0.0))
            if cfg.get("max_value") is not None:
                y = np.minimum(y, cfg["max_value"])
        elif kind == "MaxPooling2D":
            y = pool(x, cfg.get("pool_size", 2), cfg.get("strides"), cfg.get("padding", "valid"),
                     "max")
        elif kind == "AveragePooling2D":
            y = pool(x, cfg.get("pool_size", 2), cfg.get("strides"), cfg.get("padding", "valid"),
                     "avg")
        elif kind == "GlobalAveragePooling2D":
            y = x.mean(axis=(1, 2), keepdims=bool(cfg.get("keepdims", False)))
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = cfg["padding"]
            y = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
        elif kind == "Add":
            y = sum(ins)
        elif kind == "Multiply":
            y = ins[0]
            for other in ins[1:]:
                y = y * other
        elif kind == "Concatenate":
            y = np.concatenate(ins, axis=cfg.get("axis", -1))
        elif kind == "Flatten":
            y = x.reshape(x.shape[0], -1)  # NHWC order, as Keras
        elif kind == "Dense":
            y = activation(x @ w["kernel"] + w.get("bias", 0.0), cfg.get("activation"))
        elif kind == "Dropout":
            y = x
        else:
            raise NotImplementedError(kind)
        values[name] = y
    names = outputs or [layers[-1]["name"]]
    return [values[n] for n in names]
