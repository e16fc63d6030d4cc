"""What a video knows about its faces: two faces of one frame are two people, a track is one.

**Cannot-link.** A frame shows each person once, so no identity may hold two
faces of the same frame. Face ids encode their frame
(``<stream>_frame_<time>_face_<n>``), so :func:`frame_keys` finds the frame of
every face, whatever the features came from; an id that does not follow the
pattern (a photo set) is a frame of its own and constrains nothing.
:func:`cannot_link_pairs` lists the face pairs that share a frame.

**Must-link.** Faces joined by a track match are one person: the constrained
linkage joins them before anything else, except where a join would put two faces
of one frame together (a wrong match never breaks the cannot-link rule).

**Constrained linkage.** :func:`constrained_cut` is agglomerative clustering
(complete, average, single or weighted linkage) cut at a distance, in which two
clusters holding a cannot-link pair never merge. Clusters are joined closest
first, as in SciPy's linkage; a forbidden pair is simply never the closest.
The result equals the unconstrained cut wherever no constraint applies, so the
callers run it only on the components of the ``<= t`` graph that hold a
cannot-link pair (clusters never span components; see
:mod:`streamface.identify.clustering.hac`) and keep SciPy's linkage elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamface.identify.annotations import face_stem

__all__ = ["Links", "cannot_link_pairs", "constrained_cut", "frame_keys", "has_conflict", "join_unless_forbidden",
           "pairs_between"]


def frame_keys(names) -> np.ndarray:
    """The frame of each face id, as integers: faces of one frame share a key.

    Parameters
    ----------
    names : sequence of str, shape (n,)
        Face ids ``<stream>_frame_<time>_face_<i>`` (an image suffix is dropped). An id
        without ``_face_<digits>`` at its end is a frame of its own.

    Returns
    -------
    ndarray of int64, shape (n,)
        ``0..f-1`` by first appearance.
    """
    index: dict = {}
    keys = []
    for k, name in enumerate(names):
        frame, sep, face = face_stem(str(name)).rpartition("_face_")
        # An id that names no frame gets a key of its own (a tuple never equals a str).
        keys.append(index.setdefault(frame if sep and frame and face.isdigit() else (k,), len(index)))
    return np.asarray(keys, np.int64).reshape(len(keys))


def cannot_link_pairs(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of rows that share a frame key.

    Parameters
    ----------
    frames : ndarray of int, shape (n,)
        Frame key of each face (:func:`frame_keys`).

    Returns
    -------
    i, j : ndarray of int64, shape (m,)
        ``i < j``; ``m`` is the sum over frames of ``k (k - 1) / 2`` for ``k`` faces.
    """
    frames = np.asarray(frames, np.int64)
    order = np.argsort(frames, kind="stable")
    f = frames[order]
    starts = np.flatnonzero(np.r_[True, f[1:] != f[:-1]])
    sizes = np.diff(np.r_[starts, len(f)])
    out_i, out_j = [], []
    for size in np.unique(sizes[sizes > 1]).tolist():
        # Frames with the same number of faces, all at once.
        rows = order[starts[sizes == size][:, None] + np.arange(size)]
        a, b = np.triu_indices(size, 1)
        out_i.append(rows[:, a].ravel())
        out_j.append(rows[:, b].ravel())
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    i, j = np.concatenate(out_i), np.concatenate(out_j)
    return np.minimum(i, j), np.maximum(i, j)


def pairs_between(labels: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs ``(i, j)`` mapped to the pairs of their clusters, deduplicated, ``a < b``.

    A pair inside one cluster is dropped (it has nothing left to forbid).
    """
    labels = np.asarray(labels, np.int64)
    a, b = labels[np.asarray(i, np.int64)], labels[np.asarray(j, np.int64)]
    keep = a != b
    if not keep.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pair = np.unique(np.stack([np.minimum(a, b)[keep], np.maximum(a, b)[keep]], axis=1), axis=0)
    return pair[:, 0], pair[:, 1]


def has_conflict(labels: np.ndarray, frames: np.ndarray) -> bool:
    """Whether some cluster of ``labels`` holds two faces of one frame."""
    labels = np.asarray(labels, np.int64)
    frames = np.asarray(frames, np.int64)
    if len(labels) < 2:
        return False
    key = np.unique(np.stack([labels, frames], axis=1), axis=0)
    return len(key) < len(labels)


def _pair_keys(i: np.ndarray, j: np.ndarray, span: int) -> np.ndarray:
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    return np.minimum(i, j) * span + np.maximum(i, j)


def join_unless_forbidden(n: int, i: np.ndarray, j: np.ndarray, cannot_i: np.ndarray,
                          cannot_j: np.ndarray) -> np.ndarray:
    """Groups of ``n`` items joined along ``(i, j)`` in order, skipping a join that would hold a cannot-link pair.

    Returns
    -------
    ndarray of int64, shape (n,)
        Group of each item, ``0..g-1`` by first appearance.
    """
    owner = np.arange(n)
    forbidden: dict[int, set] = {}
    for a, b in zip(np.asarray(cannot_i).tolist(), np.asarray(cannot_j).tolist()):
        forbidden.setdefault(a, set()).add(b)
        forbidden.setdefault(b, set()).add(a)
    members = {a: {a} for a in range(n)}
    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
        ra, rb = int(owner[a]), int(owner[b])
        if ra == rb or forbidden.get(ra, set()) & members[rb]:
            continue
        ra, rb = min(ra, rb), max(ra, rb)
        for item in members[rb]:
            owner[item] = ra
        members[ra] |= members.pop(rb)
        forbidden[ra] = forbidden.get(ra, set()) | forbidden.pop(rb, set())
    _, first, inverse = np.unique(owner, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


@dataclass
class Links:
    """Cannot-link and must-link pairs of rows.

    Parameters
    ----------
    cannot_i, cannot_j : ndarray of int64, shape (c,)
        Rows that must end in different clusters.
    must_i, must_j : ndarray of int64, shape (m,)
        Rows that should end in one cluster (joined first, unless a cannot-link forbids it).
    """

    cannot_i: np.ndarray
    cannot_j: np.ndarray
    must_i: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    must_j: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @classmethod
    def of_faces(cls, frames: np.ndarray, match_i=(), match_j=()) -> Links:
        """Cannot-links between faces of one frame (:func:`frame_keys`), must-links along track matches."""
        i, j = cannot_link_pairs(frames)
        return cls(i, j, np.asarray(match_i, np.int64), np.asarray(match_j, np.int64))

    @property
    def empty(self) -> bool:
        return not len(self.cannot_i) and not len(self.must_i)

    def _has(self, i, j, a, b) -> np.ndarray:
        if not len(i) or not len(a):
            return np.zeros(len(a), bool)
        span = int(max(np.max(i), np.max(j), np.max(a), np.max(b))) + 1
        return np.isin(_pair_keys(a, b, span), _pair_keys(i, j, span))

    def cannot(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether each pair ``(a[k], b[k])`` is a cannot-link pair; bool, shape (len(a),)."""
        return self._has(self.cannot_i, self.cannot_j, a, b)

    def must(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether each pair ``(a[k], b[k])`` is a must-link pair; bool, shape (len(a),)."""
        return self._has(self.must_i, self.must_j, a, b)

    def between(self, labels: np.ndarray) -> Links:
        """The links between the clusters of ``labels`` (pairs inside one cluster dropped)."""
        return Links(*pairs_between(labels, self.cannot_i, self.cannot_j),
                     *pairs_between(labels, self.must_i, self.must_j))

    def by_piece(self, pieces: list[np.ndarray], n: int) -> dict[int, Links]:
        """The links inside each piece (rows of ``n``), in its local row numbers; pieces without links left out."""
        piece = np.full(n, -1, np.int64)
        local = np.zeros(n, np.int64)
        for k, rows in enumerate(pieces):
            piece[rows] = k
            local[rows] = np.arange(len(rows))
        out: dict[int, list] = {}
        for kind, (i, j) in enumerate(((self.cannot_i, self.cannot_j), (self.must_i, self.must_j))):
            keep = (piece[i] >= 0) & (piece[i] == piece[j])
            for k in np.unique(piece[i[keep]]).tolist():
                sel = keep & (piece[i] == k)
                out.setdefault(k, [np.empty(0, np.int64)] * 4)
                out[k][2 * kind], out[k][2 * kind + 1] = local[i[sel]], local[j[sel]]
        return {k: Links(*v) for k, v in out.items()}


def constrained_cut(d: np.ndarray, threshold: float, links: Links, *, linkage: str = "complete") -> np.ndarray:
    """Agglomerative clustering of ``m`` items cut at ``threshold``, never joining a cannot-link pair.

    Must-linked items are joined first (in the order given; a join a cannot-link forbids is
    skipped). Then the closest pair of clusters holding no cannot-link pair merges while its
    linkage distance is ``<= threshold``; distances to a merged cluster follow the
    Lance-Williams update of ``linkage``, which is exact whatever the order of the merges.
    Each row keeps its nearest allowed column, so a merge costs O(m) (plus O(m) for each
    row whose nearest cluster was one of the two merged).

    Parameters
    ----------
    d : ndarray of float64, shape (m, m)
        Symmetric distances (not modified).
    threshold : float
    links : Links
        Local row numbers ``0..m-1``.
    linkage : {"complete", "average", "single", "weighted"}, default "complete"

    Returns
    -------
    ndarray of int64, shape (m,)
        Labels ``0..k-1`` by first appearance.
    """
    m = len(d)
    if m <= 1:
        return np.zeros(m, np.int64)
    if linkage not in ("complete", "average", "single", "weighted"):
        raise ValueError(f"linkage: constrained clustering supports complete, average, single and weighted, "
                         f"got {linkage!r}")
    d = np.array(d, np.float64)
    forbid = np.zeros((m, m), bool)
    forbid[links.cannot_i, links.cannot_j] = forbid[links.cannot_j, links.cannot_i] = True
    np.fill_diagonal(forbid, True)
    size = np.ones(m)
    alive = np.ones(m, bool)
    owner = np.arange(m)  # the surviving cluster of each item

    def merge(a: int, b: int) -> None:
        if linkage == "complete":
            row = np.maximum(d[a], d[b])
        elif linkage == "single":
            row = np.minimum(d[a], d[b])
        elif linkage == "average":
            row = (size[a] * d[a] + size[b] * d[b]) / (size[a] + size[b])
        else:
            row = (d[a] + d[b]) / 2
        d[a], d[:, a] = row, row
        forbid[a] |= forbid[b]
        forbid[:, a] = forbid[a]
        forbid[b], forbid[:, b] = True, True
        size[a] += size[b]
        alive[b] = False
        owner[owner == b] = a

    for i, j in zip(links.must_i.tolist(), links.must_j.tolist()):
        a, b = sorted((int(owner[i]), int(owner[j])))
        if a != b and not forbid[a, b]:
            merge(a, b)

    eff = np.where(forbid, np.inf, d)
    near = np.argmin(eff, axis=1)
    near_d = eff[np.arange(m), near]
    near_d[~alive] = np.inf
    while True:
        a = int(np.argmin(near_d))
        if not near_d[a] <= threshold:
            break
        a, b = sorted((a, int(near[a])))
        merge(a, b)
        near_d[b] = np.inf
        # Rows whose nearest was a or b look again (their distance to a grew, or a became
        # forbidden); the others keep theirs: a merge never brings a cluster closer.
        for r in np.flatnonzero(alive & ((near == a) | (near == b))).tolist() + [a]:
            eff_r = np.where(forbid[r], np.inf, d[r])
            near[r] = int(np.argmin(eff_r))
            near_d[r] = eff_r[near[r]]
    _, first, inverse = np.unique(owner, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]
