"""After clustering: join clusters linked by track matches, and number clusters by size.

Both follow the seed (docs/stages.md §5). Track matches say "this face is the same
person as that face in the previous keyframe"; when the two faces fell in
different clusters and the mean distance between the two clusters' members is
below ``merging_threshold``, the clusters are joined (connected components of
the graph of such links).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.spatial import distance as sdist

from streamface.identify.clustering.constraints import Links, join_unless_forbidden
from streamface.identify.clustering.hac import canonical_labels, components

__all__ = ["mean_cluster_distances", "merge_matched_clusters", "order_by_size"]


def _cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Row sums per cluster, shape (k, D), as one sparse product."""
    member = csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels)))
    return np.asarray(member @ x)


def mean_cluster_distances(x: np.ndarray, labels: np.ndarray, a: np.ndarray, b: np.ndarray,
                           metric: str) -> np.ndarray:
    """Mean distance over all member pairs of clusters ``a[k]`` and ``b[k]``.

    Cosine and squared euclidean use closed forms over per-cluster sums (no pair
    is visited); other metrics compute the member distances pair of clusters by
    pair of clusters, as the seed did.

    Parameters
    ----------
    x : ndarray, shape (n, D)
    labels : ndarray of int, shape (n,)
        ``0..k-1``.
    a, b : ndarray of int, shape (m,)
        Cluster pairs.
    metric : str

    Returns
    -------
    ndarray of float64, shape (m,)
    """
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    k = int(labels.max()) + 1 if len(labels) else 0
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    xd = np.asarray(x, np.float64)
    if metric == "cosine":
        # mean(1 - u.v / |u||v|) = 1 - (sum of unit u) . (sum of unit v) / (|A| |B|)
        unit = xd / np.linalg.norm(xd, axis=1, keepdims=True)
        sums = _cluster_sums(unit, labels, k)
        return 1.0 - np.einsum("ij,ij->i", sums[a], sums[b]) / (counts[a] * counts[b])
    if metric == "sqeuclidean":
        sums = _cluster_sums(xd, labels, k)
        sq = np.bincount(labels, weights=np.einsum("ij,ij->i", xd, xd), minlength=k)
        cross = np.einsum("ij,ij->i", sums[a], sums[b]) / (counts[a] * counts[b])
        return sq[a] / counts[a] + sq[b] / counts[b] - 2.0 * cross
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    out = np.empty(len(a))
    for m, (p, q) in enumerate(zip(a.tolist(), b.tolist())):
        out[m] = sdist.cdist(x[order[bounds[p]:bounds[p + 1]]], x[order[bounds[q]:bounds[q + 1]]], metric).mean()
    return out


def merge_matched_clusters(x: np.ndarray, labels: np.ndarray, match_i: np.ndarray, match_j: np.ndarray, *,
                           threshold: float, metric: str = "cosine", links: Links | None = None) -> np.ndarray:
    """Join clusters linked by matched faces whose mean member distance is ``< threshold``.

    Parameters
    ----------
    x : ndarray, shape (n, D)
    labels : ndarray of int, shape (n,)
        Cluster of each face.
    match_i, match_j : ndarray of int, shape (m,)
        Rows of matched faces (one pair per match).
    threshold : float
        The seed's ``merging_threshold``: strict ``<``, as in the seed.
    metric : str
    links : Links, optional
        Cannot-link pairs of rows: two clusters holding one never join (closest pairs
        first; a join that would bring a cannot-link pair together is skipped).

    Returns
    -------
    ndarray of int64, shape (n,)
        Labels ``0..k'-1`` by first appearance.
    """
    labels = canonical_labels(labels)
    match_i = np.asarray(match_i, np.int64)
    match_j = np.asarray(match_j, np.int64)
    if len(match_i) == 0:
        return labels
    a, b = labels[match_i], labels[match_j]
    pairs = np.unique(np.sort(np.stack([a, b], axis=1), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if len(pairs) == 0:
        return labels
    dist = mean_cluster_distances(x, labels, pairs[:, 0], pairs[:, 1], metric)
    close = dist < threshold
    k = int(labels.max()) + 1
    if links is not None and len(links.cannot_i):
        order = np.argsort(dist[close], kind="stable")
        between = links.between(labels)
        comp = join_unless_forbidden(k, pairs[close, 0][order], pairs[close, 1][order],
                                     between.cannot_i, between.cannot_j)
    else:
        comp = components(k, pairs[close, 0], pairs[close, 1])
    return canonical_labels(comp[labels])


def order_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters by size: the largest is 0; -1 (noise) stays -1.

    Clusters of equal size keep the order of their first face. (The seed sorted
    sizes with NumPy's default, unstable quicksort, so its order among equal
    sizes was not defined; this one is.)

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    labels = np.asarray(labels, np.int64)
    out = np.full(len(labels), -1, np.int64)
    keep = labels >= 0
    if not keep.any():
        return out
    canon = canonical_labels(labels[keep])
    sizes = np.bincount(canon)
    rank = np.empty(len(sizes), np.int64)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(len(sizes))
    out[keep] = rank[canon]
    return out
