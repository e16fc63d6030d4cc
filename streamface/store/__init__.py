"""Zarr v3 face store (format: docs/store.md).

One store per dataset, one group per stream; each stream has a frames table and
a faces table whose arrays grow along axis 0, plus columns filled later
(embeddings, labels, attributes). Appends are crash-consistent through committed
row counters, and one writer per stream is enforced by a lock (local disk) or a
lease (fsspec URLs). This package imports neither the engine nor the stages.

>>> from streamface.store import FaceStore
>>> store = FaceStore.open("data/skynews.zarr", mode="a")            # doctest: +SKIP
>>> with store.writer("skynews", create=True, aligned_size=128) as w:  # doctest: +SKIP
...     rows = w.append_frames(frames)
...     w.append_faces(faces)
>>> store.stream("skynews").read_faces(0, 10).box                      # doctest: +SKIP
"""

from streamface.store.errors import (
    NotAStoreError,
    StoreCorruptError,
    StoreError,
    StoreExistsError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreVersionError,
    StreamNotFoundError,
)
from streamface.store.names import FaceId, format_face_ids, parse_face_id, validate_stream_name
from streamface.store.records import FaceRecords, FrameRecords
from streamface.store.schema import NO_MATCH, STORE_VERSION, UNSET_LABEL, StreamConfig
from streamface.store.store import FaceStore
from streamface.store.stream import Stream, StreamWriter

__all__ = [
    "FaceId",
    "FaceRecords",
    "FaceStore",
    "FrameRecords",
    "NO_MATCH",
    "NotAStoreError",
    "STORE_VERSION",
    "StoreCorruptError",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "StoreVersionError",
    "Stream",
    "StreamConfig",
    "StreamNotFoundError",
    "StreamWriter",
    "UNSET_LABEL",
    "format_face_ids",
    "parse_face_id",
    "validate_stream_name",
]
