"""One stream's tables: reading committed rows (:class:`Stream`) and writing them (:class:`StreamWriter`).

Commit protocol
---------------
Everything a reader may trust is named by one JSON document, the
``streamface_commit`` attribute of the stream group::

    {"frames": 120, "faces": 301, "image_bytes": 0,
     "columns": {"faces/embedding": {"rows": 256, "dim": 128, "model": "sface"},
                 "faces/label": {"rows": 301},
                 "faces/attributes/age": {"rows": 256, "width": 9, "classes": ["0-2", ...]}}}

* Appends write the frame and face arrays first (growing them as needed), then
  rewrite this document with the new counters: one atomic object write commits
  a batch of frames together with its faces. A writer killed before that write
  leaves rows past the counters, which readers never read and which the next
  writer cuts off before it appends (so nothing is duplicated and nothing is
  missing but the batch that was in flight).
* Columns filled later (embeddings, labels, attributes) are updates of existing
  rows with their own committed prefix ``rows``: rows ``[0, rows)`` are valid.
  Writing rows ``[start, start + n)`` with ``start < rows`` first commits
  ``rows = start`` (so a kill mid-update never exposes a half-overwritten
  prefix), then writes, then commits the new count. Labels are written
  wholesale: a new labelling replaces the old one, and rows past it are unset.
* Frame and face counters only grow. A reader in another process keeps the
  snapshot it opened (or last refreshed); rows it may read are never rewritten
  or deleted under it. Update columns are the exception: while a writer
  rewrites embeddings or labels, a reader holding an older snapshot can read a
  mix of old and new values for the rows being rewritten; refresh and compare
  ``num_embedded`` / ``num_labelled`` when that matters.
* Durability is against process death (SIGKILL, OOM), not power loss: local
  writes go through the page cache without fsync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import zarr

from streamface.store.errors import NotAStoreError, StoreCorruptError, StoreError
from streamface.store.locking import WriterLock
from streamface.store.names import format_face_ids, validate_column_name
from streamface.store.records import FaceRecords, FrameRecords
from streamface.store.schema import (
    ATTRIBUTES,
    COMMIT_ATTR,
    EMBEDDING,
    INDEX_LABEL,
    LABEL,
    LABEL_KINDS,
    SOURCES_ATTR,
    STREAM_ATTR,
    UNSET_LABEL,
    ColumnSpec,
    StreamConfig,
    attribute_column,
    embedding_column,
    face_columns,
    frame_columns,
    image_columns,
    index_label_column,
    label_column,
)
from streamface.store.table import ColumnSet, GrowingArray, write_rows

_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


@dataclass
class CommitState:
    """The committed counters of a stream (the ``streamface_commit`` attribute)."""

    frames: int = 0
    faces: int = 0
    image_bytes: int = 0
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "faces": self.faces, "image_bytes": self.image_bytes,
                "columns": {k: dict(v) for k, v in self.columns.items()}}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CommitState:
        return cls(int(doc["frames"]), int(doc["faces"]), int(doc.get("image_bytes", 0)),
                   {k: dict(v) for k, v in doc.get("columns", {}).items()})

    def copy(self) -> CommitState:
        return CommitState.from_json(self.to_json())


def _update_spec(path: str, info: dict[str, Any]) -> ColumnSpec:
    """The spec of an update column from its commit entry."""
    if path == EMBEDDING:
        return embedding_column(int(info["dim"]))
    if path == LABEL:
        return label_column()
    if path == INDEX_LABEL:
        return index_label_column()
    if path.startswith(ATTRIBUTES + "/"):
        width = info.get("width")
        return attribute_column(path.rsplit("/", 1)[1], None if width is None else int(width))
    raise StoreCorruptError(f"unknown column {path!r} in the commit record")


def _label_path(kind: str) -> str:
    """The column of label kind ``kind`` (see :data:`~streamface.store.schema.LABEL_KINDS`)."""
    try:
        return LABEL_KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"label kind must be one of {sorted(LABEL_KINDS)}, got {kind!r}") from None


def _delete(group: zarr.Group, path: str) -> None:
    try:
        del group[path]
    except KeyError:
        pass


def _bounds(start: int, stop: int | None, total: int, what: str) -> tuple[int, int]:
    stop = total if stop is None else int(stop)
    start = int(start)
    if not 0 <= start <= stop <= total:
        raise IndexError(f"{what} rows [{start}, {stop}) out of range: {total} committed")
    return start, stop


class Stream:
    """Read access to one stream of a store: committed rows only.

    Obtain one with :meth:`FaceStore.stream`. The counters are a snapshot taken
    when the stream was opened; :meth:`refresh` takes a new one (to follow a
    writer in another process).

    Parameters
    ----------
    group : zarr.Group
        The stream group.
    name : str
        The stream's name.
    where : str
        The store's location, for messages.
    """

    def __init__(self, group: zarr.Group, name: str, where: str) -> None:
        self._group = group
        self.name = name
        self._where = f"{where}/{name}"
        self._load()

    def _load(self) -> None:
        attrs = dict(self._group.attrs)
        if STREAM_ATTR not in attrs or COMMIT_ATTR not in attrs:
            raise NotAStoreError(f"{self._where} is not a Streamface stream (no {STREAM_ATTR} attribute)")
        self.config = StreamConfig.from_json(attrs[STREAM_ATTR]["config"])
        self._state = CommitState.from_json(attrs[COMMIT_ATTR])
        self._frames = ColumnSet(self._group, frame_columns())
        self._faces = ColumnSet(self._group, face_columns(self.config))
        self._images = ColumnSet(self._group, image_columns())
        self._updates: dict[str, GrowingArray] = {}

    def refresh(self) -> Stream:
        """Re-read the committed counters (rows another process committed since) and return ``self``."""
        self._group = zarr.open_group(store=self._group.store, path=self._group.path, mode="r")
        self._load()
        return self

    # ---- counters -------------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        """Committed frames."""
        return self._state.frames

    @property
    def num_faces(self) -> int:
        """Committed faces."""
        return self._state.faces

    @property
    def num_embedded(self) -> int:
        """Faces with a committed embedding (a prefix of the faces: rows ``[0, num_embedded)``)."""
        return int(self._state.columns.get(EMBEDDING, {}).get("rows", 0))

    @property
    def num_labelled(self) -> int:
        """Faces with a committed cluster label (rows ``[0, num_labelled)``)."""
        return int(self._state.columns.get(LABEL, {}).get("rows", 0))

    @property
    def num_index_labelled(self) -> int:
        """Faces with a committed index (HRI) label (rows ``[0, num_index_labelled)``)."""
        return int(self._state.columns.get(INDEX_LABEL, {}).get("rows", 0))

    @property
    def embedding_dim(self) -> int | None:
        """Embedding width D, or None before the first embeddings are written."""
        info = self._state.columns.get(EMBEDDING)
        return None if info is None else int(info["dim"])

    @property
    def embedding_model(self) -> str | None:
        """Name of the model that produced the embeddings, or None."""
        info = self._state.columns.get(EMBEDDING)
        return None if info is None else str(info["model"])

    @property
    def attribute_names(self) -> list[str]:
        """Names of the attribute columns, sorted."""
        prefix = ATTRIBUTES + "/"
        return sorted(k[len(prefix):] for k in self._state.columns if k.startswith(prefix))

    def attribute_classes(self, name: str) -> list[str] | None:
        """Class names of attribute ``name`` (one per value of a row), or None if it has none."""
        info = self._attribute_info(name)
        return None if info.get("classes") is None else list(info["classes"])

    def num_attribute_rows(self, name: str) -> int:
        """Faces with a committed value of attribute ``name`` (a prefix)."""
        return int(self._attribute_info(name)["rows"])

    def _attribute_info(self, name: str) -> dict[str, Any]:
        info = self._state.columns.get(f"{ATTRIBUTES}/{name}")
        if info is None:
            raise KeyError(f"stream {self.name!r} has no attribute {name!r}; it has {self.attribute_names}")
        return info

    @property
    def has_images(self) -> bool:
        """Whether any frame image bytes were committed."""
        return self._state.image_bytes > 0

    def source_start_time(self, fingerprint: str) -> int | None:
        """Capture time (µs since the epoch) given to pts 0 of the file whose content
        fingerprint is ``fingerprint`` when it was first captured into this stream; None
        when no such file was (see :meth:`StreamWriter.record_source`)."""
        entry = dict(self._group.attrs).get(SOURCES_ATTR, {}).get(fingerprint)
        return None if entry is None else int(entry["start_time_us"])

    # ---- reading --------------------------------------------------------------------------------

    def read_frames(self, start: int = 0, stop: int | None = None, *, images: bool = False) -> FrameRecords:
        """Committed frames ``[start, stop)``.

        Parameters
        ----------
        start, stop : int
            Frame rows; ``stop`` defaults to :attr:`num_frames`.
        images : bool, default False
            Also return each frame's encoded image (``b""`` for frames kept without one).

        Returns
        -------
        FrameRecords
        """
        start, stop = _bounds(start, stop, self.num_frames, "frame")
        if stop == start:
            return FrameRecords(**{n: np.empty(0, s.dtype) for n, s in frame_columns().items()},
                                images=[] if images else None)
        columns = self._frames.read(start, stop, frame_columns())
        return FrameRecords(**columns, images=self.read_frame_images(start, stop) if images else None)

    def read_frame_images(self, start: int = 0, stop: int | None = None) -> list[bytes]:
        """Encoded images of frames ``[start, stop)``; ``b""`` where a frame was kept without one."""
        start, stop = _bounds(start, stop, self.num_frames, "frame")
        if not self.has_images or stop == start:
            return [b""] * (stop - start)
        spans = self._images["image_span"].read(start, stop)
        valid = spans[:, 1] > 0
        if not valid.any():
            return [b""] * (stop - start)
        lo = int(spans[valid, 0].min())
        hi = int((spans[valid, 0] + spans[valid, 1]).max())
        heap = self._images["image_bytes"].read(lo, hi).tobytes()
        return [heap[o - lo: o - lo + n] if n > 0 else b"" for o, n in spans.tolist()]

    def read_faces(self, start: int = 0, stop: int | None = None, *,
                   columns: Sequence[str] | None = None) -> FaceRecords:
        """Committed faces ``[start, stop)``.

        Parameters
        ----------
        start, stop : int
            Face rows; ``stop`` defaults to :attr:`num_faces`.
        columns : sequence of str, optional
            Field names of :class:`FaceRecords` to read (default: all);
            ``crop`` also brings ``crop_size``.

        Returns
        -------
        FaceRecords
            With ``row`` set and unrequested columns ``None``.
        """
        specs = face_columns(self.config)
        names = list(specs) if columns is None else list(columns)
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise ValueError(f"unknown face columns {unknown}; choose from {list(specs)}")
        if "crop" in names and "crop_size" not in names:
            names.append("crop_size")
        start, stop = _bounds(start, stop, self.num_faces, "face")
        if stop == start:
            values = {n: np.empty((0,) + specs[n].row_shape, specs[n].dtype) for n in names}
        else:
            values = self._faces.read(start, stop, names)
        return FaceRecords(**values, row=np.arange(start, stop, dtype=np.int64))

    def face_ids(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Seed-style ids of faces ``[start, stop)``.

        Returns
        -------
        ndarray of str, shape (n,)
            ``<stream>_frame_<YYYYmmddHHMMSSffffff>_face_<i>`` (capture time in UTC).
        """
        faces = self.read_faces(start, stop, columns=("frame", "face"))
        if len(faces) == 0:
            return np.empty(0, dtype=str)
        lo, hi = int(faces.frame.min()), int(faces.frame.max()) + 1
        if hi > self.num_frames:
            raise StoreCorruptError(f"{self._where}: faces refer to frame {hi - 1} but {self.num_frames} are committed")
        times = self._frames["time_us"].read(lo, hi)[faces.frame - lo]
        return format_face_ids(self.name, times, faces.face)

    def rows_of(self, face_ids: Sequence[str]) -> np.ndarray:
        """Face rows of seed-style ids (an optional ``.png`` suffix is ignored).

        Returns
        -------
        ndarray of int64, shape (n,)

        Raises
        ------
        KeyError
            Naming the first id that is not in the stream.
        """
        index = {fid: row for row, fid in enumerate(self.face_ids().tolist())}
        rows = np.empty(len(face_ids), np.int64)
        for i, fid in enumerate(face_ids):
            stem = fid[:-4] if fid.endswith(".png") else fid
            if stem not in index:
                raise KeyError(f"no face {fid!r} in stream {self.name!r}")
            rows[i] = index[stem]
        return rows

    def capture_time_span(self) -> tuple[int, int] | None:
        """Earliest and latest committed capture time (µs since the epoch), or None without frames."""
        if self.num_frames == 0:
            return None
        times = self._frames["time_us"].read(0, self.num_frames)
        return int(times.min()), int(times.max())

    def _update_array(self, path: str) -> GrowingArray:
        if path not in self._updates:
            self._updates[path] = GrowingArray.open(self._group, _update_spec(path, self._state.columns[path]))
        return self._updates[path]

    def read_embeddings(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Committed embeddings of faces ``[start, stop)``.

        Returns
        -------
        ndarray of float32, shape (n, D)
            ``stop`` defaults to :attr:`num_embedded`; rows past it raise IndexError.
        """
        start, stop = _bounds(start, stop, self.num_embedded, "embedding")
        if stop == start:
            return np.empty((0, self.embedding_dim or 0), np.float32)
        return self._update_array(EMBEDDING).read(start, stop)

    def read_labels(self, start: int = 0, stop: int | None = None, *,
                    kind: str = "cluster") -> np.ndarray:
        """Cluster labels (or index labels) of faces ``[start, stop)`` (default: all committed faces).

        Parameters
        ----------
        start, stop : int
        kind : {"cluster", "index"}, default "cluster"
            Clustering's labels or the identity index's (HRI) labels; a stream keeps both.

        Returns
        -------
        ndarray of int32, shape (n,)
            -1 = noise, :data:`~streamface.store.schema.UNSET_LABEL` (-2) = not labelled.
        """
        path = _label_path(kind)
        start, stop = _bounds(start, stop, self.num_faces, "face")
        out = np.full(stop - start, UNSET_LABEL, np.int32)
        have = min(stop, int(self._state.columns.get(path, {}).get("rows", 0)))
        if have > start:
            out[: have - start] = self._update_array(path).read(start, have)
        return out

    def read_attribute(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Committed values of attribute ``name`` for faces ``[start, stop)``.

        Returns
        -------
        ndarray of float32, shape (n,) or (n, K)
            ``stop`` defaults to the attribute's committed rows; K = len(classes).
        """
        info = self._attribute_info(name)
        start, stop = _bounds(start, stop, int(info["rows"]), f"attribute {name!r}")
        path = f"{ATTRIBUTES}/{name}"
        if stop == start:
            spec = _update_spec(path, info)
            return np.empty((0,) + spec.row_shape, np.float32)
        return self._update_array(path).read(start, stop)

    def __repr__(self) -> str:
        return (f"<Stream {self.name!r}: {self.num_frames} frames, {self.num_faces} faces, "
                f"{self.num_embedded} embedded, {self.num_labelled} labelled>")


class StreamWriter(Stream):
    """The one writer of a stream: buffered appends, column updates, commits.

    Obtain one with :meth:`FaceStore.writer` and close it (or use it as a
    context manager): closing flushes the buffered rows and releases the lock.
    Opening it resumes the stream: arrays are cut back to the committed counters.

    Parameters
    ----------
    group : zarr.Group
        The stream group, opened writable.
    name : str
    where : str
        The store's location, for messages.
    lock : WriterLock
        Already acquired; released on :meth:`close`.
    flush_rows : int
        Flush when this many faces (or frames) are buffered; 0 commits on every append.
    local_dir : Path, optional
        The stream's directory on local disk (to clean up interrupted writes).
    """

    def __init__(self, group: zarr.Group, name: str, where: str, lock: WriterLock, *,
                 flush_rows: int = 256, local_dir: Path | None = None) -> None:
        if flush_rows < 0:
            raise ValueError(f"flush_rows must be >= 0, got {flush_rows}")
        super().__init__(group, name, where)
        self._lock = lock
        self.flush_rows = int(flush_rows)
        self._pending_frames: list[FrameRecords] = []
        self._pending_faces: list[FaceRecords] = []
        self._n_frames_pending = 0
        self._n_faces_pending = 0
        self._closed = False
        self._resume(local_dir)

    def refresh(self) -> StreamWriter:
        """A writer's counters are always current; nothing to do."""
        return self

    def _resume(self, local_dir: Path | None) -> None:
        """Cut every array back to its committed rows (drops a batch a killed writer left behind)."""
        if local_dir is not None:
            for leftover in local_dir.rglob("*.partial"):
                if _PARTIAL.search(leftover.name):
                    leftover.unlink(missing_ok=True)
        state = self._state
        for columns, rows in ((self._frames, state.frames), (self._faces, state.faces)):
            columns.ensure_created()
            for name in columns.specs:
                if columns[name].capacity < rows:
                    raise StoreCorruptError(f"{self._where}: {columns.specs[name].path} holds "
                                            f"{columns[name].capacity} rows but {rows} are committed")
            columns.truncate(rows)
        self._has_image_arrays = bool(state.image_bytes) or self._images.exists("image_span")
        if self._has_image_arrays:
            self._images.ensure_created()
            self._images["image_bytes"].truncate(state.image_bytes)
            self._images["image_span"].truncate(state.frames)
        for path, info in state.columns.items():
            self._update_array(path).truncate(int(info["rows"]))

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"writer of {self._where} is closed")

    def record_source(self, fingerprint: str, start_time_us: int, *, file: str = "") -> None:
        """Record that the file of content ``fingerprint`` is captured with pts 0 at
        ``start_time_us``, so that the same content captured again gets the same times.

        Parameters
        ----------
        fingerprint : str
            E.g. :func:`streamface.ingest.file_source.content_fingerprint`.
        start_time_us : int
            Capture time of pts 0, µs since the epoch.
        file : str, default ""
            The file's name, for people reading the store.
        """
        self._check_open()
        self._lock.check()
        sources = dict(dict(self._group.attrs).get(SOURCES_ATTR, {}))
        sources[str(fingerprint)] = {"start_time_us": int(start_time_us), "file": str(file)}
        self._group.update_attributes({SOURCES_ATTR: sources})

    def _commit(self, state: CommitState) -> None:
        self._lock.check()
        self._group.update_attributes({COMMIT_ATTR: state.to_json()})
        self._state = state

    # ---- appends --------------------------------------------------------------------------------

    @property
    def pending_frames(self) -> int:
        """Frames appended but not yet flushed."""
        return self._n_frames_pending

    @property
    def pending_faces(self) -> int:
        """Faces appended but not yet flushed."""
        return self._n_faces_pending

    def append(self, frames: FrameRecords, faces: FaceRecords | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Buffer a batch of frames with their faces; they are always committed together.

        Parameters
        ----------
        frames : FrameRecords
            n frames.
        faces : FaceRecords, optional
            Their faces, with :attr:`FaceRecords.frame` counted *within this batch*
            (0 .. n-1); the writer turns them into frame rows.

        Returns
        -------
        frame_rows : ndarray of int64, shape (n,)
        face_rows : ndarray of int64, shape (m,)

        Notes
        -----
        Flushes after buffering when at least ``flush_rows`` faces or frames are
        pending (``flush_rows=0``: every call commits).
        """
        self._check_open()
        frames = frames.validate()
        if faces is not None:
            faces = faces.validate(self.config.crop_size, self.config.aligned_size)
            if len(faces) and not 0 <= int(faces.frame.max()) < len(frames):
                raise ValueError(f"faces refer to frame {int(faces.frame.max())} of a batch of {len(frames)} "
                                 "frames; in append(), FaceRecords.frame counts within the batch")
        frame_rows = self._buffer_frames(frames)
        face_rows = np.empty(0, np.int64)
        if faces is not None:
            faces.frame = faces.frame + frame_rows[0] if len(frame_rows) else faces.frame
            face_rows = self._buffer_faces(faces)
        self._maybe_flush()
        return frame_rows, face_rows

    def append_frames(self, frames: FrameRecords) -> np.ndarray:
        """Buffer a batch of frames; their faces follow with :meth:`append_faces`.

        Flushes what was pending *before* these frames when ``flush_rows`` is
        reached, so frames and the faces appended after them share a commit.

        Returns
        -------
        ndarray of int64, shape (n,)
            The frames' rows, to put in :attr:`FaceRecords.frame`.
        """
        self._check_open()
        frames = frames.validate()
        self._maybe_flush()
        return self._buffer_frames(frames)

    def append_faces(self, faces: FaceRecords) -> np.ndarray:
        """Buffer a batch of faces of frames already appended (committed with the next flush).

        Returns
        -------
        ndarray of int64, shape (n,)
            The faces' rows.

        Raises
        ------
        ValueError
            If the records are malformed or refer to frames not appended yet.
        """
        self._check_open()
        faces = faces.validate(self.config.crop_size, self.config.aligned_size)
        total_frames = self.num_frames + self._n_frames_pending
        if len(faces) and int(faces.frame.max()) >= total_frames:
            raise ValueError(f"faces refer to frame {int(faces.frame.max())} but only {total_frames} "
                             "frames were appended; append the frames first")
        return self._buffer_faces(faces)

    def _buffer_frames(self, frames: FrameRecords) -> np.ndarray:
        first = self.num_frames + self._n_frames_pending
        self._pending_frames.append(frames)
        self._n_frames_pending += len(frames)
        return np.arange(first, first + len(frames), dtype=np.int64)

    def _buffer_faces(self, faces: FaceRecords) -> np.ndarray:
        first = self.num_faces + self._n_faces_pending
        self._pending_faces.append(faces)
        self._n_faces_pending += len(faces)
        return np.arange(first, first + len(faces), dtype=np.int64)

    def _maybe_flush(self) -> None:
        if max(self._n_faces_pending, self._n_frames_pending) >= max(1, self.flush_rows):
            self.flush()

    def flush(self) -> None:
        """Write the buffered frames and faces, then commit them (one atomic attribute write)."""
        self._check_open()
        if not self._n_frames_pending and not self._n_faces_pending:
            return
        state = self._state.copy()
        writes = []
        if self._pending_frames:
            # Images are gathered per batch by _frame_rows (some batches may have none).
            frames = FrameRecords.concat([replace(p, images=None) for p in self._pending_frames])
            writes += self._frame_rows(frames, state)
        if self._pending_faces:
            faces = FaceRecords.concat(self._pending_faces)
            writes += self._faces.rows(state.faces, {f.name: getattr(faces, f.name) for f in fields(faces)
                                                     if f.name != "row"})
            state.faces += len(faces)
        write_rows(writes)
        self._commit(state)
        self._pending_frames.clear()
        self._pending_faces.clear()
        self._n_frames_pending = self._n_faces_pending = 0

    def _frame_rows(self, frames: FrameRecords, state: CommitState) -> list:
        """The array writes of the pending frames and their images (for ``write_rows``);
        advances ``state``'s frame and image-byte counters."""
        has_images = [p.images is not None for p in self._pending_frames]
        writes = self._frames.rows(state.frames, {n: getattr(frames, n) for n in frame_columns()})
        if any(has_images) or self._has_image_arrays:
            self._images.ensure_created()
            self._has_image_arrays = True
            spans = np.full((len(frames), 2), -1, np.int64)
            blobs, row, offset = [], 0, state.image_bytes
            for part in self._pending_frames:
                for blob in part.images if part.images is not None else [None] * len(part):
                    if blob is not None:
                        spans[row] = (offset, len(blob))
                        blobs.append(blob)
                        offset += len(blob)
                    row += 1
            if blobs:
                writes.append((self._images["image_bytes"], state.image_bytes,
                               np.frombuffer(b"".join(blobs), np.uint8)))
            writes.append((self._images["image_span"], state.frames, spans))
            state.image_bytes = offset
        state.frames += len(frames)
        return writes

    # ---- updates of existing rows ---------------------------------------------------------------

    def _ensure_faces(self, stop: int) -> None:
        if stop > self.num_faces and stop <= self.num_faces + self._n_faces_pending:
            self.flush()
        if stop > self.num_faces:
            raise IndexError(f"rows up to {stop} asked for, but {self.num_faces} faces are committed")

    def _declare(self, path: str, info: dict[str, Any], attributes: dict[str, Any]) -> GrowingArray:
        """Create update column ``path`` (committing it with 0 rows), replacing any old one."""
        if path in self._state.columns:
            self._drop(path)
        _delete(self._group, path)  # an uncommitted array left by a writer killed while declaring it
        array = GrowingArray.create(self._group, _update_spec(path, info), attributes=attributes)
        state = self._state.copy()
        state.columns[path] = dict(info, rows=0)
        self._commit(state)
        self._updates[path] = array
        return array

    def _drop(self, path: str) -> None:
        state = self._state.copy()
        del state.columns[path]
        self._commit(state)
        self._updates.pop(path, None)
        _delete(self._group, path)

    def _prepare_update(self, path: str, start: int, n: int, wanted: dict[str, Any],
                        attributes: dict[str, Any]) -> None:
        """Check rows ``[start, start + n)`` can be written to ``path``; (re)declare the column if needed.

        Everything is checked before anything is committed, so a refused write
        never drops the column's existing rows.
        """
        self._ensure_faces(start + n)
        info = self._state.columns.get(path)
        if info is not None and any(info.get(k) != v for k, v in wanted.items()):
            if start != 0:
                have = ", ".join(f"{k}={info.get(k)!r}" for k in wanted)
                raise ValueError(f"{path} has {have}; write from row 0 to replace it")
            info = None
        if info is None:
            if start != 0:
                raise IndexError(f"{path}: writing from row {start} would leave a gap; 0 rows are committed")
            self._declare(path, wanted, attributes)

    def _write_update(self, path: str, start: int, values: np.ndarray, *, keep_tail: bool) -> None:
        start = int(start)
        stop = start + len(values)
        self._ensure_faces(stop)
        rows = int(self._state.columns[path]["rows"])
        if not 0 <= start <= rows:
            raise IndexError(f"{path}: writing from row {start} would leave a gap; "
                             f"{rows} rows are committed, write from a row <= {rows}")
        if start < rows:
            state = self._state.copy()
            state.columns[path]["rows"] = start
            self._commit(state)
        self._update_array(path).write(start, values)
        state = self._state.copy()
        state.columns[path]["rows"] = max(rows, stop) if keep_tail else stop
        self._commit(state)

    def write_embeddings(self, start: int, embeddings: np.ndarray, *, model: str) -> None:
        """Write embeddings of faces ``[start, start + n)`` and commit them.

        Parameters
        ----------
        start : int
            First face row; at most :attr:`num_embedded` (embeddings fill a prefix).
        embeddings : ndarray of float32, shape (n, D)
        model : str
            Name of the model that produced them (recorded in the attributes).
            Writing from row 0 with another model or width replaces all embeddings.
        """
        self._check_open()
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[1] < 1 or emb.dtype.kind != "f":
            raise ValueError(f"embeddings: expected float (n, D), got {emb.dtype} {emb.shape}")
        if not isinstance(model, str) or not model:
            raise ValueError("model: expected the embedding model's name")
        dim = emb.shape[1]
        self._prepare_update(EMBEDDING, start, len(emb), {"dim": dim, "model": model}, {"model": model})
        self._write_update(EMBEDDING, start, np.ascontiguousarray(emb, np.float32), keep_tail=True)

    def write_labels(self, labels: np.ndarray, *, start: int = 0, kind: str = "cluster") -> None:
        """Write cluster labels (or index labels) of faces ``[start, start + n)``; rows past
        them become unset. The other kind of labels is left as it is.

        Parameters
        ----------
        labels : ndarray of int, shape (n,)
            -1 for noise.
        start : int, default 0
            At most :attr:`num_labelled` (:attr:`num_index_labelled` for index labels).
        kind : {"cluster", "index"}, default "cluster"
        """
        self._check_open()
        path = _label_path(kind)
        lab = np.asarray(labels)
        if lab.ndim != 1 or lab.dtype.kind not in "iu":
            raise ValueError(f"labels: expected int (n,), got {lab.dtype} {lab.shape}")
        self._prepare_update(path, start, len(lab), {}, {"unset": UNSET_LABEL, "noise": -1})
        self._write_update(path, start, lab.astype(np.int32), keep_tail=False)

    def write_attribute(self, name: str, start: int, values: np.ndarray, *,
                        classes: Sequence[str] | None = None) -> None:
        """Write a named float attribute of faces ``[start, start + n)``.

        Parameters
        ----------
        name : str
            ``[A-Za-z0-9_]+``, e.g. ``"age"``, ``"mask"``, ``"pose"``.
        start : int
            At most the attribute's committed rows.
        values : ndarray of float, shape (n,) or (n, K)
            E.g. class probabilities (seed: rounded to 2 decimals by the caller).
        classes : sequence of str, optional
            K names, one per value of a row (``["0-2", "3-9", ...]``, ``["yaw", "pitch", "roll"]``);
            for values of shape (n,), the names of the codes 0..K-1 they hold (a categorical
            attribute, e.g. a photo's identity folder; NaN: none).
            Writing from row 0 with another width or classes replaces the attribute.
        """
        self._check_open()
        validate_column_name(name)
        vals = np.asarray(values)
        if vals.ndim not in (1, 2) or vals.dtype.kind not in "fiu":
            raise ValueError(f"attribute {name!r}: expected numbers of shape (n,) or (n, K), got {vals.shape}")
        width = None if vals.ndim == 1 else int(vals.shape[1])
        if classes is not None:
            classes = [str(c) for c in classes]
            if width is not None and len(classes) != width:
                raise ValueError(f"attribute {name!r}: {len(classes)} classes for values of shape {vals.shape}")
        path = f"{ATTRIBUTES}/{name}"
        self._prepare_update(path, start, len(vals), {"width": width, "classes": classes}, {"classes": classes})
        self._write_update(path, start, np.ascontiguousarray(vals, np.float32), keep_tail=True)

    # ---- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, cut arrays back to the committed rows, release the lock. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
            self._frames.truncate(self.num_frames)
            self._faces.truncate(self.num_faces)
            if self._has_image_arrays:
                self._images["image_bytes"].truncate(self._state.image_bytes)
                self._images["image_span"].truncate(self.num_frames)
            for path, info in self._state.columns.items():
                self._update_array(path).truncate(int(info["rows"]))
        finally:
            self._closed = True
            self._lock.release()

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<StreamWriter {self.name!r}: {self.num_frames} frames, {self.num_faces} faces committed, "
                f"{self._n_faces_pending} faces pending>")
