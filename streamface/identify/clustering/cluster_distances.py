"""Distances between clusters, for cluster matching (docs/stages.md §7), without a loop over cluster pairs.

Three definitions, the seed's ``mode``:

- ``"average"``: distance between the clusters' mean embeddings;
- ``"single"``: distance of the closest pair of members;
- ``"triplet"``: the smallest distance between the clusters' representatives,
  each cluster represented by its mean and its two most distant members.

Only pairs at distance ``<= max_distance`` are returned. All three reduce to one
search: "closest pair of points with different cluster tags, within a radius"
over a point set (the means; all members; the three representatives). That
search runs in row blocks of float32 products (a superset of the pairs, by a
small margin), keeps the cross-cluster candidates, recomputes them in float64
and takes the minimum per cluster pair with a sort, so memory stays at one block
plus the candidates.
"""

from __future__ import annotations

import numpy as np

from streamface.identify.clustering.neighbors import candidate_pairs, pair_distances, prepare

__all__ = ["MODES", "cluster_pair_distances", "cross_cluster_min", "diameter_pairs"]

#: Cluster distance definitions (the seed's ``mode``).
MODES = ("average", "single", "triplet")


def cross_cluster_min(x: np.ndarray, tags: np.ndarray, max_distance: float, metric: str,
                      *, block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smallest distance between points of different tags, for every tag pair within ``max_distance``.

    Parameters
    ----------
    x : ndarray, shape (n, D)
        Raw embeddings.
    tags : ndarray of int, shape (n,)
        Cluster of each point.
    max_distance : float
    metric : str
    block_rows : int, optional
        Rows per block (default: about 64 MiB of distances).

    Returns
    -------
    a, b : ndarray of int64, shape (m,)
        Tag pairs, ``a < b``, sorted by (a, b).
    dist : ndarray of float64, shape (m,)
        Exact (float64) smallest distance of each pair, ``<= max_distance``.
    """
    tags = np.asarray(tags, np.int64)
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if len(tags) < 2:
        return empty
    parts_key, parts_d = [], []
    span = int(tags.max()) + 1
    for r, c in candidate_pairs(prepare(x, metric), max_distance, metric, block_rows=block_rows):
        keep = tags[r] != tags[c]
        r, c = r[keep], c[keep]
        if len(r) == 0:
            continue
        exact = pair_distances(x, r, c, metric)
        ok = exact <= max_distance
        ta, tb = tags[r[ok]], tags[c[ok]]
        key = np.minimum(ta, tb) * span + np.maximum(ta, tb)
        key, dist = _min_by_key(key, exact[ok])
        parts_key.append(key)
        parts_d.append(dist)
    if not parts_key:
        return empty
    key, dist = _min_by_key(np.concatenate(parts_key), np.concatenate(parts_d))
    return key // span, key % span, dist


def _min_by_key(key: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((value, key))
    key, value = key[order], value[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    return key[first], value[first]


def diameter_pairs(x: np.ndarray, labels: np.ndarray, clusters: np.ndarray,
                   metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The two most distant members of each cluster (the seed's triplet "edges").

    Ties go to the first pair in row-major order of the cluster's distance matrix,
    as ``np.argmax`` did in the seed. A one-face cluster gives that face twice.

    Parameters
    ----------
    x : ndarray, shape (n, D)
    labels : ndarray of int, shape (n,)
    clusters : ndarray of int, shape (m,)
        The clusters wanted.
    metric : str

    Returns
    -------
    first, second : ndarray of int64, shape (m,)
        Rows of ``x``.
    """
    from streamface.identify.clustering.hac import condensed_distances

    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    lo = np.searchsorted(sorted_labels, clusters, side="left")
    hi = np.searchsorted(sorted_labels, clusters, side="right")
    first = np.empty(len(clusters), np.int64)
    second = np.empty(len(clusters), np.int64)
    for k, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
        rows = order[a:b]
        m = len(rows)
        if m <= 2:
            first[k], second[k] = rows[0], rows[-1]
            continue
        if m <= 4096:
            cond = condensed_distances(x[rows], metric)
            best = int(np.argmax(cond))
            # Condensed index -> (i, j), i < j; the first maximum in condensed order is the
            # first in row-major order of the square matrix too.
            i = int(np.searchsorted(np.cumsum(np.arange(m - 1, 0, -1)), best, side="right"))
            j = best - (i * m - i * (i + 1) // 2) + i + 1
        else:
            i, j = _diameter_blocked(x[rows], metric)
        first[k], second[k] = rows[i], rows[j]
    return first, second


def _diameter_blocked(x: np.ndarray, metric: str, block_rows: int = 1024) -> tuple[int, int]:
    """Most distant pair of a large cluster, row block by row block (float64, SciPy's cdist)."""
    from scipy.spatial.distance import cdist

    m = len(x)
    best, bi, bj = -np.inf, 0, 1
    cols = np.arange(m)
    for s in range(0, m, block_rows):
        e = min(m, s + block_rows)
        d = cdist(x[s:e], x, metric)
        # Only j > i, so the first maximum is the row-major first of the upper triangle.
        d[cols[None, :] <= np.arange(s, e)[:, None]] = -np.inf
        k = int(np.argmax(d))
        if d.flat[k] > best:
            best, bi, bj = float(d.flat[k]), s + k // m, k % m
    return bi, bj


def cluster_pair_distances(x: np.ndarray, labels: np.ndarray, clusters: np.ndarray, *, mode: str,
                           metric: str, max_distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances between the given clusters by ``mode``, for pairs within ``max_distance``.

    Parameters
    ----------
    x : ndarray, shape (n, D)
    labels : ndarray of int, shape (n,)
        Cluster of each face.
    clusters : ndarray of int, shape (m,)
        Cluster labels to compare (faces of other clusters are ignored).
    mode : {"average", "single", "triplet"}
    metric : str
    max_distance : float

    Returns
    -------
    a, b : ndarray of int64, shape (p,)
        Cluster labels, ``a < b``.
    dist : ndarray of float64, shape (p,)
    """
    from streamface.identify.clustering.hac import cluster_means

    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    clusters = np.unique(np.asarray(clusters, np.int64))
    member = np.isin(labels, clusters)
    xs, ls = x[member], labels[member]
    # Compact ids 0..m-1 (ascending label order) for the searches.
    ids = np.searchsorted(clusters, ls)
    if mode == "average":
        means = cluster_means(xs, ids)
        a, b, d = cross_cluster_min(means, np.arange(len(clusters)), max_distance, metric)
    elif mode == "single":
        a, b, d = cross_cluster_min(xs, ids, max_distance, metric)
    else:
        means = cluster_means(xs, ids)
        e1, e2 = diameter_pairs(xs, ids, np.arange(len(clusters)), metric)
        reps = np.concatenate([means.astype(np.float64), xs[e1].astype(np.float64), xs[e2].astype(np.float64)])
        tags = np.tile(np.arange(len(clusters)), 3)
        a, b, d = cross_cluster_min(reps, tags, max_distance, metric)
    return clusters[a], clusters[b], d
