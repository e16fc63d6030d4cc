"""Growing arrays over a Zarr group: the storage half of a table, without the commit logic.

A :class:`GrowingArray` is one Zarr array that grows along axis 0. Its shape is
its *capacity*: it grows ahead of the data by at least half its size (whole
chunks), so that appends rarely rewrite the array's metadata, and it is cut
back to the committed row count when a writer resumes or closes. Which rows are
valid is decided by the commit counters (see :mod:`streamface.store.stream`),
never by the shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.sync import sync

from streamface.store.errors import StoreCorruptError
from streamface.store.schema import ColumnSpec


def compressors_for(spec: ColumnSpec) -> Any:
    """Zarr v3 compressors for a column's codec family (see :class:`~streamface.store.schema.ColumnSpec`)."""
    if spec.codec == "image":
        # Pixels: bit shuffle exposes the smooth high bits; zstd level 1 keeps appends fast.
        return BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")
    if spec.codec == "numeric":
        return BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
    if spec.codec == "bytes":
        # Encoded JPEG/PNG bytes do not compress (Blosc stores such blocks as they are),
        # but the unwritten tail of a chunk does: a stream of one frame costs that
        # frame's bytes, not a whole 4 MiB chunk. lz4: a flush of 8 1080p JPEGs took
        # 21.6 vs 20.5 ms raw (zstd level 1: 31 ms), side by side on 2 Xeon cores.
        return BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle")
    if spec.codec == "raw":
        return None
    raise ValueError(f"unknown codec family {spec.codec!r} for {spec.path}")


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


class GrowingArray:
    """One array of a table, growing along axis 0.

    Parameters
    ----------
    group : zarr.Group
        The stream group; the array lives at ``spec.path`` inside it.
    spec : ColumnSpec
    array : zarr.Array
        The opened array (see :meth:`create` and :meth:`open`).
    """

    def __init__(self, group: zarr.Group, spec: ColumnSpec, array: zarr.Array) -> None:
        self.group = group
        self.spec = spec
        self.array = _for_appends(array)

    @classmethod
    def create(cls, group: zarr.Group, spec: ColumnSpec, attributes: dict | None = None) -> GrowingArray:
        """Create the (empty) array described by ``spec``."""
        array = group.create_array(
            spec.path,
            shape=(0,) + spec.row_shape,
            chunks=(spec.chunk_rows,) + spec.row_shape,
            dtype=spec.dtype,
            fill_value=spec.fill_value,
            compressors=compressors_for(spec),
            attributes=attributes or {},
        )
        return cls(group, spec, array)

    @classmethod
    def open(cls, group: zarr.Group, spec: ColumnSpec) -> GrowingArray:
        """Open the existing array at ``spec.path``, checking its dtype and row shape.

        Raises
        ------
        StoreCorruptError
            If the array is missing or its dtype or row shape differs from ``spec``.
        """
        try:
            array = group[spec.path]
        except KeyError:
            raise StoreCorruptError(f"array {spec.path!r} is missing from {group.store_path}") from None
        if not isinstance(array, zarr.Array) or array.dtype != spec.dtype or array.shape[1:] != spec.row_shape:
            raise StoreCorruptError(
                f"array {spec.path!r} in {group.store_path} is not {spec.dtype} with rows of shape {spec.row_shape}"
            )
        return cls(group, spec, array)

    @property
    def capacity(self) -> int:
        """Rows the array can hold without growing (its shape along axis 0)."""
        return int(self.array.shape[0])

    def ensure_capacity(self, rows: int) -> None:
        """Grow the array so it holds at least ``rows`` rows (by >= 50%, to whole chunks)."""
        if rows <= self.capacity:
            return
        target = _round_up(max(rows, self.capacity + self.capacity // 2), self.spec.chunk_rows)
        self.array.resize((target,) + self.spec.row_shape)

    def write(self, start: int, values: np.ndarray) -> None:
        """Write ``values`` (shape ``(n,) + row_shape``) at rows ``[start, start + n)``."""
        stop = start + len(values)
        self.ensure_capacity(stop)
        if len(values):
            self.array[start:stop] = values

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)``; re-reads the array's metadata if another process grew it."""
        if stop > self.capacity:
            self.array = _for_appends(self.group[self.spec.path])
            if stop > self.capacity:
                raise StoreCorruptError(
                    f"array {self.spec.path!r} holds {self.capacity} rows but {stop} are committed"
                )
        return self.array[start:stop]

    def truncate(self, rows: int) -> None:
        """Cut the array to exactly ``rows`` rows, deleting the chunks past them."""
        if self.capacity != rows:
            self.array.resize((rows,) + self.spec.row_shape)


def _for_appends(array: zarr.Array) -> zarr.Array:
    # Zarr's default (write_empty_chunks=False) compares every merged chunk with the
    # fill value before writing it, to skip all-fill chunks: over half the time of a
    # 4 MiB image-bytes append (measured). Appended rows are data, so storing the rare
    # chunk that happens to be all fill costs a few bytes and reads back the same.
    return array.with_config({"write_empty_chunks": True})


class ColumnSet:
    """Columns that share rows (a table's arrays), opened lazily by name.

    Parameters
    ----------
    group : zarr.Group
        The stream group.
    specs : dict of str to ColumnSpec
        The columns, keyed by field name.
    """

    def __init__(self, group: zarr.Group, specs: dict[str, ColumnSpec]) -> None:
        self.group = group
        self.specs = dict(specs)
        self._arrays: dict[str, GrowingArray] = {}

    def __getitem__(self, name: str) -> GrowingArray:
        if name not in self._arrays:
            self._arrays[name] = GrowingArray.open(self.group, self.specs[name])
        return self._arrays[name]

    def exists(self, name: str) -> bool:
        """Whether column ``name`` exists in the store."""
        return name in self._arrays or _exists(self.group, self.specs[name].path)

    def ensure_created(self) -> None:
        """Create every column that does not exist yet (a writer's first open)."""
        for name, spec in self.specs.items():
            if name in self._arrays:
                continue
            try:
                self._arrays[name] = GrowingArray.open(self.group, spec)
            except StoreCorruptError:
                if _exists(self.group, spec.path):
                    raise
                self._arrays[name] = GrowingArray.create(self.group, spec)

    def write(self, start: int, values: dict[str, np.ndarray]) -> None:
        """Write each column's ``values[name]`` at ``start``."""
        write_rows(self.rows(start, values))

    def rows(self, start: int, values: dict[str, np.ndarray]) -> list[tuple[GrowingArray, int, np.ndarray]]:
        """``(array, start, values)`` for each column, for :func:`write_rows`."""
        return [(self[name], start, column) for name, column in values.items()]

    def read(self, start: int, stop: int, names) -> dict[str, np.ndarray]:
        """Rows ``[start, stop)`` of the named columns."""
        return {name: self[name].read(start, stop) for name in names}

    def truncate(self, rows: int) -> None:
        """Cut every column to ``rows`` rows."""
        for name in self.specs:
            self[name].truncate(rows)


def write_rows(writes: Iterable[tuple[GrowingArray, int, np.ndarray]]) -> None:
    """Write rows into several arrays at once.

    Each ``(array, start, values)`` writes ``values`` at rows ``[start, start + n)``.
    The arrays are grown first (one by one: growing rewrites metadata), then all the
    rows go to Zarr's event loop in one call, so their chunks are encoded and stored
    concurrently instead of one round trip per array (a batch touches ~20 arrays).
    """
    pending = []
    for array, start, values in writes:
        stop = start + len(values)
        array.ensure_capacity(stop)
        if len(values):
            pending.append(array.array.async_array.setitem(slice(start, stop), values))
    if len(pending) == 1:
        sync(pending[0])
    elif pending:
        sync(_gather(pending))


async def _gather(coroutines) -> None:
    await asyncio.gather(*coroutines)


def _exists(group: zarr.Group, path: str) -> bool:
    try:
        group[path]
    except KeyError:
        return False
    return True
