"""What a store holds: the format version, the per-stream configuration and the column specs.

Layout of a store (Zarr v3)::

    <store>/zarr.json                       root group; attrs: streamface_store_version, created
    <store>/<stream>/zarr.json              stream group; attrs: streamface_stream (config),
                                            streamface_commit (committed row counters),
                                            streamface_sources (files captured, optional)
    <store>/<stream>/writer.lock            local stores: fcntl lock file (holder as JSON)
    <store>/<stream>/writer.lease           fsspec stores: lease object (holder as JSON)
    <store>/<stream>/frames/<column>        time_us, pts, source_index, width, height, blur,
                                            emptiness, similarity: one row per kept frame
    <store>/<stream>/frames/image_bytes     kept frames' encoded JPEG/PNG bytes, one heap (optional)
    <store>/<stream>/frames/image_span      (offset, length) of each frame's bytes in the heap
    <store>/<stream>/faces/<column>         frame, face, score, box, landmarks, blur, crop,
                                            crop_size, aligned, match: one row per face
    <store>/<stream>/faces/embedding        (rows, D) float32, filled later (analysis)
    <store>/<stream>/faces/label            int32, filled later (clustering)
    <store>/<stream>/faces/index_label      int32, filled later (the HRI: online index, index build)
    <store>/<stream>/faces/attributes/<name>  float32 (rows,) or (rows, K), filled later

Every array grows along axis 0 and is chunked along it only (4096 rows for
small columns, 64 for crops, ~1 MiB for embeddings), compressed with Blosc/zstd.
Face ids are not stored: they derive from the frame's ``time_us`` and ``face``.
Zarr lists ``writer.lock`` / ``writer.lease`` as unknown members (a warning in
``Group.members()``); nothing else is affected.

The committed counters live in one JSON document, the stream group's attributes,
so one atomic write commits a batch of frames and its faces together. Arrays may
hold more rows than committed (capacity grown ahead, or a batch that was being
written when the writer died); readers never look past the counters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Format version this code writes; it reads this version and older ones.
STORE_VERSION = 1
#: Root group attribute holding the format version.
VERSION_ATTR = "streamface_store_version"
#: Stream group attribute holding the stream's configuration (written once).
STREAM_ATTR = "streamface_stream"
#: Stream group attribute holding the committed row counters.
COMMIT_ATTR = "streamface_commit"
#: Stream group attribute: ``{content fingerprint: {"start_time_us": int, "file": str}}`` of
#: the files captured into the stream (optional: stores written before it lack it, and
#: readers that do not know it ignore it).
SOURCES_ATTR = "streamface_sources"

#: Label of a face that clustering has not labelled (yet); -1 is clustering's "noise".
UNSET_LABEL = -2
#: Match (track) id of a face matched to no other face.
NO_MATCH = -1

FRAMES = "frames"
FACES = "faces"
ATTRIBUTES = "faces/attributes"
EMBEDDING = "faces/embedding"
LABEL = "faces/label"
INDEX_LABEL = "faces/index_label"
#: Label kinds a stream keeps side by side, each in its own column: clustering's labels
#: and the identity index's (HRI) labels; writing one kind never touches the other.
LABEL_KINDS = {"cluster": LABEL, "index": INDEX_LABEL}
IMAGE_BYTES = "frames/image_bytes"
IMAGE_SPAN = "frames/image_span"


@dataclass(frozen=True)
class StreamConfig:
    """Per-stream constants, fixed when the stream is created.

    Parameters
    ----------
    crop_size : int, default 256
        Capacity of the face-crop column: crops up to ``crop_size x crop_size``
        pixels (the seed's ``face_size``); smaller crops are stored top-left with
        their true height and width beside them.
    aligned_size : int, default 112
        Side of the aligned crops (112 for ArcFace/SFace, 128 in the seed).
    """

    crop_size: int = 256
    aligned_size: int = 112

    def validate(self) -> StreamConfig:
        """Return ``self`` if both sizes are ints in [8, 1024], else raise ValueError."""
        for field in ("crop_size", "aligned_size"):
            value = getattr(self, field)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 8 <= value <= 1024:
                raise ValueError(f"{field} must be an int in [8, 1024], got {value!r}")
        return self

    def to_json(self) -> dict:
        return {"crop_size": int(self.crop_size), "aligned_size": int(self.aligned_size)}

    @classmethod
    def from_json(cls, doc: dict) -> StreamConfig:
        return cls(crop_size=int(doc["crop_size"]), aligned_size=int(doc["aligned_size"]))


@dataclass(frozen=True)
class ColumnSpec:
    """One array of a table.

    Parameters
    ----------
    path : str
        Array path inside the stream group, e.g. ``"faces/crop"``.
    dtype : numpy dtype
    row_shape : tuple of int
        Shape of one row; the array's shape is ``(rows,) + row_shape``.
    chunk_rows : int
        Rows per chunk along axis 0 (other axes are one chunk).
    fill_value : int or float
        What unwritten cells read as.
    codec : {"image", "numeric", "bytes", "raw"}
        Compression family: ``image`` = Blosc/zstd level 1 with bit shuffle (uint8
        pixels), ``numeric`` = Blosc/zstd level 3 with byte shuffle, ``bytes`` =
        Blosc/lz4 level 1 without shuffle (encoded images: a chunk's unwritten tail
        costs nothing), ``raw`` = none.
    """

    path: str
    dtype: np.dtype
    row_shape: tuple[int, ...] = ()
    chunk_rows: int = 4096
    fill_value: int | float = 0
    codec: str = "numeric"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _col(path, dtype, row_shape=(), chunk_rows=4096, fill_value=0, codec="numeric") -> ColumnSpec:
    return ColumnSpec(path, np.dtype(dtype), tuple(row_shape), chunk_rows, fill_value, codec)


def frame_columns() -> dict[str, ColumnSpec]:
    """Columns appended with every frame, by field name of :class:`~streamface.store.FrameRecords`."""
    nan = float("nan")
    return {
        "time_us": _col("frames/time_us", np.int64),
        "pts": _col("frames/pts", np.float64, fill_value=nan),
        "source_index": _col("frames/source_index", np.int64, fill_value=-1),
        "width": _col("frames/width", np.int32),
        "height": _col("frames/height", np.int32),
        "blur": _col("frames/blur", np.float32, fill_value=nan),
        "emptiness": _col("frames/emptiness", np.float32, fill_value=nan),
        "similarity": _col("frames/similarity", np.float32, fill_value=nan),
    }


def image_columns() -> dict[str, ColumnSpec]:
    """The optional kept-frame images: a byte heap and each frame's (offset, length) in it."""
    return {
        # ~4 MiB chunks of encoded (already compressed) JPEG/PNG bytes; the "bytes" codec
        # keeps a chunk's unwritten tail off the disk (stores made before it have "raw"
        # chunks, read and appended the same way: each array's codecs are in its metadata).
        "image_bytes": _col(IMAGE_BYTES, np.uint8, chunk_rows=1 << 22, codec="bytes"),
        "image_span": _col(IMAGE_SPAN, np.int64, (2,), fill_value=-1),
    }


def face_columns(config: StreamConfig) -> dict[str, ColumnSpec]:
    """Columns appended with every face, by field name of :class:`~streamface.store.FaceRecords`.

    Crop chunks hold 16 rows (3 MiB raw at 256 px): a live pipeline commits a
    few faces at a time, and every commit rewrites the chunk it ends in. Measured
    with ``benchmarks/bench_store.py --faces 2048`` side by side: appends of 16
    faces ran 1.66x faster than with 64-row chunks (293 vs 177 faces/s), appends
    of 256 faces no slower (1018 vs 934 faces/s).
    """
    c, s = config.crop_size, config.aligned_size
    nan = float("nan")
    return {
        "frame": _col("faces/frame", np.int64),
        "face": _col("faces/face", np.int32),
        "score": _col("faces/score", np.float32, fill_value=nan),
        "box": _col("faces/box", np.float32, (4,), fill_value=nan),
        "landmarks": _col("faces/landmarks", np.float32, (5, 2), fill_value=nan),
        "blur": _col("faces/blur", np.float32, fill_value=nan),
        "crop": _col("faces/crop", np.uint8, (c, c, 3), chunk_rows=16, codec="image"),
        "crop_size": _col("faces/crop_size", np.int32, (2,)),
        "aligned": _col("faces/aligned", np.uint8, (s, s, 3), chunk_rows=_rows_for(s * s * 3, 64), codec="image"),
        "match": _col("faces/match", np.int64, fill_value=NO_MATCH),
    }


def _rows_for(row_bytes: int, most: int, target: int = 4 << 20) -> int:
    """Largest power of two of rows whose chunk stays under ``target`` bytes (at least 16, at most ``most``)."""
    rows = 2 ** int(math.floor(math.log2(max(1, target // max(1, row_bytes)))))
    return int(min(most, max(16, rows)))


def embedding_column(dim: int) -> ColumnSpec:
    """The embedding column, ``(rows, dim)`` float32, chunked to about 1 MiB."""
    return _col(EMBEDDING, np.float32, (dim,), chunk_rows=_rows_for(4 * dim, 4096, 1 << 20), fill_value=float("nan"))


def label_column() -> ColumnSpec:
    """The cluster label column, int32; unwritten rows read :data:`UNSET_LABEL`."""
    return _col(LABEL, np.int32, fill_value=UNSET_LABEL)


def index_label_column() -> ColumnSpec:
    """The index (HRI) label column, int32; unwritten rows read :data:`UNSET_LABEL`."""
    return _col(INDEX_LABEL, np.int32, fill_value=UNSET_LABEL)


def attribute_column(name: str, width: int | None) -> ColumnSpec:
    """A named float32 attribute column: ``(rows,)`` when ``width`` is None, else ``(rows, width)``."""
    row_shape = () if width is None else (width,)
    return _col(f"{ATTRIBUTES}/{name}", np.float32, row_shape, fill_value=float("nan"))
