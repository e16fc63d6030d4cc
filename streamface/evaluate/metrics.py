"""Clustering quality against reference labels, in NumPy (O(n log n), no n x n matrix).

All scores come from the contingency table of the two labelings (its non-zero
cells only), so they run on millions of faces. Definitions follow the seed's
``annotation_evaluation.py`` (which took pairwise and BCubed from
learn-to-cluster and the rest from scikit-learn):

- pairwise (Fowlkes-Mallows style): over pairs of faces, precision = pairs in the
  same predicted cluster that share the true label; recall = pairs sharing the
  true label that are in the same predicted cluster.
- BCubed: per face, precision = share of its predicted cluster with its true
  label, recall = share of its true class in its predicted cluster; averaged.
- purity: faces in the majority true class of their predicted cluster.
- adjusted Rand index and NMI (arithmetic normalisation): scikit-learn's formulas
  and limit cases.
- accuracy, weighted precision/recall: label ids compared literally (scikit-learn
  ``precision_score(average="weighted")``); meaningful when predicted ids come from
  the same numbering as the truth, as when a person reviewed the automatic labels.

Label values are arbitrary integers; ``-1`` is just another label here. How the
seed's noise label is treated is chosen by :func:`apply_noise_rule`.

>>> import numpy as np
>>> from streamface.evaluate.metrics import bcubed, pairwise_fscore
>>> t, p = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])
>>> [round(x, 3) for x in bcubed(t, p)]
[1.0, 0.75, 0.857]
>>> [round(x, 3) for x in pairwise_fscore(t, p)]
[1.0, 0.5, 0.667]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Contingency", "LabelScores", "NOISE_RULES", "accuracy", "adjusted_rand", "apply_noise_rule",
    "bcubed", "contingency", "evaluate_labels", "nmi", "pairwise_fscore", "purity",
    "weighted_precision_recall",
]

#: How the noise label ``-1`` of the true labels is counted (see :func:`apply_noise_rule`).
NOISE_RULES = ("label", "singletons", "drop")


@dataclass(frozen=True)
class Contingency:
    """Non-zero cells of the contingency table of two labelings of n items.

    Parameters
    ----------
    cells : ndarray of int64, shape (c,)
        Items per (true class, predicted cluster) cell that is not empty.
    cell_true, cell_pred : ndarray of int64, shape (c,)
        Class and cluster index of each cell (into ``true_sizes`` / ``pred_sizes``).
    true_sizes : ndarray of int64, shape (k_true,)
    pred_sizes : ndarray of int64, shape (k_pred,)
    n : int
    """

    cells: np.ndarray
    cell_true: np.ndarray
    cell_pred: np.ndarray
    true_sizes: np.ndarray
    pred_sizes: np.ndarray
    n: int


def _check_pair(labels_true, labels_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(labels_true).reshape(-1)
    p = np.asarray(labels_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"labels_true and labels_pred differ in length: {t.size} != {p.size}")
    return t, p


def contingency(labels_true, labels_pred) -> Contingency:
    """The non-zero contingency cells of two labelings (integer or string labels).

    Parameters
    ----------
    labels_true, labels_pred : array-like, shape (n,)

    Returns
    -------
    Contingency
    """
    t, p = _check_pair(labels_true, labels_pred)
    _, ti, true_sizes = np.unique(t, return_inverse=True, return_counts=True)
    _, pi, pred_sizes = np.unique(p, return_inverse=True, return_counts=True)
    codes = ti.astype(np.int64) * max(len(pred_sizes), 1) + pi.astype(np.int64)
    cell_codes, cells = np.unique(codes, return_counts=True)
    k_pred = max(len(pred_sizes), 1)
    return Contingency(cells.astype(np.int64), cell_codes // k_pred, cell_codes % k_pred,
                       true_sizes.astype(np.int64), pred_sizes.astype(np.int64), int(t.size))


def _fscore(precision: float, recall: float) -> float:
    return 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def pairwise_fscore(labels_true, labels_pred) -> tuple[float, float, float]:
    """Pairwise precision, recall and F-score (the seed's ``pairwise_score``).

    Returns
    -------
    (precision, recall, fscore) : tuple of float
        Precision is 1.0 when no two faces share a predicted cluster (no false
        pair can be predicted), recall 1.0 when no two share a true label.
    """
    c = contingency(labels_true, labels_pred)
    n = c.n
    tk = float(np.dot(c.cells, c.cells)) - n
    pk = float(np.dot(c.pred_sizes, c.pred_sizes)) - n
    qk = float(np.dot(c.true_sizes, c.true_sizes)) - n
    precision = tk / pk if pk > 0 else 1.0
    recall = tk / qk if qk > 0 else 1.0
    return precision, recall, _fscore(precision, recall)


def bcubed(labels_true, labels_pred) -> tuple[float, float, float]:
    """BCubed precision, recall and F-score (the seed's ``bcubed_score``).

    Returns
    -------
    (precision, recall, fscore) : tuple of float
    """
    c = contingency(labels_true, labels_pred)
    if c.n == 0:
        return 1.0, 1.0, 1.0
    sq = c.cells.astype(np.float64) ** 2
    precision = float(np.sum(sq / c.pred_sizes[c.cell_pred])) / c.n
    recall = float(np.sum(sq / c.true_sizes[c.cell_true])) / c.n
    return precision, recall, _fscore(precision, recall)


def purity(labels_true, labels_pred) -> float:
    """Share of faces that belong to the majority true class of their predicted cluster."""
    c = contingency(labels_true, labels_pred)
    if c.n == 0:
        return 1.0
    best = np.zeros(len(c.pred_sizes), np.int64)
    np.maximum.at(best, c.cell_pred, c.cells)
    return float(best.sum()) / c.n


def adjusted_rand(labels_true, labels_pred) -> float:
    """Adjusted Rand index, equal to ``sklearn.metrics.adjusted_rand_score``."""
    c = contingency(labels_true, labels_pred)
    n = c.n
    sum_sq = int(np.dot(c.cells, c.cells))
    tp = sum_sq - n
    fp = int(np.dot(c.pred_sizes, c.pred_sizes)) - sum_sq
    fn = int(np.dot(c.true_sizes, c.true_sizes)) - sum_sq
    tn = n * n - fp - fn - sum_sq
    if fn == 0 and fp == 0:
        return 1.0
    # Python ints: the products overflow int64 from about 50k faces.
    return float(2 * (tp * tn - fn * fp)) / float((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def _entropy(sizes: np.ndarray, n: int) -> float:
    pk = sizes[sizes > 0].astype(np.float64) / n
    return float(-np.sum(pk * np.log(pk)))


def nmi(labels_true, labels_pred) -> float:
    """Normalised mutual information (arithmetic mean of the entropies), equal to
    ``sklearn.metrics.normalized_mutual_info_score``."""
    c = contingency(labels_true, labels_pred)
    k_t, k_p = len(c.true_sizes), len(c.pred_sizes)
    if (k_t == k_p == 1) or (k_t == k_p == 0):
        return 1.0
    n = float(c.n)
    cells = c.cells.astype(np.float64)
    outer = c.true_sizes[c.cell_true].astype(np.float64) * c.pred_sizes[c.cell_pred].astype(np.float64)
    mi = float(np.sum(cells / n * (np.log(cells) + np.log(n) - np.log(outer))))
    mi = max(mi, 0.0)
    h_t, h_p = _entropy(c.true_sizes, c.n), _entropy(c.pred_sizes, c.n)
    if mi == 0.0:
        return 0.0
    return mi / max((h_t + h_p) / 2.0, np.finfo(np.float64).eps)


def accuracy(labels_true, labels_pred) -> float:
    """Share of faces whose predicted label id equals the true one (ids compared literally)."""
    t, p = _check_pair(labels_true, labels_pred)
    return float(np.mean(t == p)) if t.size else 1.0


def weighted_precision_recall(labels_true, labels_pred) -> tuple[float, float]:
    """Per-label precision and recall averaged with the true label counts as weights.

    Equal to scikit-learn's ``precision_score`` / ``recall_score`` with
    ``average="weighted", zero_division=0``; label ids are compared literally.
    """
    t, p = _check_pair(labels_true, labels_pred)
    if t.size == 0:
        return 0.0, 0.0
    classes, inv = np.unique(np.concatenate([t, p]), return_inverse=True)
    ti, pi = inv[: t.size], inv[t.size:]
    k = len(classes)
    true_n = np.bincount(ti, minlength=k).astype(np.float64)
    pred_n = np.bincount(pi, minlength=k).astype(np.float64)
    hit = np.bincount(ti[ti == pi], minlength=k).astype(np.float64)
    prec = np.divide(hit, pred_n, out=np.zeros(k), where=pred_n > 0)
    rec = np.divide(hit, true_n, out=np.zeros(k), where=true_n > 0)
    w = true_n / true_n.sum()
    return float(np.dot(w, prec)), float(np.dot(w, rec))


def apply_noise_rule(labels_true, labels_pred, noise: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """Apply a rule for the noise label ``-1`` of the true labels.

    Parameters
    ----------
    labels_true, labels_pred : array-like of int, shape (n,)
    noise : {"label", "singletons", "drop"}, default "label"
        ``"label"``: ``-1`` is one more class (all noise faces together), which is
        what the seed did and what reproduces its reference numbers.
        ``"singletons"``: every noise face is a class of its own.
        ``"drop"``: faces whose true label is ``-1`` are left out.

    Returns
    -------
    (labels_true, labels_pred) : ndarrays of int64, shape (m,)
        m = n, or the faces kept by ``"drop"``.
    """
    if noise not in NOISE_RULES:
        raise ValueError(f"noise: expected one of {NOISE_RULES}, got {noise!r}")
    t, p = _check_pair(labels_true, labels_pred)
    t, p = t.astype(np.int64), p.astype(np.int64)
    is_noise = t == -1
    if noise == "drop":
        return t[~is_noise], p[~is_noise]
    if noise == "singletons" and is_noise.any():
        t = t.copy()
        start = int(t.max(initial=-1)) + 1
        t[is_noise] = np.arange(start, start + int(is_noise.sum()))
    return t, p


@dataclass(frozen=True)
class LabelScores:
    """Every score of :func:`evaluate_labels` (see the module docstring for definitions)."""

    samples: int
    true_clusters: int
    pred_clusters: int
    noise: int
    accuracy: float
    precision: float
    recall: float
    adjusted_rand: float
    nmi: float
    purity: float
    pairwise: tuple[float, float, float]
    bcubed: tuple[float, float, float]

    def to_seed_dict(self) -> dict:
        """The seed's report: keys ``Samples``, ``True Clusters``, ..., ``BCubed`` (P, R, F)."""
        return {
            "Samples": self.samples,
            "True Clusters": self.true_clusters,
            "Pred Clusters": self.pred_clusters,
            "Accuracy": self.accuracy,
            "Precision": self.precision,
            "Recall": self.recall,
            "Adjusted Rand": self.adjusted_rand,
            "NMI": self.nmi,
            "Purity": self.purity,
            "Pairwise": self.pairwise,
            "BCubed": self.bcubed,
        }

    def to_json(self) -> dict:
        """Plain JSON types; ``pairwise`` and ``bcubed`` as ``{"precision", "recall", "fscore"}``."""
        doc = asdict(self)
        for key in ("pairwise", "bcubed"):
            doc[key] = dict(zip(("precision", "recall", "fscore"), (float(v) for v in doc[key])))
        return doc


def evaluate_labels(labels_true, labels_pred, *, noise: str = "label") -> LabelScores:
    """All the seed's annotation scores of ``labels_pred`` against ``labels_true``.

    Parameters
    ----------
    labels_true, labels_pred : array-like of int, shape (n,)
    noise : {"label", "singletons", "drop"}, default "label"
        See :func:`apply_noise_rule`; ``true_clusters`` counts distinct true
        labels after the rule (with ``"label"``, ``-1`` counts as one).

    Returns
    -------
    LabelScores
    """
    t0, _ = _check_pair(labels_true, labels_pred)
    n_noise = int(np.sum(t0 == -1))
    t, p = apply_noise_rule(labels_true, labels_pred, noise)
    prec, rec = weighted_precision_recall(t, p)
    return LabelScores(
        samples=int(t.size),
        true_clusters=int(np.unique(t).size),
        pred_clusters=int(np.unique(p).size),
        noise=n_noise,
        accuracy=accuracy(t, p),
        precision=prec,
        recall=rec,
        adjusted_rand=adjusted_rand(t, p),
        nmi=nmi(t, p),
        purity=purity(t, p),
        pairwise=pairwise_fscore(t, p),
        bcubed=bcubed(t, p),
    )
