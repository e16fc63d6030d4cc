"""Rows in and out of the store: dataclasses of NumPy arrays, one array per column.

``validate()`` checks lengths, shapes and dtypes, fills optional columns with
their defaults and returns a new, normalised record set; the writer calls it on
every append, so a bad batch is refused before anything reaches the store.
Records read back from the store carry only the columns that were asked for;
the rest are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import numpy as np

from streamface.store.schema import NO_MATCH


def _as(name: str, value, dtype, row_shape: tuple[int, ...], n: int | None) -> np.ndarray:
    """``value`` as a C-contiguous array of ``dtype`` and shape ``(n,) + row_shape``, or ValueError."""
    arr = np.asarray(value)
    dtype = np.dtype(dtype)
    if arr.dtype != dtype:
        same_kind = np.can_cast(arr.dtype, dtype, casting="same_kind")
        int_to_float = arr.dtype.kind in "iub" and dtype.kind == "f"
        if not (same_kind or int_to_float) or dtype == np.uint8:
            raise ValueError(f"{name}: expected dtype {dtype}, got {arr.dtype}")
        arr = arr.astype(dtype)
    if arr.ndim != 1 + len(row_shape) or arr.shape[1:] != row_shape:
        expected = ("n",) + row_shape
        raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: has {arr.shape[0]} rows, expected {n}")
    return np.ascontiguousarray(arr)


def _concat(parts: list, name: str):
    values = [getattr(p, name) for p in parts]
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise ValueError(f"cannot concatenate records where only some have {name!r}")
    if isinstance(values[0], list):
        return [item for v in values for item in v]
    return np.concatenate(values)


@dataclass
class FrameRecords:
    """A batch of kept frames.

    Parameters
    ----------
    time_us : ndarray of int64, shape (n,)
        Wall-clock capture time, microseconds since the Unix epoch (names the
        frame and its faces, formatted in UTC).
    width, height : ndarray of int32, shape (n,)
        Frame size in pixels.
    pts : ndarray of float64, shape (n,), optional
        Presentation time in seconds within the source; NaN when unknown.
    source_index : ndarray of int64, shape (n,), optional
        Index of the frame in its source's decode order; -1 when unknown.
    blur, emptiness, similarity : ndarray of float32, shape (n,), optional
        The keyframe-selection scores (seed semantics); NaN when not computed.
    images : list of bytes, length n, optional
        The frame encoded as JPEG or PNG, when frames are kept.
    """

    time_us: np.ndarray
    width: np.ndarray
    height: np.ndarray
    pts: np.ndarray | None = None
    source_index: np.ndarray | None = None
    blur: np.ndarray | None = None
    emptiness: np.ndarray | None = None
    similarity: np.ndarray | None = None
    images: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.time_us)

    def validate(self) -> FrameRecords:
        """Check and normalise.

        Returns
        -------
        FrameRecords
            A copy with every array at its store dtype and optional columns
            (except ``images``) filled with their defaults.

        Raises
        ------
        ValueError
            Naming the column whose length, shape or dtype is wrong.
        """
        time_us = _as("time_us", self.time_us, np.int64, (), None)
        n = len(time_us)
        nan32 = np.full(n, np.nan, np.float32)
        out = FrameRecords(
            time_us=time_us,
            width=_as("width", self.width, np.int32, (), n),
            height=_as("height", self.height, np.int32, (), n),
            pts=np.full(n, np.nan) if self.pts is None else _as("pts", self.pts, np.float64, (), n),
            source_index=(np.full(n, -1, np.int64) if self.source_index is None
                          else _as("source_index", self.source_index, np.int64, (), n)),
            blur=nan32 if self.blur is None else _as("blur", self.blur, np.float32, (), n),
            emptiness=nan32.copy() if self.emptiness is None else _as("emptiness", self.emptiness, np.float32, (), n),
            similarity=(nan32.copy() if self.similarity is None
                        else _as("similarity", self.similarity, np.float32, (), n)),
            images=None,
        )
        if (out.width <= 0).any() or (out.height <= 0).any():
            raise ValueError("width and height must be positive")
        if self.images is not None:
            images = list(self.images)
            if len(images) != n:
                raise ValueError(f"images: has {len(images)} items, expected {n}")
            if not all(isinstance(b, (bytes, bytearray, memoryview)) for b in images):
                raise ValueError("images: expected encoded image bytes (JPEG or PNG) per frame")
            out.images = [bytes(b) for b in images]
        return out

    @classmethod
    def concat(cls, parts: Sequence[FrameRecords]) -> FrameRecords:
        """Concatenate validated batches along the row axis (one batch is returned as is)."""
        if len(parts) == 1:
            return parts[0]
        return cls(**{f.name: _concat(list(parts), f.name) for f in fields(cls)})


@dataclass
class FaceRecords:
    """A batch of faces.

    Parameters
    ----------
    frame : ndarray of int64, shape (n,)
        Row of the face's frame in the stream's frames table.
    face : ndarray of int32, shape (n,)
        Index of the face within its frame (the ``_face_<i>`` of its id).
    score : ndarray of float32, shape (n,)
        Detector confidence.
    box : ndarray of float32, shape (n, 4)
        Box ``x, y, w, h`` in frame pixels.
    landmarks : ndarray of float32, shape (n, 5, 2)
        Left eye, right eye, nose, mouth left, mouth right as ``(x, y)``.
    crop : ndarray of uint8, shape (n, h, w, 3), or a list of n (h_i, w_i, 3) arrays
        Face crops (RGB). On append ``h, w`` may be smaller than the stream's
        ``crop_size``: crops are stored top-left in a ``crop_size`` square with
        their true size in ``crop_size``. A list (e.g. from
        ``kernels.crop_faces``) is packed that way.
    aligned : ndarray of uint8, shape (n, S, S, 3)
        Aligned crops (RGB), ``S`` = the stream's ``aligned_size``.
    crop_size : ndarray of int32, shape (n, 2), optional
        True ``(height, width)`` of each crop; defaults to the crop array's ``h, w``.
    blur : ndarray of float32, shape (n,), optional
        Blur score of the aligned crop; NaN when not computed.
    match : ndarray of int64, shape (n,), optional
        Track id shared by faces matched across frames; -1 when unmatched.
    row : ndarray of int64, shape (n,), optional
        Row of each face in the faces table (set on records read from a store,
        ignored on append).

    Any column may be ``None`` on records read with ``columns=``.
    """

    frame: np.ndarray | None = None
    face: np.ndarray | None = None
    score: np.ndarray | None = None
    box: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    crop: np.ndarray | None = None
    aligned: np.ndarray | None = None
    crop_size: np.ndarray | None = None
    blur: np.ndarray | None = None
    match: np.ndarray | None = None
    row: np.ndarray | None = None

    def __len__(self) -> int:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                return len(value)
        return 0

    def validate(self, crop_size: int, aligned_size: int) -> FaceRecords:
        """Check and normalise for a stream with the given crop capacity and aligned size.

        Returns
        -------
        FaceRecords
            A copy with every array at its store dtype, crops padded to
            ``(n, crop_size, crop_size, 3)``, ``crop_size``, ``blur`` and
            ``match`` filled with their defaults, ``row`` dropped.

        Raises
        ------
        ValueError
            Naming the column whose length, shape, dtype or value is wrong.
        """
        for name in ("frame", "face", "score", "box", "landmarks", "crop", "aligned"):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required to append faces")
        frame = _as("frame", self.frame, np.int64, (), None)
        n = len(frame)
        given_sizes = self.crop_size
        if isinstance(self.crop, (list, tuple)):
            # Crops of varying size, as kernels.crop_faces returns them.
            if given_sizes is not None:
                raise ValueError("crop_size: give it only with a crop array, not a list of crops")
            if len(self.crop) != n:
                raise ValueError(f"crop: expected {n} crops, got {len(self.crop)}")
            crop, given_sizes = self.pack_crops(self.crop, crop_size)
        else:
            crop = np.asarray(self.crop)
        if crop.dtype != np.uint8:
            raise ValueError(f"crop: expected dtype uint8, got {crop.dtype}")
        if crop.ndim != 4 or crop.shape[0] != n or crop.shape[3] != 3:
            raise ValueError(f"crop: expected shape ({n}, h, w, 3), got {crop.shape}")
        h, w = crop.shape[1:3]
        if h > crop_size or w > crop_size:
            raise ValueError(f"crop: {h}x{w} crops exceed the stream's crop_size {crop_size}")
        if given_sizes is None:
            sizes = np.tile(np.array([h, w], np.int32), (n, 1))
        else:
            sizes = _as("crop_size", given_sizes, np.int32, (2,), n)
            if (sizes < 0).any() or (sizes[:, 0] > h).any() or (sizes[:, 1] > w).any():
                raise ValueError(f"crop_size: sizes must lie within the crop array's {h}x{w}")
        if (h, w) != (crop_size, crop_size):
            padded = np.zeros((n, crop_size, crop_size, 3), np.uint8)
            padded[:, :h, :w] = crop
            crop = padded
        out = FaceRecords(
            frame=frame,
            face=_as("face", self.face, np.int32, (), n),
            score=_as("score", self.score, np.float32, (), n),
            box=_as("box", self.box, np.float32, (4,), n),
            landmarks=_as("landmarks", self.landmarks, np.float32, (5, 2), n),
            crop=np.ascontiguousarray(crop),
            aligned=_as("aligned", self.aligned, np.uint8, (aligned_size, aligned_size, 3), n),
            crop_size=sizes,
            blur=np.full(n, np.nan, np.float32) if self.blur is None else _as("blur", self.blur, np.float32, (), n),
            match=np.full(n, NO_MATCH, np.int64) if self.match is None else _as("match", self.match, np.int64, (), n),
        )
        if (out.frame < 0).any():
            raise ValueError("frame: rows must be >= 0")
        if (out.face < 0).any():
            raise ValueError("face: indices must be >= 0")
        return out

    def crop_images(self) -> list[np.ndarray]:
        """The face crops at their true size: list of n uint8 arrays ``(h_i, w_i, 3)`` (views)."""
        if self.crop is None or self.crop_size is None:
            raise ValueError("crop_images needs the crop and crop_size columns")
        return [c[:h, :w] for c, (h, w) in zip(self.crop, self.crop_size.tolist())]

    @staticmethod
    def pack_crops(crops: Sequence[np.ndarray], crop_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Pack crops of varying size into one padded array.

        Parameters
        ----------
        crops : sequence of uint8 arrays, each (h_i, w_i, 3) with h_i, w_i <= crop_size
        crop_size : int

        Returns
        -------
        crop : ndarray of uint8, shape (n, crop_size, crop_size, 3)
        sizes : ndarray of int32, shape (n, 2)
            ``(h_i, w_i)`` per crop, for :attr:`FaceRecords.crop_size`.
        """
        out = np.zeros((len(crops), crop_size, crop_size, 3), np.uint8)
        sizes = np.zeros((len(crops), 2), np.int32)
        for i, c in enumerate(crops):
            c = np.asarray(c)
            if c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3:
                raise ValueError(f"crops[{i}]: expected uint8 (h, w, 3), got {c.dtype} {c.shape}")
            if c.shape[0] > crop_size or c.shape[1] > crop_size:
                raise ValueError(f"crops[{i}]: {c.shape[0]}x{c.shape[1]} exceeds crop_size {crop_size}")
            out[i, : c.shape[0], : c.shape[1]] = c
            sizes[i] = c.shape[:2]
        return out, sizes

    @classmethod
    def concat(cls, parts: Sequence[FaceRecords]) -> FaceRecords:
        """Concatenate batches along the row axis (one batch is returned as is).

        A column must be present in all batches or in none.
        """
        if len(parts) == 1:
            return parts[0]
        return cls(**{f.name: _concat(list(parts), f.name) for f in fields(cls)})

    def take(self, index) -> FaceRecords:
        """Rows ``index`` (slice, int array or boolean mask) of every present column."""
        return replace(self, **{f.name: getattr(self, f.name)[index]
                                for f in fields(self) if getattr(self, f.name) is not None})
