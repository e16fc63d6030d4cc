"""Hierarchical Retrieval Index (HRI): the seed's online identity tree (docs/stages.md, "The online index").

An online tree over face embeddings. Every node holds a value, the mean of the
vectors below it, and a descendant count; the tree's leaves are *end nodes*, one
per identity (a cluster of inserted vectors with one label). The tree lives in
flat C arrays (``streamface.kernels.hri``); this module checks arguments,
serialises access, and saves/loads the tree.

Insert rules (``mode=``; docs/hri.md has their labels measured against the original
code and against exact online nearest-centroid search):

``'balanced'`` (the default)
    Search with a beam of width ``beam`` (16): at each level the beam's internal nodes
    are replaced by their children and the ``beam`` nearest candidates kept, until only
    end nodes remain; the nearest is the found end node ``e`` at distance ``d``. If
    ``d <= threshold``, ``x`` joins ``e``; otherwise ``x`` becomes a new end node beside
    ``e`` (a child of ``e``'s parent). A node left with more than ``max_children`` (32)
    children is split in two by 2-means on their values (each half at least a quarter;
    the root splits into two new children), and the check moves to its parent: a
    B-tree-like tree with every end node at one depth. Values and counts are updated
    as in step 4 below; split halves are recomputed from their children.
``'greedy'``
    The seed reading, below.
``'original'``
    The original code's labels: ``'greedy'`` with its values (recomputed from the
    children) and its test for a node's distance to itself (see
    :class:`HierarchicalRetrievalIndex`).

The greedy rule, with the choices the seed's description leaves open:

Search
    Start at the root and repeatedly move to the child whose value is closest to
    the query (strictly closer wins, so on a tie the earlier child, i.e. the one
    that entered the parent's child list first, is taken) until an end node is
    reached. The result is that end node and the query's distance to its value.
Insert ``x``
    1. Empty tree: ``x`` becomes the first end node (label 0), a child of the root.
    2. Otherwise search for ``x``, giving end node ``e`` at distance ``d``. If
       ``d <= threshold``, ``x`` joins ``e`` and takes its label.
    3. Otherwise ``x`` becomes a new end node with the next label (labels are
       0, 1, 2, ... in order of creation). Let ``s`` be the distance from ``e``'s
       value to the value of its nearest sibling (the other children of ``e``'s
       parent, measured value to value). If ``e`` has a sibling and ``d < s``,
       a new internal node replaces ``e`` at the same position of the parent's
       child list, with children ``[e, x]``; otherwise (``d >= s``, or ``e`` is
       the root's only child) ``x`` is appended to ``e``'s parent's children.
    4. Every node that gained ``x`` below it (the joined end node or the new
       internal node, and all their ancestors up to the root) is updated with the
       weighted mean ``value = (value * count + x) / (count + 1)``, ``count += 1``.
Distances
    ``'cosine'``: ``1 - a.b / (|a||b|)`` (1 when a node value has norm 0, which only
    an exactly cancelling mean can have); ``'euclidean'``: ``|a - b|``. Values are
    float64; inputs are converted to float64.

``search_batch(..., k)`` returns ``k`` end nodes: first always the insert's search
answer (the label an insert would join), then the other end nodes found by a beam
of width ``max(k, beam)``, nearest first.

>>> import numpy as np
>>> index = HierarchicalRetrievalIndex(threshold=0.5, metric="euclidean")
>>> index.insert(np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])).tolist()
[0, 0, 1]
>>> label, dist = index.search([4.9, 5.0])
>>> int(label), round(float(dist), 3)
(1, 0.1)
"""

from __future__ import annotations

import os
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from streamface.checks import check_int
from streamface.kernels import hri as hri_core

__all__ = [
    "CorruptIndexError",
    "EmptyIndexError",
    "HRIError",
    "HierarchicalRetrievalIndex",
    "HierarchicalRetrievalIndexMatching",
    "METRICS",
    "MODES",
    "index_path_for_store",
]

# The store's side of an index (build one from a stream, query it) is
# streamface.identify.stream_index.

#: Metric names accepted by ``metric=``, mapped to the core's codes.
METRICS = {"cosine": 0, "euclidean": 1}
#: Insert rules accepted by ``mode=``, mapped to the core's codes (see the module docstring).
MODES = {"balanced": 0, "greedy": 1, "original": 2}
#: Defaults of ``beam`` and ``max_children`` per mode. Measured on generated identity
#: streams (docs/hri.md): with a beam of 16 over nodes of at most 32 children the labels
#: equal exact online nearest-centroid search on all five test streams.
MODE_DEFAULTS = {"balanced": {"beam": 16, "max_children": 32},
                 "greedy": {"beam": 1, "max_children": 0},
                 "original": {"beam": 1, "max_children": 0}}
#: Written into every saved index; bump when the layout changes.
FORMAT_VERSION = 1


class HRIError(ValueError):
    """Bad input to the index (wrong dimension, non-finite values, bad parameter)."""


class EmptyIndexError(HRIError):
    """A query was made on an index that holds no vectors."""


class CorruptIndexError(HRIError):
    """A saved index could not be read or is not a consistent tree."""


def _check_metric(metric) -> int:
    if not isinstance(metric, str) or metric not in METRICS:
        raise HRIError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    return METRICS[metric]


def _check_mode(mode, beam, max_children) -> tuple[int, int, int]:
    """The core's (mode code, beam, max_children) for validated arguments."""
    if not isinstance(mode, str) or mode not in MODES:
        raise HRIError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    defaults = MODE_DEFAULTS[mode]
    beam = defaults["beam"] if beam is None else beam
    max_children = defaults["max_children"] if max_children is None else max_children
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or not 1 <= beam <= 4096:
        raise HRIError(f"beam must be an int in [1, 4096], got {beam!r}")
    if mode == "original" and beam != 1:
        raise HRIError(f"mode 'original' descends greedily (beam 1), got beam={beam!r}")
    if mode == "balanced" and (isinstance(max_children, bool)
                               or not isinstance(max_children, (int, np.integer))
                               or not 8 <= max_children <= 4096):
        raise HRIError(f"max_children must be an int in [8, 4096], got {max_children!r}")
    return MODES[mode], int(beam), int(max_children or 0)


def _check_threshold(threshold) -> float:
    if isinstance(threshold, bool):
        raise HRIError(f"threshold must be a non-negative number, got {threshold!r}")
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise HRIError(f"threshold must be a non-negative number, got {threshold!r}") from None
    if not np.isfinite(value) or value < 0:
        raise HRIError(f"threshold must be a finite non-negative number, got {threshold!r}")
    return value


class HierarchicalRetrievalIndex:
    """The seed's online identity tree over embeddings, in C (see the module docstring).

    Parameters
    ----------
    threshold : float
        Largest distance at which a vector joins the end node it descends to.
    metric : {'cosine', 'euclidean'}, default 'cosine'
        Distance between vectors and node values.
    dim : int, optional
        Vector dimension; taken from the first insert when omitted.
    mode : {'balanced', 'greedy'}, default 'balanced'
        Insert rule. ``'balanced'``: a vector joins the nearest end node a beam of width
        ``beam`` finds, or starts a new end node beside it; a node with more than
        ``max_children`` children is split in two (2-means on their values).
        ``'greedy'``: the seed reading (greedy descent; the pair-or-append rule).
        ``'original'``: the original code's labels (github atifkhurshid/hri): the greedy
        rule with its values and its test for a node's distance to itself, which
        scikit-learn's rounding often misses (the new end node is then appended
        beside the found one instead of paired with it); one vector at a time from
        Python, for comparisons only.
    beam : int, optional
        Width of the insert's beam search (default 16 for ``'balanced'``, 1 for
        ``'greedy'``). :meth:`search` and column 0 of :meth:`search_batch` use the same
        search, so a query finds the label an insert would join.
    max_children : int, optional
        Largest number of children of a node in ``'balanced'`` mode (default 32, at least 8).

    Notes
    -----
    Calls are serialised by a lock, so one index may be shared between threads;
    ``search_batch`` itself runs its queries in parallel without the GIL.
    """

    def __init__(self, threshold: float, metric: str = "cosine", dim: int | None = None, *,
                 mode: str = "balanced", beam: int | None = None,
                 max_children: int | None = None):
        self._metric_code = _check_metric(metric)
        self.metric = metric
        self.threshold = _check_threshold(threshold)
        self._mode_code, self.beam, self.max_children = _check_mode(mode, beam, max_children)
        self.mode = mode
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer))
                                or dim < 1):
            raise HRIError(f"dim must be a positive int or None, got {dim!r}")
        self._dim = None if dim is None else int(dim)
        self._core = None
        self._size = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------
    # Properties

    @property
    def dim(self) -> int | None:
        """Vector dimension (None until the first insert when not given)."""
        return self._dim

    @property
    def size(self) -> int:
        """Number of vectors inserted."""
        return self._size

    def __len__(self) -> int:
        return self._size

    @property
    def num_labels(self) -> int:
        """Number of end nodes (identities); labels are ``0 .. num_labels - 1``."""
        return 0 if self._core is None else int(self._core.n_labels)

    @property
    def num_nodes(self) -> int:
        """Number of tree nodes: root, internal nodes and end nodes."""
        return 1 if self._core is None else int(self._core.n_nodes)

    def __repr__(self) -> str:
        return (f"HierarchicalRetrievalIndex(metric={self.metric!r}, threshold={self.threshold}, "
                f"mode={self.mode!r}, beam={self.beam}, dim={self._dim}, size={self._size}, "
                f"labels={self.num_labels})")

    # ------------------------------------------------------------------
    # Argument checks

    def _vectors(self, vectors, name: str) -> tuple[np.ndarray, np.ndarray]:
        array = np.asarray(vectors)
        if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                           or np.issubdtype(array.dtype, np.floating)):
            raise HRIError(f"{name} must hold real numbers, got dtype {array.dtype}")
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2:
            raise HRIError(f"{name} must be (D,) or (N, D), got shape {np.shape(vectors)}")
        dim = self._dim
        if dim is None:
            if array.shape[1] < 1:
                raise HRIError(f"{name} must have at least one column, got shape {array.shape}")
            dim = array.shape[1]
        elif array.shape[1] != dim:
            raise HRIError(f"{name} must have dimension {dim}, got {array.shape[1]}")
        array = np.ascontiguousarray(array, dtype=np.float64)
        # A NaN or inf anywhere in a row makes its norm non-finite: one pass checks both.
        norms = np.sqrt(np.einsum("ij,ij->i", array, array))
        finite = np.isfinite(norms)
        if not finite.all():
            row = int(np.argmin(finite))
            if np.isfinite(array[row]).all():
                raise HRIError(f"{name} row {row} is too large (its squared norm overflows)")
            raise HRIError(f"{name} row {row} is not finite (NaN or inf)")
        if self.metric == "cosine" and array.shape[0] and not (norms > 0).all():
            raise HRIError(f"{name} row {int(np.argmin(norms > 0))} is a zero vector, "
                           f"which has no cosine distance")
        return array, norms

    def _require_nonempty(self) -> None:
        if self._size == 0:
            raise EmptyIndexError("the index is empty: insert vectors before searching")

    # ------------------------------------------------------------------
    # Insert

    def insert(self, vectors) -> np.ndarray:
        """Insert vectors in order; return their labels.

        Parameters
        ----------
        vectors : array-like, shape (D,) or (N, D)
            Embeddings. Every row is checked before any is inserted.

        Returns
        -------
        numpy.ndarray of int64, shape (N,)
            The label of each vector (its end node's label).

        Raises
        ------
        HRIError
            On a wrong dimension, a NaN/inf value, or a zero vector with cosine.
        """
        return self.insert_timed(vectors)[0]

    def insert_timed(self, vectors) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`insert`, also returning each vector's insert time in seconds (float64)."""
        with self._lock:
            array, norms = self._vectors(vectors, "vectors")
            n = array.shape[0]
            labels = np.empty(n, dtype=np.int64)
            times = np.empty(n, dtype=np.float64)
            if n == 0:
                return labels, times
            if self._core is None:
                self._core = self._new_core(array.shape[1])
                self._dim = array.shape[1]
            if self.mode == "original":
                done = self._insert_original(array, norms, labels, times)
            else:
                done = self._core.insert_many(array, norms, labels, times)
            self._size += done
            if done < n:
                raise MemoryError(f"HRI ran out of memory after {done} of {n} vectors")
            return labels, times

    def _insert_original(self, array, norms, labels, times) -> int:
        """Mode 'original': the original code's decisions, one vector at a time."""
        core = self._core
        for i in range(array.shape[0]):
            start = time.perf_counter()
            x = array[i]
            found, d = core.descend_one(x, norms[i])
            action = 0
            if found >= 0 and d > self.threshold:
                siblings = core.child_values(core.parent_of(found))
                nearest = 0.0  # no sibling: the new end node is appended
                if len(siblings) > 1:
                    dists = _original_distances(core.node_value(found)[None], siblings,
                                                self.metric)[0]
                    # The original drops the node's distance to itself by == 0.0, which
                    # misses it when rounding leaves a tiny positive value: kept here.
                    dists[dists == 0.0] = np.inf
                    nearest = float(dists.min())
                action = 2 if d < nearest else 1
            label = core.place_original(x, found, action)
            times[i] = time.perf_counter() - start
            if label < 0:
                return i
            labels[i] = label
        return array.shape[0]

    def _new_core(self, dim: int):
        return hri_core.HRICore(dim, self._metric_code, self.threshold, self._mode_code,
                            self.beam, self.max_children)

    # ------------------------------------------------------------------
    # Search

    def search(self, vector) -> tuple[int, float]:
        """Label of the end node a vector descends to, and its distance to that node's value.

        Raises
        ------
        EmptyIndexError
            If nothing has been inserted.
        HRIError
            On a wrong dimension or a non-finite vector.
        """
        if np.ndim(vector) != 1:
            raise HRIError(f"vector must be 1-D, got shape {np.shape(vector)}; "
                           f"use search_batch for many queries")
        labels, distances = self.search_batch(vector, k=1, threads=1)
        return int(labels[0, 0]), float(distances[0, 0])

    def search_batch(self, queries, k: int = 1, threads: int | None = None, *,
                     beam: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest end nodes of many queries at once (GIL released, OpenMP threads).

        Parameters
        ----------
        queries : array-like, shape (M, D) or (D,)
        k : int, default 1
            Number of end nodes returned: column 0 is the nearest end node a width-``beam``
            beam search finds, columns 1.. the rest of a width-``max(k, beam)`` beam search.
        threads : int, optional
            OpenMP team size (default: all cores).
        beam : int, optional
            Width of the search (default: the index's ``beam``, so that column 0 is the
            label :meth:`insert` would join). Wider finds the nearest end node more often,
            at a cost about proportional to the width.

        Returns
        -------
        labels : numpy.ndarray of int64, shape (M, k)
            End-node labels (greedy answer, then the others nearest first); -1 where
            fewer than ``k`` end nodes exist.
        distances : numpy.ndarray of float64, shape (M, k)
            Distance to each end node's value; inf where the label is -1.
        """
        check_int("k", k, error=HRIError)
        if threads is None:
            threads = hri_core.default_threads()
        else:
            check_int("threads", threads, error=HRIError)
        if beam is None:
            beam = self.beam
        elif isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) \
                or not 1 <= beam <= 4096:
            raise HRIError(f"beam must be an int in [1, 4096] or None, got {beam!r}")
        with self._lock:
            self._require_nonempty()
            array, norms = self._vectors(queries, "queries")
            m = array.shape[0]
            nodes = np.empty((m, int(k)), dtype=np.int64)
            distances = np.empty((m, int(k)), dtype=np.float64)
            if m and self._core.search_many(array, norms, int(k), nodes, distances,
                                            int(threads), int(beam)) < 0:
                raise MemoryError("HRI search ran out of memory")
            labels = self._core.node_labels(nodes.ravel()).reshape(nodes.shape)
            return labels, distances

    # ------------------------------------------------------------------
    # Inspection

    def leaf_depths(self) -> np.ndarray:
        """Depth of every end node (root = 0, its children = 1), indexed by label (int64)."""
        with self._lock:
            if self._core is None:
                return np.zeros(0, dtype=np.int64)
            return self._core.label_depths()

    def label_counts(self) -> np.ndarray:
        """Number of vectors in every end node, indexed by label (int64)."""
        with self._lock:
            if self._core is None:
                return np.zeros(0, dtype=np.int64)
            tree = self._core.export()
            ends = tree["labels"] >= 0
            out = np.zeros(self.num_labels, dtype=np.int64)
            out[tree["labels"][ends]] = tree["counts"][ends]
            return out

    def depth_stats(self) -> dict:
        """Summary of :meth:`leaf_depths`: min, mean, median, max, and node counts."""
        depths = self.leaf_depths()
        if depths.size == 0:
            return {"labels": 0, "nodes": self.num_nodes}
        return {"labels": int(depths.size), "nodes": self.num_nodes,
                "min": int(depths.min()), "mean": float(depths.mean()),
                "median": float(np.median(depths)), "max": int(depths.max())}

    # ------------------------------------------------------------------
    # Persistence

    def to_arrays(self) -> dict:
        """The whole index as plain arrays (what :meth:`save` writes)."""
        with self._lock:
            meta = {
                "format_version": np.int64(FORMAT_VERSION),
                "metric": np.array(self.metric),
                "threshold": np.float64(self.threshold),
                "mode": np.array(self.mode),
                "beam": np.int64(self.beam),
                "max_children": np.int64(self.max_children),
                "dim": np.int64(-1 if self._dim is None else self._dim),
                "size": np.int64(self._size),
                "num_labels": np.int64(self.num_labels),
            }
            if self._core is None:
                return meta
            if self.mode == "original":
                meta["sums"] = self._core.export_sums()
            return {**meta, **self._core.export()}

    @classmethod
    def from_arrays(cls, arrays) -> HierarchicalRetrievalIndex:
        """Rebuild an index from :meth:`to_arrays` output, checking that it is a consistent tree.

        Raises
        ------
        CorruptIndexError
            If a field is missing, has the wrong type or shape, or the tree is inconsistent.
        """
        try:
            version = int(arrays["format_version"])
            metric = str(np.asarray(arrays["metric"]))
            threshold = float(arrays["threshold"])
            dim = int(arrays["dim"])
            size = int(arrays["size"])
            num_labels = int(arrays["num_labels"])
            # Indexes saved before modes existed were built by the greedy rule.
            mode = str(np.asarray(arrays["mode"])) if "mode" in arrays else "greedy"
            beam = int(arrays["beam"]) if "beam" in arrays else 1
            max_children = int(arrays["max_children"]) if "max_children" in arrays else 0
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptIndexError(f"saved index metadata is missing or invalid ({exc})") from None
        if version != FORMAT_VERSION:
            raise CorruptIndexError(f"saved index has format version {version}, "
                                    f"this build reads {FORMAT_VERSION}")
        try:
            index = cls(threshold, metric, None if dim < 0 else dim, mode=mode, beam=beam,
                        max_children=max_children or None)
        except HRIError as exc:
            raise CorruptIndexError(f"saved index has invalid parameters: {exc}") from None
        if size == 0:
            if num_labels != 0:
                raise CorruptIndexError("saved index is empty but claims labels")
            return index
        tree = _checked_tree(arrays, dim, size, num_labels)
        if index.mode == "balanced" and np.diff(tree["child_ptr"]).max() > index.max_children:
            # A split copies a node's children into scratch sized for max_children + 1.
            raise CorruptIndexError(f"saved index has a node with more than "
                                    f"max_children={index.max_children} children")
        core = index._new_core(dim)
        core.restore(tree["values"], tree["counts"], tree["parents"], tree["labels"],
                     tree["child_ptr"], tree["child_idx"], num_labels)
        if index.mode == "original":
            sums = np.asarray(arrays.get("sums", np.zeros(0)))
            if sums.shape != tree["values"].shape or sums.dtype.kind != "f":
                raise CorruptIndexError("saved index in mode 'original' lacks its end-node sums")
            core.restore_sums(np.ascontiguousarray(sums, dtype=np.float64))
        index._core = core
        index._size = size
        return index

    def save(self, path: str | os.PathLike, *, face_labels=None) -> Path:
        """Write the index to ``path`` (NumPy ``.npz``; the suffix is added if missing).

        ``face_labels`` (int, one per inserted vector, in insert order) is stored beside
        the tree for retrieval of the nearest faces; :meth:`load` ignores it.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = self.to_arrays()
        if face_labels is not None:
            arrays["face_labels"] = np.asarray(face_labels, dtype=np.int64)
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # a crash mid-save leaves the previous file intact
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> HierarchicalRetrievalIndex:
        """Read an index written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        CorruptIndexError
            If the file is not a readable, consistent saved index.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no saved index at {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise CorruptIndexError(f"cannot read saved index {path}: {exc}") from None
        return cls.from_arrays(arrays)

    def save_to_store(self, store_location: str | os.PathLike, stream: str, *,
                      face_labels=None) -> Path:
        """Save beside a local store (see :func:`index_path_for_store`)."""
        return self.save(index_path_for_store(store_location, stream), face_labels=face_labels)

    @classmethod
    def load_from_store(cls, store_location: str | os.PathLike, stream: str
                        ) -> HierarchicalRetrievalIndex:
        """Load what :meth:`save_to_store` wrote."""
        return cls.load(index_path_for_store(store_location, stream))


def _original_distances(x: np.ndarray, y: np.ndarray, metric: str) -> np.ndarray:
    """Distances (m, n) between float64 rows computed in the steps scikit-learn's
    ``cosine_distances`` / ``euclidean_distances`` take (normalise, matrix product,
    ``1 - s`` clipped to [0, 2]; ``|x|^2 - 2 x.y + |y|^2`` clipped at 0, square root),
    so that they round as the original code's do."""
    if metric == "cosine":
        def unit(a):
            norms = np.sqrt(np.einsum("ij,ij->i", a, a))
            norms[norms == 0.0] = 1.0
            return a / norms[:, None]

        s = unit(x) @ unit(y).T
        s *= -1
        s += 1
        return np.clip(s, 0.0, 2.0)
    d = -2 * (x @ y.T)
    d += np.einsum("ij,ij->i", x, x)[:, None]
    d += np.einsum("ij,ij->i", y, y)[None, :]
    np.maximum(d, 0, out=d)
    return np.sqrt(d, out=d)


def index_path_for_store(store_location: str | os.PathLike, stream: str) -> Path:
    """Where a stream's index is kept for a local store: ``<store>.hri/<stream>.npz``.

    The store has no API for foreign groups yet, so the index lives beside the store
    directory rather than inside the stream's group.
    """
    from streamface.store import validate_stream_name

    validate_stream_name(stream)
    text = os.fspath(store_location)
    if "://" in text and not text.startswith("file://"):
        raise HRIError(f"the index is kept beside the store, which needs a local store, "
                       f"got {text!r}")
    location = Path(text.removeprefix("file://").rstrip("/"))
    return location.with_name(location.name + ".hri") / f"{stream}.npz"


def _checked_tree(arrays, dim: int, size: int, num_labels: int) -> dict:
    """The tree arrays of a saved index as contiguous int64/float64, or CorruptIndexError."""
    names = ("values", "counts", "parents", "labels", "child_ptr", "child_idx")
    try:
        tree = {name: np.asarray(arrays[name]) for name in names}
    except KeyError as exc:
        raise CorruptIndexError(f"saved index lacks the {exc} array") from None
    for name in names[1:]:
        if tree[name].dtype.kind not in "iu" or tree[name].ndim != 1:
            raise CorruptIndexError(f"saved index array {name!r} must be 1-D integers")
        tree[name] = np.ascontiguousarray(tree[name], dtype=np.int64)
    values = tree["values"]
    if values.dtype.kind != "f" or values.ndim != 2 or values.shape[1] != dim or dim < 1:
        raise CorruptIndexError(f"saved index values must be (nodes, {dim}) floats, "
                                f"got {values.dtype} {values.shape}")
    tree["values"] = values = np.ascontiguousarray(values, dtype=np.float64)
    n = values.shape[0]
    counts, parents, labels = tree["counts"], tree["parents"], tree["labels"]
    ptr, idx = tree["child_ptr"], tree["child_idx"]
    problems = []
    if n < 2 or counts.shape[0] != n or parents.shape[0] != n or labels.shape[0] != n \
            or ptr.shape[0] != n + 1:
        raise CorruptIndexError("saved index arrays disagree on the number of nodes")
    if not np.isfinite(values).all():
        problems.append("non-finite node values")
    if ptr[0] != 0 or ptr[-1] != idx.shape[0] or (np.diff(ptr) < 0).any():
        raise CorruptIndexError("saved index child offsets are inconsistent")
    if idx.size and (idx.min() < 1 or idx.max() >= n):
        raise CorruptIndexError("saved index child ids are out of range")
    owner = np.repeat(np.arange(n), np.diff(ptr))
    if parents[0] != -1 or labels[0] != -1 or idx.shape[0] != n - 1 \
            or np.bincount(idx, minlength=n)[1:].max() != 1 or (parents[idx] != owner).any():
        raise CorruptIndexError("saved index parent/child links are inconsistent")
    ends = labels >= 0
    if np.sort(labels[ends]).tolist() != list(range(num_labels)):
        problems.append("end-node labels are not 0..num_labels-1")
    if (np.diff(ptr)[ends] != 0).any() or (np.diff(ptr)[~ends][1:] == 0).any():
        problems.append("end nodes with children or internal nodes without")
    if (counts[ends] < 1).any() or counts[0] != size:
        problems.append("descendant counts are inconsistent")
    if not problems:
        # Reachability from the root: a cycle or a detached node never reaches it.
        seen = np.zeros(n, dtype=bool)
        seen[0] = True
        frontier = np.array([0])
        while frontier.size:
            kids = np.concatenate([idx[ptr[i]:ptr[i + 1]] for i in frontier])
            if seen[kids].any():
                break
            seen[kids] = True
            frontier = kids
        if not seen.all():
            problems.append("nodes unreachable from the root")
        sums = np.zeros(n, dtype=np.int64)
        np.add.at(sums, owner, counts[idx])
        if (sums[~ends] != counts[~ends]).any():
            problems.append("descendant counts are inconsistent")
    if problems:
        raise CorruptIndexError("saved index is corrupt: " + "; ".join(problems))
    return tree


class HierarchicalRetrievalIndexMatching:
    """The seed-compatible streaming matcher: one label per feature, in arrival order.

    Parameters
    ----------
    metric : {'cosine', 'euclidean'}, default 'cosine'
    threshold : float, default 0.5
        Join distance (see :class:`HierarchicalRetrievalIndex`). The seed's notes record
        no default; pass the value the seed was run with.
    mode, beam, max_children
        The insert rule, as for :class:`HierarchicalRetrievalIndex`.

    Examples
    --------
    >>> import numpy as np
    >>> matcher = HierarchicalRetrievalIndexMatching(metric="cosine", threshold=0.3)
    >>> labels, times = matcher.match(np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]]))
    >>> labels.tolist()
    [0, 0, 1]
    """

    def __init__(self, metric: str = "cosine", threshold: float = 0.5, *,
                 mode: str = "balanced", beam: int | None = None,
                 max_children: int | None = None):
        _check_metric(metric)
        _check_threshold(threshold)
        _check_mode(mode, beam, max_children)
        self.metric = metric
        self.threshold = float(threshold)
        self._rule = {"mode": mode, "beam": beam, "max_children": max_children}
        self.index = HierarchicalRetrievalIndex(self.threshold, metric, **self._rule)

    def match(self, features) -> tuple[np.ndarray, np.ndarray]:
        """Insert ``features`` (N, D) in order, continuing the current tree.

        Returns
        -------
        labels : numpy.ndarray of int64, shape (N,)
        times : numpy.ndarray of float64, shape (N,)
            Seconds spent inserting each feature.
        """
        return self.index.insert_timed(features)

    def reset(self) -> None:
        """Forget every inserted feature; labels restart at 0."""
        self.index = HierarchicalRetrievalIndex(self.threshold, self.metric, **self._rule)
