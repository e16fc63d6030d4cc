"""Names that reach the file system: stream names, column names and face ids.

A stream name becomes a store group and the prefix of every exported file name,
so it is checked before it touches a path (docs/store.md, "Layout"). Face ids
follow the seed's naming, ``<stream>_frame_<YYYYmmddHHMMSSffffff>_face_<i>``;
the store does not keep them as strings but derives them from the frame's
capture time (int64 microseconds since the Unix epoch, formatted in UTC) and
the face's index within its frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_STREAM_NAME = re.compile(r"[A-Za-z0-9._-]+")
_COLUMN_NAME = re.compile(r"[A-Za-z0-9_]+")
_FACE_ID = re.compile(r"(?P<stream>[A-Za-z0-9._-]+)_frame_(?P<time>\d{20})_face_(?P<face>\d+)")
_MAX_NAME = 200

# Names a stream group cannot take: Zarr's own metadata file, and the "__" prefix
# the Zarr v3 specification reserves for itself.
_RESERVED = {"zarr.json"}


def validate_stream_name(name: object) -> str:
    """Check that ``name`` can safely name a stream group and exported files.

    Parameters
    ----------
    name : str
        Up to 200 characters from ``[A-Za-z0-9._-]``, not starting with ``.``,
        not containing ``..``, not starting with ``__``, not ``zarr.json``.

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    ValueError
        Naming the rule that ``name`` breaks.
    """
    if not isinstance(name, str):
        raise ValueError(f"stream name must be a str, got {type(name).__name__}")
    if not _STREAM_NAME.fullmatch(name):
        raise ValueError(
            f"invalid stream name {name!r}: use only letters, digits, '.', '_' and '-' "
            "(no slashes, spaces or other characters)"
        )
    if name.startswith(".") or ".." in name:
        raise ValueError(f"invalid stream name {name!r}: must not start with '.' or contain '..'")
    if name.startswith("__") or name in _RESERVED:
        raise ValueError(f"invalid stream name {name!r}: reserved by Zarr")
    if len(name) > _MAX_NAME:
        raise ValueError(f"invalid stream name {name[:20]!r}...: longer than {_MAX_NAME} characters")
    return name


def validate_column_name(name: object, what: str = "attribute") -> str:
    """Check an attribute (or other user-named) column name: ``[A-Za-z0-9_]+``, at most 100 chars."""
    if not isinstance(name, str) or not _COLUMN_NAME.fullmatch(name) or len(name) > 100:
        raise ValueError(f"invalid {what} name {name!r}: use 1-100 letters, digits or '_'")
    return name


def format_capture_times(time_us: np.ndarray) -> np.ndarray:
    """Format capture times the way the seed names frames.

    Parameters
    ----------
    time_us : ndarray of int64, shape (n,)
        Wall-clock capture times, microseconds since the Unix epoch.

    Returns
    -------
    ndarray of str, shape (n,)
        ``YYYYmmddHHMMSSffffff`` in UTC, e.g. ``20230525100138412614``.
    """
    iso = np.datetime_as_string(np.asarray(time_us, dtype=np.int64).astype("datetime64[us]"), unit="us")
    # "2023-05-25T10:01:38.412614" -> "20230525100138412614"
    return np.array([s.replace("-", "").replace("T", "").replace(":", "").replace(".", "") for s in iso.tolist()])


def parse_capture_time(text: str) -> int:
    """Inverse of :func:`format_capture_times` for one ``YYYYmmddHHMMSSffffff`` string (UTC)."""
    if len(text) != 20 or not text.isdigit():
        raise ValueError(f"not a YYYYmmddHHMMSSffffff time: {text!r}")
    iso = f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}.{text[14:20]}"
    return int(np.datetime64(iso, "us").astype(np.int64))


def format_face_ids(stream: str, time_us: np.ndarray, face_index: np.ndarray) -> np.ndarray:
    """Seed-style face ids ``<stream>_frame_<YYYYmmddHHMMSSffffff>_face_<i>``.

    Parameters
    ----------
    stream : str
        Stream name.
    time_us : ndarray of int64, shape (n,)
        Capture time of each face's frame (microseconds since the epoch).
    face_index : ndarray of int, shape (n,)
        Index of each face within its frame.

    Returns
    -------
    ndarray of str, shape (n,)
    """
    times = format_capture_times(time_us)
    faces = np.asarray(face_index).tolist()
    return np.array([f"{stream}_frame_{t}_face_{i}" for t, i in zip(times.tolist(), faces)], dtype=str)


def frame_name(stream: str, time_us: int) -> str:
    """Seed-style frame file stem ``<stream>_frame_<YYYYmmddHHMMSSffffff>``."""
    return f"{stream}_frame_{format_capture_times(np.array([time_us]))[0]}"


@dataclass(frozen=True)
class FaceId:
    """A parsed face id: stream name, frame capture time (µs since epoch, UTC) and face index."""

    stream: str
    time_us: int
    face: int


def parse_face_id(face_id: str) -> FaceId:
    """Parse ``<stream>_frame_<YYYYmmddHHMMSSffffff>_face_<i>`` (an optional ``.png`` is dropped).

    Raises
    ------
    ValueError
        If ``face_id`` does not follow the seed's naming.
    """
    stem = face_id[:-4] if face_id.endswith(".png") else face_id
    match = _FACE_ID.fullmatch(stem)
    if match is None:
        raise ValueError(f"not a face id of the form <stream>_frame_<YYYYmmddHHMMSSffffff>_face_<i>: {face_id!r}")
    return FaceId(match["stream"], parse_capture_time(match["time"]), int(match["face"]))


#: The store a stage keeps its data in, inside its output folder.
STORE_NAME = "streamface.zarr"


def store_path(output_dir) -> Path:
    """The store a stage keeps its data in: ``<output_dir>/streamface.zarr``."""
    return Path(output_dir) / STORE_NAME
