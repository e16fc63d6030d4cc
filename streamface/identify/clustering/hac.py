"""Agglomerative clustering cut at a distance threshold, and the seed's batched two-level scheme.

**Why components.** With single, complete, average or weighted linkage, two
clusters can merge at a height ``<= t`` only if some pair of their members is
within ``t`` (for complete linkage, every pair). So every flat cluster at ``t``
lies inside one connected component of the graph "distance ``<= t``", and since
merges inside one component never depend on distances to another, running the
linkage on each component alone gives the same flat clusters as running it on
all points at once. :func:`threshold_hac` finds the components with blocked
float32 matrix products (a superset of the edges, so components are never too
small), then runs SciPy's linkage on each component with float64 distances.
Face embeddings at the seed's thresholds fall into many small components, so
this is much faster than one linkage over the batch and needs no n x n matrix.
Centroid, median and Ward linkage do not have the property; they run on all
points at once.

**The seed's scheme** (docs/stages.md §5), :func:`batched_hac`: cluster each batch
of ``batch_size`` consecutive embeddings at ``t``; then, ``mean_levels`` times
(the seed: twice), cluster the mean embedding of every cluster at ``t`` and map
the labels through.

Labels returned here are numbered ``0..k-1`` by first appearance (the seed's
intermediate numbering followed SciPy's dendrogram order; only the partition
matters until the final renumbering by size).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.cluster.hierarchy as sch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import squareform

from streamface.identify.clustering.constraints import Links, constrained_cut
from streamface.identify.clustering.neighbors import pair_distances, radius_components
from streamface.ops.ray_pool import LocalExecutor

__all__ = ["GRAPH_LINKAGES", "LINKAGES", "batched_hac", "canonical_labels", "cluster_components",
           "cluster_means", "components", "condensed_distances", "threshold_hac"]

#: Linkage methods (SciPy / fastcluster names).
LINKAGES = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
#: Linkages whose clusters at ``t`` lie inside the components of the ``<= t`` graph.
GRAPH_LINKAGES = ("single", "complete", "average", "weighted")


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber labels ``0..k-1`` in order of first appearance.

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.empty(0, np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def cluster_means(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean embedding of each cluster, ``means[y] = x[labels == y].mean(axis=0)``.

    Computed slice by slice in the same order and dtype as that expression, so the
    means are bit-identical to the seed's (which matters for exact reproduction).

    Parameters
    ----------
    x : ndarray, shape (n, D)
    labels : ndarray of int, shape (n,)
        ``0..k-1``, every label used.

    Returns
    -------
    ndarray, shape (k, D), dtype of ``x``
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if labels.size else 0
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    means = np.empty((k, x.shape[1]), dtype=x.dtype)
    for y in range(k):
        means[y] = x[order[bounds[y]:bounds[y + 1]]].mean(axis=0)
    return means


def condensed_distances(x: np.ndarray, metric: str) -> np.ndarray:
    """All pairwise distances of ``x`` (float64), condensed like ``scipy.spatial.distance.pdist``.

    Cosine, correlation and (squared) euclidean distances come from one float64
    matrix product (they agree with ``pdist`` to about 1e-15); other metrics call ``pdist``.
    """
    n = len(x)
    if metric not in ("cosine", "correlation", "euclidean", "sqeuclidean"):
        from scipy.spatial.distance import pdist

        return pdist(np.asarray(x), metric=metric)
    a = np.asarray(x, np.float64)
    if metric in ("cosine", "correlation"):
        if metric == "correlation":
            a = a - a.mean(axis=1, keepdims=True)
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
    sq = np.einsum("ij,ij->i", a, a)
    out = np.empty(n * (n - 1) // 2, np.float64)
    block = max(1, (8 << 20) // max(n, 1))
    pos = 0
    for s in range(0, n, block):
        e = min(n, s + block)
        d = a[s:e] @ a[s:].T
        if metric in ("cosine", "correlation"):
            np.subtract(1.0, d, out=d)
            np.clip(d, 0.0, 2.0, out=d)
        else:
            d *= -2.0
            d += sq[s:e, None]
            d += sq[None, s:]
            np.maximum(d, 0.0, out=d)
            if metric == "euclidean":
                np.sqrt(d, out=d)
        for r in range(e - s):
            row = d[r, r + 1:]
            out[pos:pos + len(row)] = row
            pos += len(row)
    return out


def _cut(x: np.ndarray, threshold: float, metric: str, linkage: str) -> np.ndarray:
    """SciPy linkage of all of ``x`` cut at ``threshold``: labels 0..k-1 (fcluster order)."""
    if len(x) == 1:
        return np.zeros(1, np.int64)
    if linkage in ("centroid", "median", "ward"):
        # SciPy requires observation vectors (euclidean) for these methods.
        z = sch.linkage(np.asarray(x, np.float64), method=linkage, metric=metric)
    else:
        z = sch.linkage(condensed_distances(x, metric), method=linkage)
    return sch.fcluster(z, t=threshold, criterion="distance").astype(np.int64) - 1


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected component of each of ``n`` nodes given undirected edges ``(i, j)``.

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    if len(i) == 0:
        return np.arange(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n)).tocsr()
    _, comp = connected_components(graph, directed=False)
    return comp.astype(np.int64)


def cluster_components(x: np.ndarray, comp: np.ndarray, threshold: float, *, metric: str, linkage: str,
                       max_size: int | None = None, executor=None, links: Links | None = None) -> np.ndarray:
    """Run the linkage inside each component and cut at ``threshold``.

    Parameters
    ----------
    x : ndarray, shape (n, D)
        Raw embeddings.
    comp : ndarray of int, shape (n,)
        Component of each row (any integer ids).
    threshold : float
    metric, linkage : str
    max_size : int, optional
        Components larger than this are cut into consecutive pieces of at most
        ``max_size`` rows (in row order), each clustered alone, as the seed does
        with batches; the callers' mean levels join the pieces again. None: no limit.
    executor : streamface.ops.ray_pool.Executor, optional
        Runs the linkages of groups of components (e.g. as Ray tasks); the
        labels do not depend on it. Default: one after the other, here.
    links : Links, optional
        Cannot-link and must-link pairs of rows (:mod:`streamface.identify.clustering.constraints`).
        Must-linked rows join one component; a piece holding a constraint is cut by
        :func:`~streamface.identify.clustering.constraints.constrained_cut` here (not on the
        executor), the others by SciPy's linkage as without links.

    Returns
    -------
    ndarray of int64, shape (n,)
        Labels ``0..k-1`` by first appearance.
    """
    n = len(x)
    comp = np.asarray(comp, np.int64)
    _, comp = np.unique(comp, return_inverse=True)
    if links is not None and len(links.must_i):
        comp = components(int(comp.max()) + 1, comp[links.must_i], comp[links.must_j])[comp]
        _, comp = np.unique(comp, return_inverse=True)
    order = np.argsort(comp, kind="stable")
    sizes = np.bincount(comp)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    labels = np.empty(n, np.int64)
    next_label = 0

    # Singletons and pairs need no linkage: a pair is one cluster iff its distance <= t.
    ones = np.flatnonzero(sizes == 1)
    labels[order[starts[ones]]] = np.arange(len(ones)) + next_label
    next_label += len(ones)
    twos = np.flatnonzero(sizes == 2)
    if len(twos):
        a, b = order[starts[twos]], order[starts[twos] + 1]
        joined = pair_distances(x, a, b, metric) <= threshold
        if links is not None and not links.empty:
            joined = (joined | links.must(a, b)) & ~links.cannot(a, b)
        labels[a] = np.arange(len(twos)) * 2 + next_label
        labels[b] = np.where(joined, labels[a], labels[a] + 1)
        next_label += 2 * len(twos)

    pieces = []
    for c in np.flatnonzero(sizes >= 3):
        rows = order[starts[c]:starts[c + 1]]
        step = len(rows) if max_size is None else max(int(max_size), 1)
        pieces += [rows[s:s + step] for s in range(0, len(rows), step)]
    if links is not None and not links.empty:
        local = links.by_piece(pieces, n)
        for k, piece_links in local.items():
            rows = pieces[k]
            d = squareform(condensed_distances(x[rows], metric))
            labels[rows] = constrained_cut(d, threshold, piece_links, linkage=linkage) + next_label
            next_label = int(labels[rows].max()) + 1
        pieces = [rows for k, rows in enumerate(pieces) if k not in local]
    groups = _balanced_groups(pieces, executor)
    cut = functools.partial(_cut_pieces, threshold=threshold, metric=metric, linkage=linkage)
    results = (executor or LocalExecutor()).map(cut, [[pieces[k] for k in g] for g in groups], shared=x)
    for group, subs in zip(groups, results):
        for k, sub in zip(group, subs):
            labels[pieces[k]] = sub + next_label
            next_label += int(sub.max()) + 1
    return canonical_labels(labels)


def _cut_pieces(x: np.ndarray, pieces: list[np.ndarray], *, threshold: float, metric: str,
                linkage: str) -> list[np.ndarray]:
    return [_cut(x[rows], threshold, metric, linkage) for rows in pieces]


def _balanced_groups(pieces: list[np.ndarray], executor) -> list[list[int]]:
    """Piece indices in groups of about equal linkage cost (~ size squared), in order.

    Without an executor (or with few pieces) everything is one group; with one,
    a few groups per CPU so a slow piece does not hold the others up.
    """
    if executor is None or len(pieces) < 2:
        return [list(range(len(pieces)))] if pieces else []
    cost = np.array([len(p) ** 2 for p in pieces], np.float64)
    n_groups = min(len(pieces), 4 * max(1, getattr(executor, "cpus", 1)))
    edges = np.searchsorted(np.cumsum(cost), np.arange(1, n_groups) * cost.sum() / n_groups)
    bounds = np.unique(np.concatenate([[0], edges, [len(pieces)]]))
    return [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def threshold_hac(x: np.ndarray, threshold: float, *, metric: str = "cosine", linkage: str = "complete",
                  block_rows: int | None = None, executor=None, links: Links | None = None) -> np.ndarray:
    """Flat clusters of agglomerative clustering cut at ``threshold`` (SciPy ``fcluster(..., "distance")``).

    Same partition as ``fcluster(linkage(x, linkage, metric), threshold, "distance")``;
    see the module docstring for how it avoids the n x n matrix.

    Parameters
    ----------
    x : ndarray, shape (n, D)
    threshold : float
        Clusters whose linkage distance is ``<= threshold`` are merged.
    metric : str, default "cosine"
    linkage : str, default "complete"
        One of :data:`LINKAGES`.
    block_rows : int, optional
        Rows per block of the neighbour search (default: about 64 MiB of distances).
    executor : streamface.ops.ray_pool.Executor, optional
        Runs the linkages of the components (see :func:`cluster_components`).
    links : Links, optional
        Cannot-link and must-link pairs of rows (see :func:`cluster_components`); only
        with the linkages of :data:`GRAPH_LINKAGES`.

    Returns
    -------
    ndarray of int64, shape (n,)
        Labels ``0..k-1`` by first appearance.
    """
    n = len(x)
    if n <= 1:
        return np.zeros(n, np.int64)
    if links is not None and links.empty:
        links = None
    if linkage not in GRAPH_LINKAGES:
        if links is not None:
            raise ValueError(f"linkage: {linkage!r} cannot keep cannot-link or must-link constraints; "
                             f"use one of {GRAPH_LINKAGES}")
        return canonical_labels(_cut(x, threshold, metric, linkage))
    if linkage == "single" and links is None:
        # Single linkage at t is exactly the components of the "<= t" graph.
        return canonical_labels(radius_components(x, threshold, metric, exact=True, block_rows=block_rows))
    comp = radius_components(x, threshold, metric, block_rows=block_rows)
    return cluster_components(x, comp, threshold, metric=metric, linkage=linkage, executor=executor, links=links)


def batched_hac(x: np.ndarray, threshold: float, *, metric: str = "cosine", linkage: str = "complete",
                batch_size: int = 20000, mean_levels: int = 2, executor=None,
                links: Links | None = None) -> np.ndarray:
    """The seed's batched two-level agglomerative clustering (docs/stages.md §5).

    Parameters
    ----------
    x : ndarray, shape (n, D)
    threshold : float
        The seed's ``matching_threshold``.
    metric, linkage : str
    batch_size : int, default 20000
        The seed's ``matching_batchsize``: consecutive rows clustered together.
    mean_levels : int, default 2
        Times the cluster means are clustered again (the seed: 2).
    executor : streamface.ops.ray_pool.Executor, optional
        Runs the batches (and the mean levels' components), e.g. as Ray tasks;
        the labels do not depend on it. Default: one after the other, here.
    links : Links, optional
        Cannot-link and must-link pairs of rows, kept inside each batch and, mapped to
        the clusters, at every mean level (so no cluster ever holds a cannot-link pair).
        None: the seed's clustering exactly.

    Returns
    -------
    ndarray of int64, shape (n,)
        Labels ``0..k-1`` by first appearance.
    """
    n = len(x)
    labels = np.empty(n, np.int64)
    offset = 0
    batch = functools.partial(_batch_labels, threshold=threshold, metric=metric, linkage=linkage)
    starts = list(range(0, n, batch_size))
    bounds = [(s, min(n, s + batch_size)) for s in starts]
    local = {} if links is None else links.by_piece([np.arange(a, b) for a, b in bounds], n)
    parts = (executor or LocalExecutor()).map(batch, [(a, b, local.get(k)) for k, (a, b) in enumerate(bounds)],
                                              shared=x)
    for s, part in zip(starts, parts):
        labels[s:s + batch_size] = part + offset
        offset += int(part.max()) + 1
    labels = canonical_labels(labels)
    for _ in range(mean_levels):
        if n == 0:
            break
        means = cluster_means(x, labels)
        between = None if links is None else links.between(labels)
        labels = canonical_labels(threshold_hac(means, threshold, metric=metric, linkage=linkage,
                                                executor=executor, links=between)[labels])
    return labels


def _batch_labels(x: np.ndarray, bounds: tuple, *, threshold: float, metric: str, linkage: str) -> np.ndarray:
    return threshold_hac(x[bounds[0]:bounds[1]], threshold, metric=metric, linkage=linkage,
                         links=bounds[2] if len(bounds) > 2 else None)
