"""Serialised TensorRT engines ("plans") on disk, keyed by everything that makes one valid.

A plan only runs on the TensorRT version that built it, is tuned for one GPU, and holds
one model for one optimisation profile and precision. :class:`PlanKey` names all of
them; its digest is the file name, so a plan for anything else is never even opened.

File format (one file, written atomically, so a reader sees a whole plan or none)::

    b"STREAMFACE-PLAN\\n"   magic
    uint32 little-endian   header length
    header                 JSON: the key's fields, "sha256" and "size" of the plan, "built_at"
    plan                   TensorRT's serialised engine

A file is trusted only when the magic, the header's key, the size and the SHA-256 all
match; anything else (truncated, bit-flipped, written for another key) is reported and
rebuilt. A plan that passes but that TensorRT refuses to deserialise (``load`` returns
``None``) is rebuilt too.

Concurrent builders (the threads or processes of one ingest, several ingests on a
host) take an exclusive ``flock`` on ``<plan>.lock`` before building and look again once
they hold it: the first builds, the others wait and read its plan.

Everything here is plain Python on bytes (no TensorRT), so it is tested without a GPU.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import struct
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from streamface.atomic_write import atomic_write
from streamface.engine.errors import BackendError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("streamface.engine")

MAGIC = b"STREAMFACE-PLAN\n"
#: Bumped when the file format or the key's meaning changes (old plans are then ignored).
PLAN_FORMAT = 1
#: A TensorRT build of a large model can take minutes; a waiter gives up after this.
LOCK_TIMEOUT_S = 1800.0

T = TypeVar("T")


@dataclass(frozen=True)
class PlanKey:
    """What a plan is valid for.

    Attributes
    ----------
    model_sha256 : str
        SHA-256 (hex) of the ONNX bytes the plan was built from.
    gpu_name : str
        E.g. ``"NVIDIA H100 80GB HBM3"``.
    compute_capability : (int, int)
        E.g. ``(9, 0)``.
    tensorrt_version : str
        ``tensorrt.__version__``.
    profile : str
        :meth:`~streamface.engine.backends.tensorrt_profile.Profile.key`.
    precision : {"fp16", "fp32"}
    """

    model_sha256: str
    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    profile: str
    precision: str

    def __post_init__(self):
        if not re.fullmatch(r"[0-9a-f]{64}", self.model_sha256):
            raise ValueError(f"model_sha256 must be 64 hex digits, got {self.model_sha256!r}")
        if self.precision not in ("fp16", "fp32"):
            raise ValueError(f"precision must be 'fp16' or 'fp32', got {self.precision!r}")
        object.__setattr__(self, "compute_capability",
                           tuple(int(v) for v in self.compute_capability))

    def fields(self) -> dict:
        """The key as JSON-ready fields (with the plan format)."""
        fields = asdict(self)
        fields["compute_capability"] = list(self.compute_capability)
        fields["format"] = PLAN_FORMAT
        return fields

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical fields: any change gives another plan file."""
        text = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PlanEntry:
    """A plan file found in the cache (``streamface models list``)."""

    path: Path
    header: dict | None  # None: unreadable (it will be rebuilt when its key is asked for)
    size: int


def encode_plan(key: PlanKey, plan: bytes) -> bytes:
    """The file contents for ``plan`` under ``key``."""
    header = {**key.fields(), "sha256": hashlib.sha256(plan).hexdigest(), "size": len(plan),
              "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec="seconds")}
    text = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(text)) + text + plan


def read_header(data: bytes) -> tuple[dict, int]:
    """(header, offset of the plan) of a plan file's bytes; ``ValueError`` saying why not."""
    if not data.startswith(MAGIC):
        raise ValueError("not a streamface plan file (bad magic)")
    start = len(MAGIC) + 4
    if len(data) < start:
        raise ValueError("truncated header")
    (length,) = struct.unpack("<I", data[len(MAGIC):start])
    if len(data) < start + length:
        raise ValueError("truncated header")
    try:
        header = json.loads(data[start:start + length])
    except ValueError:
        raise ValueError("unreadable header") from None
    if not isinstance(header, dict):
        raise ValueError("unreadable header")
    return header, start + length


def decode_plan(key: PlanKey, data: bytes) -> bytes:
    """The plan in a file's ``data`` if it is a whole, undamaged plan for ``key``.

    Raises
    ------
    ValueError
        Saying what is wrong: magic, header, another key, size or checksum.
    """
    header, offset = read_header(data)
    expected = key.fields()
    wrong = sorted(k for k in expected if header.get(k) != expected[k])
    if wrong:
        raise ValueError(f"written for another key ({', '.join(wrong)} differ)")
    plan = data[offset:]
    if len(plan) != header.get("size"):
        raise ValueError(f"truncated plan ({len(plan)} of {header.get('size')} bytes)")
    if hashlib.sha256(plan).hexdigest() != header.get("sha256"):
        raise ValueError("plan bytes fail their SHA-256 (damaged)")
    return plan


def _label(name: str) -> str:
    """A short file-name-safe label from a model name or path (``.../yunet.onnx`` -> yunet)."""
    stem = Path(str(name)).stem or "model"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)[:40]


class PlanCache:
    """Plans in one folder (``<model cache>/plans`` by default).

    Parameters
    ----------
    directory : path-like
        Created on first write.
    lock_timeout : float, default :data:`LOCK_TIMEOUT_S`
        Seconds a builder waits for another one holding the same plan's lock.
    """

    def __init__(self, directory, lock_timeout: float = LOCK_TIMEOUT_S):
        if lock_timeout <= 0:
            raise ValueError(f"lock_timeout must be > 0, got {lock_timeout!r}")
        self.directory = Path(directory).expanduser()
        self.lock_timeout = float(lock_timeout)

    def path(self, key: PlanKey, name: str = "model") -> Path:
        """Where the plan for ``key`` lives (``<label>-<digest[:20]>.plan``)."""
        return self.directory / f"{_label(name)}-{key.digest[:20]}.plan"

    def read(self, key: PlanKey, name: str = "model") -> bytes | None:
        """The verified plan for ``key``, or ``None`` when there is none or it is damaged
        (logged with the reason; it is rebuilt, never trusted)."""
        path = self.path(key, name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("TensorRT plan %s unreadable (%s); rebuilding it", path, exc.strerror)
            return None
        try:
            return decode_plan(key, data)
        except ValueError as exc:
            logger.warning("TensorRT plan %s not used: %s; rebuilding it", path, exc)
            return None

    def write(self, key: PlanKey, plan: bytes, name: str = "model") -> Path:
        """Store ``plan`` for ``key`` atomically; returns its path."""
        if not plan:
            raise ValueError("an empty plan cannot be stored")
        return atomic_write(self.path(key, name), encode_plan(key, bytes(plan)))

    @contextmanager
    def lock(self, key: PlanKey, name: str = "model"):
        """Hold the exclusive build lock of ``key``'s plan (waits for another holder).

        Raises
        ------
        BackendError
            Still held by someone else after ``lock_timeout`` seconds.
        """
        if fcntl is None:  # pragma: no cover
            yield
            return
        path = self.path(key, name).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        with open(path, "a+", encoding="utf-8") as handle:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        handle.seek(0)
                        holder = handle.read().strip() or "unknown"
                        raise BackendError(
                            f"TensorRT plan {path.with_suffix('.plan')}: another builder "
                            f"({holder}) has held {path} for over {self.lock_timeout:g} s; "
                            f"wait for it or stop it") from None
                    time.sleep(0.1)
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(f"pid {os.getpid()}")
                handle.flush()
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def get_or_build(self, key: PlanKey, build: Callable[[], bytes],
                     load: Callable[[bytes], T | None], name: str = "model") -> tuple[T, str]:
        """The loaded plan for ``key``: from the cache when valid, else built and stored.

        Parameters
        ----------
        key : PlanKey
        build : callable () -> bytes
            Builds the serialised plan (minutes for TensorRT); called at most once, with
            the lock held.
        load : callable (bytes) -> object or None
            Deserialises a plan; ``None`` means it was refused (stale), so it is rebuilt.
        name : str
            The model, for the file name and messages.

        Returns
        -------
        (object, str)
            What ``load`` returned, and ``"cache"`` or ``"built"``.
        """
        loaded = self._load_cached(key, load, name)
        if loaded is not None:
            return loaded, "cache"
        with self.lock(key, name):
            # Another thread or process may have built it while this one waited.
            loaded = self._load_cached(key, load, name)
            if loaded is not None:
                return loaded, "cache"
            plan = build()
            path = self.write(key, plan, name)
            loaded = load(bytes(plan))
            if loaded is None:
                raise BackendError(f"{name}: TensorRT refused the plan it has just built "
                                   f"({path}); see TensorRT's log above")
            logger.info("TensorRT plan for %s built and cached: %s", name, path)
            return loaded, "built"

    def _load_cached(self, key: PlanKey, load, name: str):
        plan = self.read(key, name)
        if plan is None:
            return None
        loaded = load(plan)
        if loaded is None:
            logger.warning("TensorRT refused the cached plan %s (stale); rebuilding it",
                           self.path(key, name))
        return loaded

    def entries(self) -> list[PlanEntry]:
        """Every plan file in the folder, with its header when readable, sorted by name."""
        rows = []
        for path in sorted(self.directory.glob("*.plan")):
            try:
                with open(path, "rb") as handle:
                    head = handle.read(len(MAGIC) + 4)
                    if len(head) == len(MAGIC) + 4 and head.startswith(MAGIC):
                        (length,) = struct.unpack("<I", head[len(MAGIC):])
                        head += handle.read(length)
                header = read_header(head)[0]
            except (OSError, ValueError):
                header = None
            try:
                size = path.stat().st_size
            except OSError:
                continue
            rows.append(PlanEntry(path, header, size))
        return rows
