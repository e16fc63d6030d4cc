"""The face store: one Zarr v3 store per dataset, one group per stream.

A store lives on local disk (a directory) or at any fsspec URL (``memory://``,
``s3://bucket/x.zarr``, ...). Opening checks that the location holds a
Streamface store of a version this code can read, and never changes what is
stored: only :meth:`FaceStore.writer` and :meth:`FaceStore.create_stream`
write, and only on a store opened writable.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fsspec
import zarr
from zarr.errors import ContainsGroupError
from zarr.storage import FsspecStore, LocalStore

from streamface.store.errors import (
    NotAStoreError,
    StoreError,
    StoreExistsError,
    StoreReadOnlyError,
    StoreVersionError,
    StreamNotFoundError,
)
from streamface.store.locking import LEASE_FILE, LOCK_FILE, FileLock, LeaseLock, WriterLock, fcntl
from streamface.store.names import parse_face_id, validate_stream_name
from streamface.store.schema import COMMIT_ATTR, STORE_VERSION, STREAM_ATTR, VERSION_ATTR, StreamConfig
from streamface.store.stream import CommitState, Stream, StreamWriter

MODES = ("r", "r+", "a", "w-")


@dataclass(frozen=True)
class Location:
    """Where a store lives: a local directory, or a path on an fsspec file system.

    Parameters
    ----------
    text : str
        As the user gave it (for messages).
    local : Path or None
        The directory, for local stores (``file://`` URLs included).
    fs : fsspec.AbstractFileSystem or None
        The file system, for URL stores.
    path : str
        The store's path on ``fs`` (URL stores) or ``str(local)``.
    storage_options : dict
    """

    text: str
    local: Path | None
    fs: Any
    path: str
    storage_options: dict

    @classmethod
    def parse(cls, location: str | os.PathLike, storage_options: dict | None = None) -> Location:
        text = os.fspath(location)
        options = dict(storage_options or {})
        if "://" not in text or text.startswith("file://"):
            local = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser().absolute()
            return cls(text, local, None, str(local), options)
        try:
            fs, path = fsspec.core.url_to_fs(text, **options)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"cannot open {text}: {exc}") from None
        return cls(text, None, fs, path.rstrip("/"), options)

    def has_root_metadata(self) -> bool:
        if self.local is not None:
            return (self.local / "zarr.json").is_file()
        return bool(self.fs.exists(f"{self.path}/zarr.json"))

    def state(self) -> str:
        """``"missing"``, ``"file"``, ``"empty"`` or ``"nonempty"`` (a directory with something in it)."""
        if self.local is not None:
            if not self.local.exists():
                return "missing"
            if not self.local.is_dir():
                return "file"
            return "nonempty" if any(self.local.iterdir()) else "empty"
        if not self.fs.exists(self.path):
            return "missing"
        if self.fs.isfile(self.path):
            return "file"
        return "nonempty" if self.fs.ls(self.path, detail=False) else "empty"

    def zarr_store(self, read_only: bool):
        if self.local is not None:
            return LocalStore(self.local, read_only=read_only)
        return FsspecStore.from_url(self.text, storage_options=self.storage_options or None, read_only=read_only)

    def nbytes(self, sub: str = "") -> int:
        """Bytes of the files under ``sub`` (the whole store when empty)."""
        if self.local is not None:
            root = self.local / sub if sub else self.local
            total = 0
            for dirpath, _, files in os.walk(root):
                for f in files:
                    try:
                        total += os.stat(os.path.join(dirpath, f)).st_size
                    except FileNotFoundError:  # removed by a writer meanwhile
                        pass
            return total
        path = f"{self.path}/{sub}" if sub else self.path
        try:
            return int(self.fs.du(path, total=True))
        except FileNotFoundError:
            return 0


class FaceStore:
    """A Streamface store: a Zarr v3 group holding one group per stream.

    Use :meth:`open` or :meth:`create`; don't call the constructor.

    Examples
    --------
    >>> store = FaceStore.create("memory://doc/example.zarr")
    >>> with store.writer("news", create=True, aligned_size=128) as w:
    ...     pass
    >>> FaceStore.open("memory://doc/example.zarr").streams
    ['news']
    """

    def __init__(self, location: Location, root: zarr.Group, *, read_only: bool, version: int) -> None:
        self._location = location
        self._root = root
        self.read_only = read_only
        self.version = version

    # ---- opening --------------------------------------------------------------------------------

    @classmethod
    def open(cls, location: str | os.PathLike, mode: str = "r", *,
             storage_options: dict | None = None) -> FaceStore:
        """Open (or create) a store.

        Parameters
        ----------
        location : str or PathLike
            A local directory, or an fsspec URL (``memory://x.zarr``, ``s3://bucket/x.zarr``).
        mode : {"r", "r+", "a", "w-"}, default "r"
            ``r`` read only; ``r+`` read and write an existing store; ``a`` open
            or create; ``w-`` create, failing if anything is there.
        storage_options : dict, optional
            Passed to fsspec for URLs (credentials, endpoint...).

        Raises
        ------
        NotAStoreError
            The location does not exist (``r``, ``r+``) or holds something else.
        StoreVersionError
            The store's format is newer than this Streamface reads.
        StoreExistsError
            ``w-`` and something is already there.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        loc = Location.parse(location, storage_options)
        if loc.has_root_metadata():
            if mode == "w-":
                raise StoreExistsError(f"cannot create a store at {loc.text}: a Zarr store is already there")
            return cls._open_existing(loc, read_only=(mode == "r"))
        state = loc.state()
        if mode in ("r", "r+"):
            reason = {"missing": "path does not exist", "file": "it is a file",
                      "empty": "directory is empty"}.get(state, "no zarr.json (not a Zarr v3 store)")
            raise NotAStoreError(f"no Streamface store at {loc.text}: {reason}")
        if state in ("file", "nonempty"):
            raise StoreExistsError(f"cannot create a store at {loc.text}: "
                                   f"{'a file' if state == 'file' else 'a non-empty directory'} is there")
        return cls._create(loc, exclusive=(mode == "w-"))

    @classmethod
    def create(cls, location: str | os.PathLike, *, storage_options: dict | None = None) -> FaceStore:
        """Create a new, empty store (``open(location, "w-")``)."""
        return cls.open(location, "w-", storage_options=storage_options)

    @classmethod
    def _create(cls, loc: Location, *, exclusive: bool) -> FaceStore:
        attrs = {VERSION_ATTR: STORE_VERSION, "streamface_created": _now()}
        if loc.local is not None:
            return cls._create_local(loc, attrs, exclusive=exclusive)
        try:
            root = zarr.create_group(loc.zarr_store(read_only=False), attributes=attrs, zarr_format=3)
        except ContainsGroupError:
            raise StoreExistsError(f"cannot create a store at {loc.text}: a Zarr group is already there") from None
        return cls(loc, root, read_only=False, version=STORE_VERSION)

    @classmethod
    def _create_local(cls, loc: Location, attrs: dict, *, exclusive: bool) -> FaceStore:
        # Made beside its place and renamed into it, so that the directory appears with its
        # root metadata: processes creating the same store at once (the inference actors of
        # ``ingest --ray``, two ingests sharing a store) never find it half made. A rename
        # replaces a missing or empty directory only; the loser opens the winner's store.
        loc.local.parent.mkdir(parents=True, exist_ok=True)
        staging = loc.local.parent / f".{loc.local.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            zarr.create_group(LocalStore(staging), attributes=attrs, zarr_format=3)
            try:
                os.rename(staging, loc.local)
            except OSError:
                if exclusive or not loc.has_root_metadata():
                    raise StoreExistsError(f"cannot create a store at {loc.text}: "
                                           f"something else was put there meanwhile") from None
                return cls._open_existing(loc, read_only=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cls(loc, zarr.open_group(loc.zarr_store(read_only=False), mode="r+"), read_only=False,
                   version=STORE_VERSION)

    @classmethod
    def _open_existing(cls, loc: Location, *, read_only: bool) -> FaceStore:
        try:
            root = zarr.open_group(loc.zarr_store(read_only=read_only), mode="r" if read_only else "r+")
        except Exception as exc:  # zarr raises a variety of errors for "not a group"
            raise NotAStoreError(f"no Streamface store at {loc.text}: not a Zarr group ({exc})") from None
        if root.metadata.zarr_format != 3:
            raise NotAStoreError(f"no Streamface store at {loc.text}: a Zarr v{root.metadata.zarr_format} group")
        version = root.attrs.get(VERSION_ATTR)
        if version is None:
            raise NotAStoreError(f"no Streamface store at {loc.text}: a Zarr group without '{VERSION_ATTR}'")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise NotAStoreError(f"no Streamface store at {loc.text}: bad {VERSION_ATTR} {version!r}")
        if version > STORE_VERSION:
            raise StoreVersionError(f"store at {loc.text} has format version {version}; this Streamface "
                                    f"reads up to version {STORE_VERSION} (upgrade streamface)")
        return cls(loc, root, read_only=read_only, version=version)

    # ---- streams --------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The location as given."""
        return self._location.text

    @property
    def streams(self) -> list[str]:
        """Names of the streams in the store, sorted."""
        names = []
        for key in self._root.group_keys():
            try:
                validate_stream_name(key)
            except ValueError:
                continue
            names.append(key)
        return sorted(names)

    def __contains__(self, name: str) -> bool:
        return name in self.streams

    def _group(self, name: str, mode: str) -> zarr.Group:
        validate_stream_name(name)
        try:
            group = zarr.open_group(store=self._root.store, path=name, mode=mode)
        except (FileNotFoundError, KeyError, ValueError):
            group = None
        if group is None or STREAM_ATTR not in group.attrs:
            raise StreamNotFoundError(f"no stream {name!r} in {self.location}; streams: {self.streams}")
        return group

    def stream(self, name: str) -> Stream:
        """Read access to stream ``name`` (a snapshot of its committed rows).

        Raises
        ------
        ValueError
            ``name`` is not a valid stream name.
        StreamNotFoundError
            There is no such stream.
        """
        return Stream(self._group(name, "r"), name, self.location)

    def embedding(self, face_id: str):
        """The stored embedding of face ``face_id`` (its stream is named in the id).

        Returns
        -------
        ndarray of float32, shape (D,)

        Raises
        ------
        ValueError
            ``face_id`` is not a face id.
        StreamNotFoundError, KeyError
            No such stream, or no such face in it.
        StoreError
            The face is stored but not embedded yet (``streamface analyze`` embeds it).
        """
        stream = self.stream(parse_face_id(face_id).stream)
        row = int(stream.rows_of([face_id])[0])
        if row >= stream.num_embedded:
            raise StoreError(f"face {face_id} has no embedding yet")
        return stream.read_embeddings(row, row + 1)[0]

    def _require_writable(self, what: str) -> None:
        if self.read_only:
            raise StoreReadOnlyError(f"cannot {what}: store {self.location} is open read-only (mode 'r')")

    def create_stream(self, name: str, *, crop_size: int = 256, aligned_size: int = 112,
                      exist_ok: bool = False) -> Stream:
        """Create stream ``name`` with its (fixed) configuration.

        Parameters
        ----------
        name : str
            ``[A-Za-z0-9._-]+``, not starting with ``.``, no ``..``.
        crop_size, aligned_size : int
            See :class:`~streamface.store.schema.StreamConfig`.
        exist_ok : bool, default False
            Return the existing stream when its configuration is the same.
        """
        self._require_writable(f"create stream {name!r}")
        validate_stream_name(name)
        config = StreamConfig(crop_size=crop_size, aligned_size=aligned_size).validate()
        attrs = {STREAM_ATTR: {"name": name, "config": config.to_json(), "created": _now()},
                 COMMIT_ATTR: CommitState().to_json()}
        try:
            self._root.create_group(name, attributes=attrs)
        except ContainsGroupError:
            if not exist_ok:
                raise StoreExistsError(f"stream {name!r} already exists in {self.location}") from None
            existing = self.stream(name)
            if existing.config != config:
                raise StoreError(f"stream {name!r} in {self.location} has {existing.config}, not {config}")
            return existing
        return self.stream(name)

    def writer(self, name: str, *, create: bool = False, crop_size: int | None = None,
               aligned_size: int | None = None, flush_rows: int = 256, force: bool = False,
               lease_ttl: float = 300.0) -> StreamWriter:
        """Take the one writer of stream ``name``.

        Parameters
        ----------
        name : str
        create : bool, default False
            Create the stream if it does not exist (with ``crop_size`` and
            ``aligned_size``, defaults 256 and 112).
        crop_size, aligned_size : int, optional
            When given for an existing stream, must equal its configuration.
        flush_rows : int, default 256
            Commit every this many buffered faces (or frames); 0 commits every append.
        force : bool, default False
            URL stores: take the lease over from a live writer.
        lease_ttl : float, default 300
            URL stores: seconds without a heartbeat after which a lease expires.

        Raises
        ------
        StoreLockedError
            Another writer holds the stream; the message names it.
        StoreReadOnlyError
            The store was opened with mode ``"r"``.
        StreamNotFoundError
            No such stream and ``create`` is False.
        """
        self._require_writable(f"write stream {name!r}")
        validate_stream_name(name)
        if name not in self.streams:
            if not create:
                raise StreamNotFoundError(f"no stream {name!r} in {self.location} (pass create=True to create it)")
            self.create_stream(name, crop_size=crop_size or 256, aligned_size=aligned_size or 112, exist_ok=True)
        config = StreamConfig.from_json(self._group(name, "r").attrs[STREAM_ATTR]["config"])
        for key, value in (("crop_size", crop_size), ("aligned_size", aligned_size)):
            if value is not None and getattr(config, key) != value:
                raise StoreError(f"stream {name!r} has {key}={getattr(config, key)}, not {value}")
        lock = self._lock(name, force=force, ttl=lease_ttl)
        lock.acquire()
        try:
            local_dir = None if self._location.local is None else self._location.local / name
            # Opened after the lock is held, so the counters read are the last writer's last commit.
            return StreamWriter(self._group(name, "r+"), name, self.location, lock,
                                flush_rows=flush_rows, local_dir=local_dir)
        except BaseException:
            lock.release()
            raise

    def remove_empty_stream(self, name: str) -> bool:
        """Remove stream ``name`` if it holds no frame and no face (what a run that
        failed before committing anything leaves); a stream with data is kept.

        Returns
        -------
        bool
            Whether the stream was removed.

        Raises
        ------
        StoreLockedError
            Another writer holds the stream.
        """
        self._require_writable(f"remove stream {name!r}")
        validate_stream_name(name)
        if name not in self.streams:
            return False
        lock = self._lock(name, force=False, ttl=300.0)
        lock.acquire()
        try:
            stream = self.stream(name)
            if stream.num_frames or stream.num_faces:
                return False
            del self._root[name]
            if self._location.local is not None:  # the lock file is no Zarr key
                shutil.rmtree(self._location.local / name, ignore_errors=True)
            return True
        finally:
            lock.release()

    def _lock(self, name: str, *, force: bool, ttl: float) -> WriterLock:
        if self._location.local is not None and fcntl is not None:
            return FileLock(self._location.local / name / LOCK_FILE, name)
        if self._location.local is not None:  # pragma: no cover - no fcntl (Windows)
            return LeaseLock(fsspec.filesystem("file"), str(self._location.local / name / LEASE_FILE),
                             name, ttl=ttl, force=force)
        return LeaseLock(self._location.fs, f"{self._location.path}/{name}/{LEASE_FILE}", name, ttl=ttl, force=force)

    def nbytes(self, name: str | None = None) -> int:
        """Bytes the store (or stream ``name``) occupies: the sizes of its files/objects."""
        if name is not None:
            validate_stream_name(name)
        return self._location.nbytes(name or "")

    def __repr__(self) -> str:
        return f"<FaceStore {self.location} v{self.version} {'r' if self.read_only else 'r+'}: {self.streams}>"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
