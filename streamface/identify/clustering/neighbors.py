"""Distances between embeddings, in blocks: exact pairs, pairs within a radius, k nearest neighbours.

Everything here takes float32 embeddings of shape (n, D) and a SciPy metric name
(see :data:`streamface.identify.features.METRICS`). Nothing builds an n x n matrix: the
all-pairs searches walk row blocks of at most ``block_rows`` x n distances.

Cosine and correlation become inner products of unit vectors (after centring
for correlation), euclidean and squared euclidean use ``|x|^2 + |y|^2 - 2 x.y``;
these run as float32 matrix products. Because float32 products are off by up to
about 1e-6, radius searches compare with :func:`search_limit` (the radius plus a
margin of :data:`SEARCH_MARGIN`) and so find a *superset* of the pairs within
the radius; callers that need exact decisions recompute the distances of the
candidates with :func:`pair_distances` (float64, SciPy's formulas).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import distance as sdist

__all__ = ["SEARCH_MARGIN", "block_distances", "knn_search", "pair_distances", "prepare", "radius_components",
           "search_limit", "squared_norms", "IVF_DISTANCE_ERROR"]

#: Extra distance added to a radius so float32 error never drops a true pair.
SEARCH_MARGIN = 1e-3

_INNER = ("cosine", "correlation")
_SQUARED = ("euclidean", "sqeuclidean")


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """Embeddings in the form the fast searches use: unit rows for cosine/correlation, else float32 as is.

    Returns
    -------
    ndarray of float32, shape (n, D), C-contiguous
    """
    x = np.asarray(x, dtype=np.float32)
    if metric in _INNER:
        if metric == "correlation":
            x = x - x.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def pair_distances(x: np.ndarray, i: np.ndarray, j: np.ndarray, metric: str) -> np.ndarray:
    """Exact float64 distances between rows ``x[i]`` and ``x[j]``, SciPy's formulas, in chunks.

    Parameters
    ----------
    x : ndarray, shape (n, D)
        Raw embeddings (not :func:`prepare`-d).
    i, j : ndarray of int, shape (m,)

    Returns
    -------
    ndarray of float64, shape (m,)
    """
    i = np.asarray(i, np.int64)
    j = np.asarray(j, np.int64)
    out = np.empty(len(i), np.float64)
    step = max(1, (1 << 22) // max(1, x.shape[1]))
    for s in range(0, len(i), step):
        a = np.asarray(x[i[s:s + step]], np.float64)
        b = np.asarray(x[j[s:s + step]], np.float64)
        out[s:s + step] = _rowwise(a, b, metric)
    return out


def _rowwise(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        d = 1.0 - np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        return np.clip(d, 0.0, 2.0)
    if metric == "correlation":
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        d = 1.0 - np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        return np.clip(d, 0.0, 2.0)
    diff = a - b
    if metric == "euclidean":
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))
    if metric == "sqeuclidean":
        return np.einsum("ij,ij->i", diff, diff)
    if metric == "cityblock":
        return np.abs(diff).sum(axis=1)
    if metric == "chebyshev":
        return np.abs(diff).max(axis=1)
    raise ValueError(f"metric: unsupported {metric!r}")


def squared_norms(xp: np.ndarray, metric: str) -> np.ndarray | None:
    """Row norms squared of prepared embeddings, for the (squared) euclidean blocks; None otherwise."""
    return np.einsum("ij,ij->i", xp, xp) if metric in _SQUARED else None


def block_distances(xq: np.ndarray, xb: np.ndarray, metric: str, sq_q=None, sq_b=None) -> np.ndarray:
    """Approximate (float32) distances between blocks of :func:`prepare`-d rows, shape (len(xq), len(xb)).

    ``sq_q`` and ``sq_b`` are the blocks' :func:`squared_norms` (euclidean metrics only).
    """
    if metric in _INNER:
        d = xq @ xb.T
        np.subtract(1.0, d, out=d)
        return d
    if metric in _SQUARED:
        d = xq @ xb.T
        d *= -2.0
        d += sq_q[:, None]
        d += sq_b[None, :]
        np.maximum(d, 0.0, out=d)
        if metric == "euclidean":
            np.sqrt(d, out=d)
        return d
    return sdist.cdist(xq, xb, metric=metric).astype(np.float32)


def search_limit(x: np.ndarray, metric: str, radius: float) -> float:
    """``radius`` plus a margin covering float32 error of :func:`block_distances` on the prepared rows ``x``."""
    return radius + _margin(x, metric, radius)


def _margin(x: np.ndarray, metric: str, radius: float) -> float:
    if metric in _INNER:
        return SEARCH_MARGIN
    scale = float(np.max(np.einsum("ij,ij->i", x, x))) if len(x) else 0.0
    if metric == "sqeuclidean":
        return SEARCH_MARGIN * (1.0 + scale)
    if metric == "euclidean":
        return SEARCH_MARGIN * (1.0 + np.sqrt(scale)) + np.sqrt(4e-6 * scale)
    return 1e-9 * (1.0 + abs(radius))  # cdist computes float64: exact up to the cast to float32


def candidate_pairs(xp: np.ndarray, radius: float, metric: str, *,
                    block_rows: int | None = None):
    """Yield, block by block, the row pairs ``(r, c)``, ``r < c``, of the prepared rows
    ``xp`` whose float32 distance is within :func:`search_limit` of ``radius``.

    A superset of the pairs within ``radius`` (never misses one); callers that need
    the exact set re-check with :func:`pair_distances`. Memory stays near one block
    of distances (``block_rows`` rows; default about 64 MiB).
    """
    n = len(xp)
    if n < 2:
        return
    if block_rows is None:
        block_rows = int(np.clip((16 << 20) // n, 64, 4096))
    limit = search_limit(xp, metric, radius)
    sq = squared_norms(xp, metric)
    for s in range(0, n, block_rows):
        e = min(n, s + block_rows)
        d = block_distances(xp[s:e], xp[s:], metric, None if sq is None else sq[s:e],
                            None if sq is None else sq[s:])
        r, c = np.nonzero(d <= limit)
        del d
        r += s
        c += s
        keep = c > r
        if keep.any():
            yield r[keep], c[keep]


def radius_components(x: np.ndarray, radius: float, metric: str, *, exact: bool = False,
                      block_rows: int | None = None) -> np.ndarray:
    """Connected components of the graph "distance <= radius", without storing its edges.

    Parameters
    ----------
    x : ndarray, shape (n, D)
        Raw embeddings.
    radius : float
    metric : str
    exact : bool, default False
        False: edges are the float32 candidates within :func:`search_limit` (a
        superset, so components may be joined across the radius by float32
        error but never split). True: candidates are re-checked in float64
        (single linkage needs the exact graph).
    block_rows : int, optional
        Rows per block; default keeps a block near 64 MiB of distances.

    Returns
    -------
    ndarray of int64, shape (n,)
        Component id of each row (the smallest row of the component).
    """
    xp = prepare(x, metric)
    comp = np.arange(len(xp), dtype=np.int64)
    for r, c in candidate_pairs(xp, radius, metric, block_rows=block_rows):
        if exact:
            ok = pair_distances(x, r, c, metric) <= radius
            r, c = r[ok], c[ok]
        if len(r) == 0:
            continue
        # Join at the level of current components: few distinct pairs remain.
        a, b = comp[r], comp[c]
        diff = a != b
        if not diff.any():
            continue
        pairs = np.unique(np.stack([a[diff], b[diff]], axis=1), axis=0)
        comp = _merge_components(comp, pairs[:, 0], pairs[:, 1])
    return comp


def _merge_components(comp: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Join components ``a[k]`` and ``b[k]``; ids stay the smallest row of each component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    m = len(nodes)
    graph = coo_matrix((np.ones(len(a), np.int8), (inv[: len(a)], inv[len(a):])), shape=(m, m))
    _, sub = connected_components(graph, directed=False)
    # New id of every touched component: the smallest id in its group.
    lead = np.full(sub.max() + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(lead, sub, nodes)
    remap = np.arange(len(comp), dtype=np.int64)
    remap[nodes] = lead[sub]
    return remap[comp]


#: k-means iterations that place the inverted lists (FAISS's default is 25). Measured at 300k
#: generated faces (benchmarks/bench_clustering.py): training 13.0 s with 25, 5.9 s with 10,
#: and the same graph edges (8 444 214), identities and BCubed F.
IVF_TRAIN_ITERATIONS = 10

#: Margin for the error of a distance from the inverted-list search, whose vectors are stored in
#: half precision (a relative error of 2**-11 per component). Radius searches over its results
#: add it to their margin. Measured at 300k generated faces: 99.97% of the edges within 0.32 of
#: the full-precision index are found, and the clustering's F is the same (0.9447).
IVF_DISTANCE_ERROR = 1e-3


def knn_search(x: np.ndarray, k: int, metric: str, *, index: str = "auto", exact_limit: int = 50_000,
               nprobe: int | None = None, random_state: int = 0,
               block_rows: int = 4096) -> tuple[np.ndarray, np.ndarray, str]:
    """The ``k`` nearest other rows of every row (self left out).

    Parameters
    ----------
    x : ndarray, shape (n, D)
        Raw embeddings.
    k : int
        Neighbours per row (at most n - 1 are returned).
    metric : {"cosine", "correlation", "euclidean", "sqeuclidean"}
    index : {"auto", "exact", "ivf", "numpy"}, default "auto"
        ``exact``: FAISS flat index (every distance computed); ``ivf``: FAISS
        inverted lists (``4 * sqrt(n)`` lists, ``nprobe`` probed, vectors stored in half
        precision: distances within :data:`IVF_DISTANCE_ERROR`), approximate;
        ``numpy``: blocked matrix products (used when FAISS is not installed);
        ``auto``: ``exact`` up to ``exact_limit`` rows, else ``ivf``.
    exact_limit : int, default 50000
    nprobe : int, optional
        Lists probed per query for ``ivf`` (default 32: on generated identities
        at 200k faces, 96% of the neighbours within 0.3 are found, against 92%
        with 16 and 99.5% with 64 at three times the time).
    random_state : int, default 0
        Seeds the IVF training sample.
    block_rows : int, default 4096
        Queries per block.

    Returns
    -------
    dist : ndarray of float32, shape (n, k')
        Distances, ascending per row; ``k' = min(k, n - 1)``.
    idx : ndarray of int64, shape (n, k')
        Neighbour rows; -1 where an approximate index found fewer than k'.
    used : str
        The index that ran.
    """
    if metric not in _INNER + _SQUARED:
        raise ValueError(f"metric: the knn method supports {_INNER + _SQUARED}, got {metric!r}")
    xp = prepare(x, metric)
    n = len(xp)
    k = min(int(k), n - 1)
    if k < 1:
        return np.empty((n, 0), np.float32), np.empty((n, 0), np.int64), "none"
    try:
        import faiss  # noqa: F401
    except ImportError:
        faiss = None
    if index == "auto":
        index = ("exact" if n <= exact_limit else "ivf") if faiss is not None else "numpy"
    if index in ("exact", "ivf") and faiss is None:
        raise ValueError(f"index: {index!r} needs faiss-cpu (pip install faiss-cpu); use 'numpy'")
    if index == "numpy":
        dist, idx = _knn_numpy(xp, k, metric, block_rows)
    elif index in ("exact", "ivf"):
        dist, idx = _knn_faiss(xp, k, metric, index, nprobe, random_state, block_rows)
    else:
        raise ValueError(f"index: expected 'auto', 'exact', 'ivf' or 'numpy', got {index!r}")
    return dist, idx, index


def _to_distance(sim_or_sq: np.ndarray, metric: str) -> np.ndarray:
    if metric in _INNER:
        return np.maximum(1.0 - sim_or_sq, 0.0).astype(np.float32)
    d = np.maximum(sim_or_sq, 0.0)
    return (np.sqrt(d) if metric == "euclidean" else d).astype(np.float32)


def _knn_faiss(xp, k, metric, kind, nprobe, random_state, block_rows):
    import faiss

    n, dim = xp.shape
    inner = metric in _INNER
    faiss_metric = faiss.METRIC_INNER_PRODUCT if inner else faiss.METRIC_L2
    if kind == "exact":
        index = faiss.IndexFlatIP(dim) if inner else faiss.IndexFlatL2(dim)
    else:
        # 4 sqrt(n) lists, but at least 40 training points per list (FAISS's minimum).
        nlist = int(max(1, min(65536, 4 * np.sqrt(n), n // 40)))
        quantizer = faiss.IndexFlatIP(dim) if inner else faiss.IndexFlatL2(dim)
        # Half-precision storage: the search reads half the memory (it is memory-bound), and
        # the distances it returns are off by at most IVF_DISTANCE_ERROR.
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss_metric)
        rng = np.random.default_rng(random_state)
        train = xp[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        index.cp.seed = int(random_state)
        index.cp.niter = IVF_TRAIN_ITERATIONS
        index.train(train)
        index.nprobe = int(min(nlist, nprobe or 32))
    if kind == "exact":
        index.add(xp)
        order = np.arange(n)
    else:
        # Each vector's nearest list, found once: it files the vector (as ``add`` would) and
        # orders the queries, so that a block's queries probe mostly the same lists, which stay
        # in cache (the search is memory-bound). Each query's result is the same in any order.
        xp = np.ascontiguousarray(xp, np.float32)
        nearest = np.ascontiguousarray(index.quantizer.search(xp, 1)[1][:, 0])
        index.add_core(n, faiss.swig_ptr(xp), None, faiss.swig_ptr(nearest))
        order = np.argsort(nearest, kind="stable")
    dist = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    for s in range(0, n, block_rows):
        rows = order[s:s + block_rows]
        d, i = index.search(xp[rows], k + 1)
        dist[rows], idx[rows] = _drop_self(d, i, rows, k, largest_first=inner)
    return _to_distance(dist, metric), idx


def _drop_self(d: np.ndarray, i: np.ndarray, rows: np.ndarray, k: int, *, largest_first: bool):
    """Remove each query's own row from its k+1 results (or the last result when self is absent)."""
    is_self = i == rows[:, None]
    # Rows where self was not found (duplicates or approximate search): drop the last result instead.
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    # Keep the first occurrence only, in case of duplicated ids.
    first = np.argmax(is_self, axis=1)
    keep = np.ones_like(is_self)
    keep[np.arange(len(rows)), first] = False
    return d[keep].reshape(len(rows), k), i[keep].reshape(len(rows), k)


def _knn_numpy(xp, k, metric, block_rows):
    n = len(xp)
    sq = squared_norms(xp, metric)
    dist = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    for s in range(0, n, block_rows):
        e = min(n, s + block_rows)
        d = block_distances(xp[s:e], xp, metric, None if sq is None else sq[s:e], sq)
        d[np.arange(e - s), np.arange(s, e)] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        pd = np.take_along_axis(d, part, axis=1)
        order = np.argsort(pd, axis=1, kind="stable")
        dist[s:e] = np.take_along_axis(pd, order, axis=1)
        idx[s:e] = np.take_along_axis(part, order, axis=1)
    return dist, idx
