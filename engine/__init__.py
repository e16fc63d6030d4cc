"""Runtime of Streamface: decoding, sources, inference backends and model wrappers.

Imports ``streamface.kernels`` only; knows nothing of stages, stores or the CLI.

Decoding::

    from streamface.engine import VideoDecoder
    with VideoDecoder("clip.mp4") as decoder:   # or an http(s)/HLS/rtsp URL, or a page URL
        for frame in decoder:                   # keyframes only; sample_fps=... to sample
            frame.rgb(), frame.pts, frame.time_us

Models::

    from streamface.engine import load_detector, load_recognizer, head_pose
    detector = load_detector()            # YuNet, prepared into the cache on first use
    recognizer = load_recognizer()        # SFace, 128-D L2-normalised
    faces = detector.detect(frames)       # one Detections per RGB frame
    emb = recognizer.embed(frames[0], faces[0].landmarks)
    pose = head_pose(faces[0].landmarks)  # (N, 3) yaw, pitch, roll in degrees
    gender = load_attribute_head("gender")  # after `streamface models fetch gender`
    probs = gender.predict(frames[0], faces[0].landmarks)  # (N, 2) [female, male]
"""

from streamface.engine.backends import InferenceEngine, OrtEngine, create_engine
from streamface.engine.decode import DecodedFrame, DecoderStats, VideoDecoder
from streamface.engine.detections import LANDMARK_NAMES, Detections, box_iou, nms
from streamface.engine.errors import BackendError, EngineError, ModelError
from streamface.engine.model_zoo import (
    AttributeHeads,
    load_attribute_head,
    load_attribute_heads,
    load_detector,
    load_recognizer,
)
from streamface.engine.models import REGISTRY, ModelCache, ModelSpec, default_home
from streamface.engine.pose import POSE_NAMES, head_pose
from streamface.engine.sources import Source, SourceError, UnsupportedSourceError, resolve_source

__all__ = [
    "LANDMARK_NAMES", "POSE_NAMES", "REGISTRY", "AttributeHeads", "BackendError", "Detections",
    "EngineError", "InferenceEngine", "ModelCache", "ModelError", "ModelSpec", "OrtEngine",
    "DecodedFrame", "DecoderStats", "Source", "SourceError", "UnsupportedSourceError", "VideoDecoder",
    "box_iou", "create_engine", "resolve_source", "default_home", "head_pose", "load_attribute_head",
    "load_attribute_heads", "load_detector", "load_recognizer", "nms",
]
