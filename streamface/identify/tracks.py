"""Track matches between faces: the seed's ``metadata/matches.csv``, or the store's track ids.

``matches.csv`` has a header ``Face 1,Face 2`` and one row per pair of faces that
face extraction found to be the same person in consecutive keyframes (file
names, ``.png`` included). In a store the same facts are a track id per face
(the ``match`` column); consecutive faces of a track form the pairs.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np

from streamface.identify.annotations import face_stem

__all__ = ["match_rows", "read_matches_csv", "store_match_rows"]


def read_matches_csv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Face-name pairs of a ``matches.csv`` (names reduced to stems).

    Raises
    ------
    FileNotFoundError
    ValueError
        No ``Face 1`` / ``Face 2`` columns.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fp:
        reader = csv.DictReader(fp)
        fields = reader.fieldnames or []
        if "Face 1" not in fields or "Face 2" not in fields:
            raise ValueError(f"{path}: expected the columns 'Face 1,Face 2' (the seed's matches.csv), got {fields}")
        return [(face_stem(row["Face 1"]), face_stem(row["Face 2"])) for row in reader
                if row.get("Face 1") and row.get("Face 2")]


def match_rows(names: np.ndarray, pairs: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows (into ``names``) of matched face pairs; pairs naming unknown faces are left out with a warning.

    Returns
    -------
    i, j : ndarray of int64, shape (m,)
    """
    index = {name: row for row, name in enumerate(np.asarray(names).tolist())}
    found = [(index[a], index[b]) for a, b in pairs if a in index and b in index]
    if len(found) < len(pairs):
        warnings.warn(f"{len(pairs) - len(found)} of {len(pairs)} track matches name faces without "
                      "features; they are ignored", UserWarning, stacklevel=2)
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    arr = np.asarray(found, np.int64)
    return arr[:, 0], arr[:, 1]


def store_match_rows(store: str, stream: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of consecutive faces sharing a track id among the first ``n`` faces of a stream.

    Returns
    -------
    i, j : ndarray of int64, shape (m,)
    """
    from streamface.store import FaceStore
    from streamface.store.export import match_pairs

    source = FaceStore.open(store, mode="r").stream(stream)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pairs = match_pairs(source.read_faces(0, n, columns=("match",)).match)
    if not pairs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    arr = np.asarray(pairs, np.int64)
    return arr[:, 0], arr[:, 1]
