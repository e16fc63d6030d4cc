"""Stage 7: suggest clusters that may be one person, for manual review (docs/stages.md §7).

For the ``topk`` largest clusters, the distance between every two clusters is
measured by ``mode`` (average: means; single: closest members; triplet: closest
of the means and the two most distant members). A pair is kept when its
distance is ``<= max_threshold``; a cluster's pairs are kept only when its
closest one is ``< min_threshold``. As in the seed, each pair is listed once,
under its smaller label, with the matches of a cluster being those with larger
labels. Pairs the reviewer already rejected (``ignore`` in the annotations) are
dropped. Output: ``cluster_evals.json``, ``{"matches": {"x,y": distance}}``
ordered by cluster, then distance (then the other label), distances rounded to
4 decimals.

Differences from the seed, on purpose: the ``topk`` largest clusters are chosen
by size (the seed took labels ``<= topk``, which is ``topk + 1`` clusters when
labels are numbered by size and not the largest after a review renumbered them);
a pair at distance exactly 0 is kept (the seed's ``dst == 0`` rule existed to
drop the matrix's lower triangle, and also dropped identical clusters); triplet
mode lists each pair once (the seed listed it in both orders).

>>> from streamface.identify.cluster_matching import ClusterMatching
>>> model = ClusterMatching(
...     features_path="data/news.zarr::skynews",
...     annotations_path="data/skynews/metadata/annotations.json",
...     evals_path="data/skynews/metadata/cluster_evals.json",
...     metric="cosine", topk=10000, min_threshold=None, max_threshold=None, mode="average",
... )
>>> matches = model.match()                                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from streamface.checks import check_int
from streamface.identify.annotations import read_annotations, write_json
from streamface.identify.clustering.cluster_distances import MODES, cluster_pair_distances
from streamface.identify.clustering.thresholds import resolve_threshold, threshold_warning
from streamface.identify.features import METRICS, labelled_embeddings, load_features, validate_embeddings

__all__ = ["ClusterMatching", "select_matches", "top_clusters"]

log = logging.getLogger(__name__)


def top_clusters(labels: np.ndarray, topk: int) -> np.ndarray:
    """Labels of the ``topk`` largest clusters (``-1`` noise excluded; ties: smaller label first), ascending."""
    clean = labels[labels >= 0]
    if clean.size == 0:
        return np.empty(0, np.int64)
    values, sizes = np.unique(clean, return_counts=True)
    order = np.lexsort((values, -sizes))
    return np.sort(values[order[:topk]]).astype(np.int64)


def select_matches(a: np.ndarray, b: np.ndarray, dist: np.ndarray, *, min_threshold: float,
                   max_threshold: float, ignore=()) -> dict[str, float]:
    """The seed's suggestion rules over cluster pairs ``(a < b, dist)``.

    Parameters
    ----------
    a, b : ndarray of int, shape (m,)
        Cluster pairs, ``a < b``.
    dist : ndarray of float, shape (m,)
    min_threshold, max_threshold : float
        Keep pairs with ``dist <= max_threshold``, and a cluster ``a``'s pairs only
        if its closest is ``< min_threshold``.
    ignore : iterable of str
        Keys ``"x,y"`` to drop.

    Returns
    -------
    dict
        ``{"a,b": round(dist, 4)}`` ordered by ``a``, ``dist``, ``b``.
    """
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    dist = np.asarray(dist, np.float64)
    keep = dist <= max_threshold
    a, b, dist = a[keep], b[keep], dist[keep]
    order = np.lexsort((b, dist, a))
    a, b, dist = a[order], b[order], dist[order]
    if len(a):
        first = np.ones(len(a), bool)
        first[1:] = a[1:] != a[:-1]
        closest = np.maximum.accumulate(np.where(first, np.arange(len(a)), 0))
        good = dist[closest] < min_threshold
        a, b, dist = a[good], b[good], dist[good]
    skip = set(ignore)
    return {key: round(float(d), 4) for key, d in
            ((f"{x},{y}", d) for x, y, d in zip(a.tolist(), b.tolist(), dist.tolist())) if key not in skip}


class ClusterMatching:
    """Suggest cluster pairs to merge (the seed's stage 7); see the module docstring.

    Parameters
    ----------
    features_path : str or path
        ``<store>::<stream>``, a store (with ``stream``), a ``.npz`` or the seed's
        features ``.pkl`` (pickles only from trusted sources).
    annotations_path : path
        ``annotations.json`` (automatic or reviewed); its ``ignore`` list is honoured.
    evals_path : path
        Where ``cluster_evals.json`` is written.
    metric : str, default "cosine"
        One of :data:`streamface.identify.features.METRICS`.
    topk : int, default 10000
        The largest clusters compared.
    min_threshold : float or None, default None
        A cluster's matches are listed only if its closest is below it. None: the
        embedding model's calibrated value (SFace 0.55); the seed's 0.35 for its
        ArcFace+FaceNet, and for a model without calibrated values (with a warning).
    max_threshold : float or None, default None
        Pairs up to this distance are listed. None: the model's value (SFace 0.65;
        the seed's 0.5).
    mode : {"average", "single", "triplet"}, default "average"
    stream : str, optional
        The stream, when ``features_path`` is a store without ``::<stream>``.
    verbose : bool, default True
    model : str, optional
        The embedding model's registry name, for resolving ``None`` thresholds;
        default: the model recorded in the store.
    """

    def __init__(self, features_path, annotations_path, evals_path, metric: str = "cosine", topk: int = 10000,
                 min_threshold: float | None = None, max_threshold: float | None = None, mode: str = "average",
                 *, stream: str | None = None, verbose: bool = True, model: str | None = None) -> None:
        self.features_path = features_path
        self.annotations_path = annotations_path
        self.evals_path = evals_path
        self.metric = metric
        self.topk = topk
        self.min_threshold = min_threshold
        self.max_threshold = max_threshold
        self.mode = mode
        self.stream = stream
        self.verbose = verbose
        self.model = model
        self.warnings: list[str] = []

    def _validate_params(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {self.metric!r}")
        check_int("topk", self.topk)
        if not Path(self.annotations_path).is_file():
            raise FileNotFoundError(f"annotations_path: no such file {str(self.annotations_path)!r}")

    def _say(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    def match(self) -> dict[str, float]:
        """Compute the suggestions and write ``evals_path``.

        Returns
        -------
        dict
            ``{"x,y": distance}``, as written under ``"matches"``.
        """
        self._validate_params()
        self._say("Reading data ...")
        features = load_features(self.features_path, stream=self.stream)
        model = self.model or features.model
        min_t = resolve_threshold("min_threshold", self.min_threshold, model)
        max_t = resolve_threshold("max_threshold", self.max_threshold, model)
        self.thresholds = {"min_threshold": min_t, "max_threshold": max_t}
        note = threshold_warning(model, self.min_threshold, self.max_threshold, metric=self.metric)
        self.warnings = [note] if note else []
        for note in self.warnings:
            log.warning(note)
            self._say(f"Warning: {note}")
        annotations = read_annotations(self.annotations_path)
        x, labels, names = labelled_embeddings(features, annotations)
        validate_embeddings(x, self.metric, names)
        clusters = top_clusters(labels, int(self.topk))
        self._say(f"Analyzing {len(clusters)} clusters ({self.mode}) ...")
        if len(clusters) >= 2:
            a, b, d = cluster_pair_distances(x, labels, clusters, mode=self.mode, metric=self.metric,
                                             max_distance=max_t)
        else:
            a = b = np.empty(0, np.int64)
            d = np.empty(0)
        matches = select_matches(a, b, d, min_threshold=min_t, max_threshold=max_t, ignore=annotations.ignore)
        self._say(f"Writing {len(matches)} suggested pairs to {self.evals_path} ...")
        write_json(Path(os.fspath(self.evals_path)), {"matches": matches})
        return matches
