"""One identity set for a collection of streams, grown day by day without reclustering.

A collection's identities are the labels its faces carry in the stores: the
identity id of a face is its label (``-1``: noise). ``streamface cluster`` keeps,
beside the collection's ``annotations.json``, an :class:`IdentityRecord`
(``metadata/identities.json``) that says how many rows of each stream the
collection's clustering has labelled. Rows past that count are new, whatever
label they carry (an online index, ``--index-threshold``, labels faces too, in
its own way).

An incremental run clusters only the new faces, with the same algorithm as a
full run, then joins each new cluster to the nearest existing identity when
their mean embeddings are within the matching threshold (the rule the seed's
second level applies to cluster means), or makes it a new identity with the
next unused id. Labelled faces keep their labels, so identity ids are stable
across runs and across rotated stores, and merges a person accepted in a review
(their labels, once written back) are never undone. A full run (``--full``)
reclusters everything and then gives each new cluster the earlier id it shares
most faces with (:func:`stable_ids`), so ids stay stable there too where the
clusters allow it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["IDENTITY_MEANS", "IDENTITY_RECORD", "Growth", "IdentityRecord", "IdentitySet", "collection_folder", "grow_identities",
           "known_faces", "nearest", "stable_ids", "stream_key", "collection_identities"]

#: File name of the record, in ``<output_dir>/metadata/``.
IDENTITY_RECORD = "identities.json"
#: File name of the identities' mean embeddings beside it (for the online index of run/ingest).
IDENTITY_MEANS = "identities.npz"

_VERSION = 1


def collection_folder(features_path: str | os.PathLike) -> Path:
    """Where a collection's ``metadata/annotations.json`` and identity record go by default.

    ``<folder>/<name>.identities`` beside the stores, ``<name>`` being the store's
    name without ``.zarr``, or the rotation base's (``news-2026-11-28.zarr`` and
    ``news.zarr`` both give ``news.identities``, so every day of a rotated
    collection shares one); for a glob, its first store's; for a store given as
    a URL, in the current folder.

    Parameters
    ----------
    features_path : str or path
        The first store argument (``::<stream>`` allowed).
    """
    from streamface.identify.features import split_store_path
    from streamface.store.rotation import base_of, expand_store_locations

    path, _ = split_store_path(features_path)
    first = (expand_store_locations([path]) or [path])[0]
    base = base_of(first) or first
    name = base.rstrip("/").rsplit("/", 1)[-1]
    name = name[: -len(".zarr")] if name.endswith(".zarr") else name
    local = "://" not in base or base.startswith("file://")
    folder = Path(base[len("file://"):] if base.startswith("file://") else base).parent if local else Path(".")
    return folder / f"{name}.identities"


@dataclass
class IdentityRecord:
    """What the collection's clustering has labelled so far.

    Parameters
    ----------
    streams : dict of str to int
        ``"<store>::<stream>"`` -> the rows ``[0, n)`` of that stream the
        collection's clustering labelled.
    next_id : int, default 0
        The next unused identity id (ids are never reused).
    model : str or None
        The embedding model the identities were made with.
    """

    streams: dict[str, int] = field(default_factory=dict)
    next_id: int = 0
    model: str | None = None

    @classmethod
    def read(cls, path: str | os.PathLike) -> IdentityRecord | None:
        """The record at ``path``; None when there is none.

        Raises
        ------
        ValueError
            The file is not a record this version wrote (the message names it).
        """
        path = Path(path)
        if not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("version") != _VERSION:
                raise ValueError(f"version {doc.get('version')!r}")
            streams = {str(k): int(v) for k, v in doc["streams"].items()}
            return cls(streams, int(doc["next_id"]), doc.get("model"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not an identity record of this version ({exc}); "
                             "remove it or cluster with --full") from None

    def updated(self, features, labels: np.ndarray, model: str | None) -> IdentityRecord:
        """This record after ``labels`` were stored for every face of ``features`` (a copy)."""
        labels = np.asarray(labels)
        top = int(labels.max()) + 1 if len(labels) else 0
        streams = dict(self.streams)
        streams.update({stream_key(s): int(s.rows.max()) + 1 for s in features.sources if len(s.rows)})
        return IdentityRecord(streams, max(top, self.next_id), model)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the record atomically (a temporary file renamed over ``path``)."""
        from streamface.identify.annotations import write_json

        doc = {"version": _VERSION, "next_id": int(self.next_id), "model": self.model,
               "streams": dict(sorted(self.streams.items()))}
        return write_json(path, doc)


def known_faces(features, record: IdentityRecord | None) -> np.ndarray:
    """Which faces the collection's clustering already labelled.

    Parameters
    ----------
    features : streamface.identify.features.Features
        From stores (``features.sources``, ``features.stored_labels``).
    record : IdentityRecord or None
        None: no face is known (a first, or full, run).

    Returns
    -------
    ndarray of bool, shape (n,)
        True for a face in a row the record counts and with a stored label
        (an identity, or -1 for noise).
    """
    known = np.zeros(len(features), bool)
    if record is None or features.stored_labels is None:
        return known
    for source in features.sources:
        labelled = record.streams.get(stream_key(source), 0)
        rows = slice(source.start, source.stop)
        known[rows] = (source.rows < labelled) & (features.stored_labels[rows] >= -1)
    return known


def stream_key(source) -> str:
    """A stream's key in the record: ``<store>::<stream>``, a local store by its absolute path
    (so ``news.zarr`` and ``./news.zarr`` are one stream)."""
    store = source.store
    if "://" not in store or store.startswith("file://"):
        store = os.path.abspath(os.path.expanduser(store[len("file://"):] if store.startswith("file://") else store))
    return f"{store}::{source.stream}"


@dataclass
class IdentitySet:
    """Identities as mean embeddings.

    Parameters
    ----------
    ids : ndarray of int64, shape (k,)
    means : ndarray of float64, shape (k, D)
        Mean member embedding of each identity.
    counts : ndarray of int64, shape (k,)
        Faces per identity.
    """

    ids: np.ndarray
    means: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_labels(cls, x: np.ndarray, labels: np.ndarray) -> IdentitySet:
        """The identities of ``labels`` (ids >= 0; noise, -1, and unset faces are left out).

        Parameters
        ----------
        x : ndarray, shape (n, D)
        labels : ndarray of int, shape (n,)
        """
        from scipy.sparse import csr_matrix

        labels = np.asarray(labels, np.int64)
        rows = np.flatnonzero(labels >= 0)
        ids, inverse, counts = np.unique(labels[rows], return_inverse=True, return_counts=True)
        # float32 sums straight from the rows (no float64 or subset copy of x: for millions of
        # faces that copy was the largest allocation of adding a day).
        member = csr_matrix((np.ones(len(rows), np.float32), (inverse, rows)), shape=(len(ids), len(labels)))
        sums = np.asarray(member @ np.asarray(x, np.float32), np.float64)
        return cls(ids, sums / np.maximum(counts, 1)[:, None], counts)

    def __len__(self) -> int:
        return len(self.ids)

    def write(self, path: str | os.PathLike) -> Path:
        """Write ``ids``, ``means`` and ``counts`` to a ``.npz`` atomically."""
        import io

        from streamface.atomic_write import atomic_write

        buffer = io.BytesIO()
        np.savez(buffer, ids=self.ids, means=self.means.astype(np.float32), counts=self.counts)
        return atomic_write(path, buffer.getvalue())

    @classmethod
    def read(cls, path: str | os.PathLike) -> IdentitySet:
        """Read what :meth:`write` wrote.

        Raises
        ------
        ValueError
            Not such a file (the message names it).
        """
        try:
            with np.load(path, allow_pickle=False) as npz:
                ids, means, counts = npz["ids"], npz["means"], npz["counts"]
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a file of identity means ({exc})") from None
        if means.ndim != 2 or len(ids) != len(means) or len(counts) != len(ids):
            raise ValueError(f"{path}: ids {ids.shape}, means {means.shape} and counts {counts.shape} disagree")
        return cls(ids.astype(np.int64), means.astype(np.float64), counts.astype(np.int64))


def collection_identities(store_location: str | os.PathLike) -> IdentitySet | None:
    """The identities ``streamface cluster`` wrote for the collection ``store_location`` belongs to
    (its default folder, :func:`collection_folder`); None when it has none yet."""
    path = collection_folder(store_location) / "metadata" / IDENTITY_MEANS
    if not path.is_file():
        return None
    identities = IdentitySet.read(path)
    return identities if len(identities) else None


@dataclass
class Growth:
    """What :func:`grow_identities` did.

    Parameters
    ----------
    labels : ndarray of int64, shape (n,)
        Every face's identity id (-1: noise).
    joined_faces : int
        New faces that joined an existing identity.
    new_identities : int
        Identities made of new faces only.
    new_faces : int
        Faces that were new (clustered in this run).
    next_id : int
        The next unused identity id.
    """

    labels: np.ndarray
    joined_faces: int
    new_identities: int
    new_faces: int
    next_id: int


def grow_identities(x: np.ndarray, known_labels: np.ndarray, new: np.ndarray, new_clusters: np.ndarray,
                    threshold: float, *, metric: str = "cosine", next_id: int = 0,
                    chunk: int = 4096) -> Growth:
    """Join clusters of new faces to existing identities, or make them new identities.

    Parameters
    ----------
    x : ndarray, shape (n, D)
        Every face of the collection.
    known_labels : ndarray of int, shape (n,)
        The identity of each known face (-1: noise); ignored where ``new``.
    new : ndarray of bool, shape (n,)
        The faces to place.
    new_clusters : ndarray of int, shape (new.sum(),)
        A clustering of ``x[new]``, ``0..m-1`` (the collection's algorithm run
        on the new faces alone).
    threshold : float
        A new cluster joins the nearest identity when the distance between their
        mean embeddings is at most this (the matching threshold).
    metric : str, default "cosine"
        A SciPy metric name.
    next_id : int, default 0
        Ids of new identities start here (and above every known id).
    chunk : int, default 4096
        New clusters compared with all identities at once (bounds the memory of
        the distance block to ``chunk * k`` floats).

    Returns
    -------
    Growth
    """
    new = np.asarray(new, bool)
    labels = np.asarray(known_labels, np.int64).copy()
    clusters = np.asarray(new_clusters, np.int64)
    if len(clusters) != int(new.sum()):
        raise ValueError(f"new_clusters: {len(clusters)} labels for {int(new.sum())} new faces")
    identities = IdentitySet.from_labels(x, np.where(new, -2, labels))
    start = max(int(next_id), int(identities.ids.max()) + 1 if len(identities) else 0)
    m = int(clusters.max()) + 1 if len(clusters) else 0
    target = np.full(m, -1, np.int64)
    if m and len(identities):
        means = IdentitySet.from_labels(x[new], clusters).means
        best, d = nearest(means, identities.means, metric, chunk=chunk)
        near = d <= threshold
        target[near] = identities.ids[best[near]]
    # New identities take ids in order of size (largest first), as a full run numbers them.
    alone = np.flatnonzero(target < 0)
    sizes = np.bincount(clusters, minlength=m)
    alone = alone[np.argsort(-sizes[alone], kind="stable")]
    target[alone] = start + np.arange(len(alone))
    labels[new] = target[clusters]
    joined = int(np.isin(clusters, np.flatnonzero(~np.isin(np.arange(m), alone))).sum())
    return Growth(labels, joined, len(alone), int(new.sum()), start + len(alone))


def nearest(a: np.ndarray, b: np.ndarray, metric: str = "cosine", *,
            chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The nearest row of ``b`` to each row of ``a``, and its distance.

    Cosine, correlation, euclidean and squared euclidean search by a matrix product
    in float32 (BLAS), block by block, and give the distance of the row found in
    float64; other metrics use SciPy's ``cdist``.

    Parameters
    ----------
    a : ndarray, shape (m, D)
    b : ndarray, shape (k, D), k >= 1
    metric : str, default "cosine"
    chunk : int, default 4096
        Rows of ``a`` per block (the block holds ``chunk * k`` floats).

    Returns
    -------
    index : ndarray of int64, shape (m,)
    distance : ndarray of float64, shape (m,)
    """
    from scipy.spatial.distance import cdist

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    index = np.empty(len(a), np.int64)
    if metric in ("cosine", "correlation"):
        def unit(v):
            v = v - v.mean(axis=1, keepdims=True) if metric == "correlation" else v
            return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)

        ua, ub = unit(a), unit(b)
        ub32 = ub.astype(np.float32)
        for lo in range(0, len(a), chunk):
            index[lo:lo + chunk] = np.argmax(ua[lo:lo + chunk].astype(np.float32) @ ub32.T, axis=1)
        return index, 1.0 - np.einsum("ij,ij->i", ua, ub[index])
    if metric in ("euclidean", "sqeuclidean"):
        b32 = b.astype(np.float32)
        half_norms = 0.5 * np.einsum("ij,ij->i", b32, b32)
        for lo in range(0, len(a), chunk):
            # argmin |a - b|^2 = argmax (a.b - |b|^2 / 2)
            index[lo:lo + chunk] = np.argmax(a[lo:lo + chunk].astype(np.float32) @ b32.T - half_norms, axis=1)
        sq = np.einsum("ij,ij->i", a - b[index], a - b[index])
        return index, sq if metric == "sqeuclidean" else np.sqrt(sq)
    distance = np.empty(len(a))
    for lo in range(0, len(a), chunk):
        d = cdist(a[lo:lo + chunk], b, metric=metric)
        index[lo:lo + chunk] = np.argmin(d, axis=1)
        distance[lo:lo + chunk] = d[np.arange(len(d)), index[lo:lo + chunk]]
    return index, distance


def stable_ids(labels: np.ndarray, previous: np.ndarray, *, next_id: int = 0) -> tuple[np.ndarray, int]:
    """Renumber a full clustering so that its clusters keep the ids they had before.

    Each cluster takes the earlier id it shares most faces with, one cluster per
    id, the largest overlaps first; the others take new ids from
    ``max(next_id, every earlier id + 1)``, largest cluster first.

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
        The new clustering, ``0..k-1``.
    previous : ndarray of int, shape (n,)
        Each face's earlier id (< 0: none, or noise).
    next_id : int, default 0

    Returns
    -------
    (ndarray of int64, shape (n,), int)
        The renumbered labels and the next unused id.
    """
    labels = np.asarray(labels, np.int64)
    previous = np.asarray(previous, np.int64)
    k = int(labels.max()) + 1 if len(labels) else 0
    had = previous >= 0
    start = max(int(next_id), int(previous[had].max()) + 1 if had.any() else 0)
    mapping = np.full(k, -1, np.int64)
    if had.any():
        pairs, overlap = np.unique(np.stack([labels[had], previous[had]]), axis=1, return_counts=True)
        taken: set[int] = set()
        for p in np.argsort(-overlap, kind="stable").tolist():
            cluster, old = int(pairs[0, p]), int(pairs[1, p])
            if mapping[cluster] < 0 and old not in taken:
                mapping[cluster] = old
                taken.add(old)
    rest = np.flatnonzero(mapping < 0)
    sizes = np.bincount(labels, minlength=k)
    rest = rest[np.argsort(-sizes[rest], kind="stable")]
    mapping[rest] = start + np.arange(len(rest))
    return mapping[labels] if k else labels.copy(), start + len(rest)
