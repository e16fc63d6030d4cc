"""The clustering sweep: a recognizer's clustering thresholds from labelled sets.

Clustering (``calibrate_clustering``): each labelled set's faces are embedded with the
recognizer and clustered as the face clustering stage does by default (``batched_hac``
with average linkage, and no cluster holding two faces of one frame where the set knows
its frames) at every cut of a grid (default cosine distance 0.3..0.7, step 0.025),
scored with BCubed and pairwise F against the identities. The chosen values
(:func:`choose`, the rule the registry's shipped SFace values come from):

- ``matching_threshold``: the cut maximising the *worst* set's BCubed F (a default must
  hold on every kind of data, not on average), and where neighbouring cuts score as well
  (within :data:`PLATEAU_TOLERANCE`), the middle of that plateau rather than its edge
  (an edge is where the next data set falls off; even plateaus: the lower middle);
- ``merging_threshold``: matching + 0.1 (joins only track-matched clusters, on their mean
  member distance, so it may be looser than the cut);
- cluster matching ``min_threshold`` = matching + 0.05, ``max_threshold`` = matching + 0.15
  (suggestions for review just beyond the cut, as the seed's 0.35/0.5 around its 0.3).

The sets are :class:`~streamface.evaluate.calibration.sets.LabelledSet` (see
:mod:`streamface.evaluate.calibration.sets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streamface.evaluate.metrics import evaluate_labels

__all__ = ["DEFAULT_CUTS", "PLATEAU_TOLERANCE", "SWEEP_COLUMNS", "SWEEP_LINKAGE", "ClusteringCalibration",
           "calibrate_clustering", "choose", "cut_grid", "plateau", "sweep"]

#: The default grid of linkage cuts: cosine distance 0.3..0.7, step 0.025 (what the shipped values used).
DEFAULT_CUTS = (0.3, 0.7, 0.025)

#: Cuts whose worst-set BCubed F is within this of the best form the plateau :func:`choose` takes the middle of.
PLATEAU_TOLERANCE = 0.001

#: The linkage the sweep clusters with: the face clustering stage's default.
SWEEP_LINKAGE = "average"

#: Columns of a sweep: BCubed precision, recall, F, then pairwise precision, recall, F.
SWEEP_COLUMNS = ("bcubed_precision", "bcubed_recall", "bcubed_f", "pairwise_precision", "pairwise_recall",
                 "pairwise_f")


def cut_grid(start: float = DEFAULT_CUTS[0], stop: float = DEFAULT_CUTS[1],
             step: float = DEFAULT_CUTS[2]) -> np.ndarray:
    """Linkage cuts ``start, start + step, ..., stop`` (inclusive), rounded to 1e-4.

    Raises
    ------
    ValueError
        ``start`` < 0, ``stop`` < ``start`` or ``step`` <= 0.
    """
    if not (math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)):
        raise ValueError(f"cut grid: expected finite numbers, got {start}..{stop} step {step}")
    if start < 0 or stop < start or step <= 0:
        raise ValueError(f"cut grid: expected 0 <= start <= stop and step > 0, got {start}..{stop} step {step}")
    return np.round(np.arange(start, stop + step * 1e-6, step), 4)


def sweep(x: np.ndarray, y: np.ndarray, cuts, *, frames: np.ndarray | None = None,
          linkage: str = SWEEP_LINKAGE) -> np.ndarray:
    """Scores of the stage's clustering (``batched_hac``, ``linkage``) at each cut.

    Parameters
    ----------
    x : ndarray, shape (n, D)
    y : ndarray of int, shape (n,)
    cuts : array-like of float
    frames : ndarray of int, shape (n,), optional
        Frame of each face: faces of one frame never share a cluster (as in the stage).
    linkage : str, default :data:`SWEEP_LINKAGE`

    Returns
    -------
    ndarray of float64, shape (len(cuts), 6)
        Columns :data:`SWEEP_COLUMNS` (BCubed P, R, F; pairwise P, R, F).
    """
    from streamface.identify.clustering import Links, batched_hac, order_by_size  # lazy: loads SciPy (~0.3 s)

    links = None if frames is None else Links.of_faces(frames)
    out = []
    for t in np.asarray(cuts, float):
        scores = evaluate_labels(y, order_by_size(batched_hac(x, float(t), linkage=linkage, links=links)))
        out.append(tuple(scores.bcubed) + tuple(scores.pairwise))
    return np.array(out, np.float64).reshape(len(out), len(SWEEP_COLUMNS))


def plateau(worst_f: np.ndarray, tolerance: float = PLATEAU_TOLERANCE) -> tuple[int, int]:
    """The widest run of consecutive cuts scoring within ``tolerance`` of the best: ``(first, last)`` indices.

    Runs of equal width: the one of smaller cuts (precision first).
    """
    f = np.asarray(worst_f, float)
    top = f >= f.max() - tolerance
    best, first = (0, -1), None
    for i, on in enumerate(np.r_[top, False].tolist()):
        if on and first is None:
            first = i
        elif not on and first is not None:
            if i - 1 - first > best[1] - best[0]:
                best = (first, i - 1)
            first = None
    return best


def choose(worst_f: np.ndarray, cuts) -> dict[str, float]:
    """The chosen thresholds from the worst set's BCubed F at each cut (rule of the module docstring):
    the middle (lower middle) of the :func:`plateau` of the best cuts."""
    first, last = plateau(worst_f)
    t = float(np.asarray(cuts, float)[(first + last) // 2])
    return {"matching_threshold": round(t, 4), "merging_threshold": round(t + 0.1, 4),
            "min_threshold": round(t + 0.05, 4), "max_threshold": round(t + 0.15, 4)}


@dataclass
class ClusteringCalibration:
    """A recognizer's clustering sweep over labelled sets and the chosen thresholds.

    ``scores[name]``: shape (len(cuts), 6), columns :data:`SWEEP_COLUMNS`; ``mean_f`` /
    ``mean_pairwise_f``: shape (len(cuts),), means over the sets; ``worst_f``: the
    lowest set's BCubed F at each cut (what :func:`choose` maximises).
    """

    model: str
    metric: str
    cuts: np.ndarray
    sizes: dict[str, tuple[int, int]]  # name -> (faces, identities)
    scores: dict[str, np.ndarray]
    mean_f: np.ndarray
    mean_pairwise_f: np.ndarray
    chosen: dict[str, float]
    worst_f: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.worst_f is None:
            self.worst_f = np.min([v[:, 2] for v in self.scores.values()], axis=0)

    @property
    def best(self) -> int:
        return int(np.flatnonzero(self.cuts == self.chosen["matching_threshold"])[0])

    def source(self) -> str:
        """One line on where the values came from (stored with ``--write``)."""
        sets = ", ".join(f"{k} ({n} faces)" for k, (n, _) in self.sizes.items())
        first, last = plateau(self.worst_f)
        return (f"streamface calibrate: {SWEEP_LINKAGE}-linkage cut maximising the worst set's BCubed F "
                f"({self.worst_f[self.best]:.3f} at {self.chosen['matching_threshold']:g}, the middle of "
                f"{self.cuts[first]:g}..{self.cuts[last]:g}) on {sets}")

    def table(self) -> str:
        """The sweep as text: one row per cut, BCubed P/R/F per set, the worst set's and mean BCubed F,
        mean pairwise F."""
        width = max(20, *(len(n) + 8 for n in self.scores))
        lines = ["cut     " + "  ".join(f"{n + ' P/R/F':>{width}}" for n in self.scores)
                 + "  worst F  mean F  pair F"]
        for i, t in enumerate(self.cuts):
            cells = "  ".join(f"{s[i, 0]:.3f}/{s[i, 1]:.3f}/{s[i, 2]:.3f}".rjust(width) for s in self.scores.values())
            mark = "  <-" if i == self.best else ""
            lines.append(f"{t:<6.4g}  {cells}  {self.worst_f[i]:.4f}   {self.mean_f[i]:.4f}  "
                         f"{self.mean_pairwise_f[i]:.4f}{mark}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"model": self.model, "metric": self.metric, "cuts": self.cuts.tolist(), "columns": list(SWEEP_COLUMNS),
                "sets": {k: {"faces": n, "identities": m} for k, (n, m) in self.sizes.items()},
                "scores": {k: v.tolist() for k, v in self.scores.items()}, "mean_bcubed_f": self.mean_f.tolist(),
                "worst_bcubed_f": self.worst_f.tolist(), "linkage": SWEEP_LINKAGE,
                "mean_pairwise_f": self.mean_pairwise_f.tolist(), "chosen": self.chosen, "source": self.source()}


def calibrate_clustering(sets, model: str, cuts=None, *, metric: str = "cosine") -> ClusteringCalibration:
    """Sweep the linkage cut over labelled ``sets`` and choose the thresholds (see the module docstring).

    Parameters
    ----------
    sets : sequence of LabelledSet
        Each with at least two identities; names must differ.
    model : str
        The recognizer that made the embeddings (recorded in the result).
    cuts : array-like of float, default ``cut_grid()`` (0.3..0.7, step 0.025)
    metric : str, default "cosine"
        The distance the cuts are in (``batched_hac`` uses cosine).

    Returns
    -------
    ClusteringCalibration

    Raises
    ------
    ValueError
        No set, duplicate names, a set with fewer than two identities, or an empty grid.
    """
    cuts = cut_grid() if cuts is None else np.asarray(cuts, float).reshape(-1)
    if not len(sets):
        raise ValueError("calibration needs at least one labelled set")
    if not len(cuts):
        raise ValueError("calibration needs at least one cut")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"labelled sets need distinct names, got {names}")
    for s in sets:
        if s.identities < 2:
            raise ValueError(f"{s.name}: calibration needs at least two identities, found {s.identities}")
    scores = {s.name: sweep(s.embeddings, s.labels, cuts, frames=s.frames) for s in sets}
    mean_f = np.mean([v[:, 2] for v in scores.values()], axis=0)
    mean_pairwise = np.mean([v[:, 5] for v in scores.values()], axis=0)
    worst_f = np.min([v[:, 2] for v in scores.values()], axis=0)
    return ClusteringCalibration(model, metric, cuts, {s.name: (len(s.labels), s.identities) for s in sets},
                                 scores, mean_f, mean_pairwise, choose(worst_f, cuts), worst_f)
