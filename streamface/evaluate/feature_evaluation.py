"""Stage 4: how embeddings spread, to choose clustering thresholds (docs/stages.md §4).

On at most ``max_samples`` embeddings (a seeded random sample), every face's
``k`` nearest other faces are found; per face, the minimum, mean and maximum of
those ``k`` distances are collected. For each threshold ``t``, the distances
below (``<= t``) and above it are summarised as well: minimum and mean below,
mean and maximum above (a face with none on a side gets ``t``, as in the seed).

Written to ``output``: ``knn_distances.png`` and ``thresholded_distances.png``
(histograms) and ``feature_evaluation.json`` (the same distributions as numbers:
mean, standard deviation, quantiles and the histogram counts of each curve, plus
per threshold the share of faces with at least one neighbour within it).

The seed took columns ``1..k-1`` of each sorted distance row (``k - 1``
neighbours); here ``k`` means ``k`` neighbours, self excluded, as the seed's
notes describe it.

>>> import numpy as np
>>> from streamface.evaluate.feature_evaluation import FeatureEvaluation
>>> model = FeatureEvaluation(
...     name="skynews",
...     features_path="data/news.zarr::skynews",
...     metric="cosine",
...     max_samples=30000,
...     k=5000,
...     thresholds=list(np.arange(0.1, 0.4, 0.025)),
...     output="data/skynews/metadata",
... )
>>> report = model.evaluate()                                   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamface.identify.annotations import write_json
from streamface.identify.clustering.neighbors import block_distances, prepare, squared_norms
from streamface.identify.features import METRICS, load_features, validate_embeddings
from streamface.evaluate.plots import plot_distance_distributions

__all__ = ["FeatureEvaluation", "SEED_THRESHOLDS", "knn_distance_stats"]

#: The seed README's thresholds, np.arange(0.1, 0.4, 0.025): 0.1, 0.125, ..., 0.4 (float rounding keeps 0.4).
SEED_THRESHOLDS = tuple(round(float(t), 3) for t in np.arange(0.1, 0.4, 0.025))

_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def knn_distance_stats(x: np.ndarray, k: int, metric: str, thresholds=(), *,
                       block_rows: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Per face, statistics of the distances to its ``k`` nearest other faces (of ``x``).

    Parameters
    ----------
    x : ndarray, shape (n, D), n >= 2
    k : int
        Neighbours per face, at most n - 1.
    metric : str
    thresholds : sequence of float
    block_rows : int, optional
        Faces per block (default: about 64 MiB of distances).

    Returns
    -------
    distances : dict of {str: ndarray of float64, shape (n,)}
        ``Minimum``, ``Mean``, ``Maximum``.
    thresholded : dict of {str: dict of {str: ndarray, shape (n,)}}
        Per threshold (key rounded to 3 decimals): ``Minimum-B``, ``Mean-B``,
        ``Mean-A``, ``Maximum-A`` and ``Count-B`` (neighbours within the threshold).
    """
    xp = prepare(x, metric)
    n = len(xp)
    if block_rows is None:
        block_rows = int(np.clip((16 << 20) // n, 16, 4096))
    sq = squared_norms(xp, metric)
    out = {key: np.empty(n) for key in ("Minimum", "Mean", "Maximum")}
    curves = ("Minimum-B", "Mean-B", "Mean-A", "Maximum-A", "Count-B")
    thr = {str(round(float(t), 3)): {key: np.empty(n) for key in curves} for t in thresholds}
    for s in range(0, n, block_rows):
        e = min(n, s + block_rows)
        d = block_distances(xp[s:e], xp, metric, None if sq is None else sq[s:e], sq).astype(np.float64)
        d[np.arange(e - s), np.arange(s, e)] = np.inf
        near = np.partition(d, k - 1, axis=1)[:, :k] if k < n - 1 else np.sort(d, axis=1)[:, :k]
        del d
        out["Minimum"][s:e] = near.min(axis=1)
        out["Mean"][s:e] = near.mean(axis=1)
        out["Maximum"][s:e] = near.max(axis=1)
        for t, key in zip(thresholds, thr):
            below = near <= t
            nb = below.sum(axis=1)
            na = k - nb
            with np.errstate(invalid="ignore", divide="ignore"):
                thr[key]["Minimum-B"][s:e] = np.where(nb > 0, np.where(below, near, np.inf).min(axis=1), t)
                thr[key]["Mean-B"][s:e] = np.where(nb > 0, np.where(below, near, 0).sum(axis=1) / nb, t)
                thr[key]["Mean-A"][s:e] = np.where(na > 0, np.where(below, 0, near).sum(axis=1) / na, t)
                thr[key]["Maximum-A"][s:e] = np.where(na > 0, np.where(below, -np.inf, near).max(axis=1), t)
            thr[key]["Count-B"][s:e] = nb
    return out, thr


def _summary(values: np.ndarray, edges: np.ndarray) -> dict:
    counts, _ = np.histogram(values, edges)
    return {
        "mean": float(values.mean()), "std": float(values.std()),
        "quantiles": {f"{q:g}": float(v) for q, v in zip(_QUANTILES, np.quantile(values, _QUANTILES))},
        "histogram": {"edges": [round(float(v), 6) for v in edges], "counts": counts.astype(int).tolist()},
    }


class FeatureEvaluation:
    """Distributions of nearest-neighbour distances (the seed's stage 4); see the module docstring.

    Parameters
    ----------
    name : str
        Dataset name, used in titles and the JSON.
    features_path : str or path
        ``<store>::<stream>``, a store (with ``stream``), a ``.npz`` or the seed's
        features ``.pkl`` (pickles only from trusted sources).
    metric : str, default "cosine"
    max_samples : int, default 30000
        Faces sampled (all when fewer).
    k : int, default 5000
        Neighbours per face (at most the sample size minus one).
    thresholds : sequence of float, optional
        Default: the seed's 0.1, 0.125, ..., 0.4.
    output : path, default "."
        Folder for the figures and the JSON.
    stream : str, optional
        The stream, when ``features_path`` is a store without ``::<stream>``.
    random_state : int, default 0
        Seeds the sample.
    bins : int, default 50
    dpi : int, default 150
    verbose : bool, default True
    """

    def __init__(self, name, features_path, metric: str = "cosine", max_samples: int = 30000, k: int = 5000,
                 thresholds=None, *, output=".", stream: str | None = None, random_state: int = 0,
                 bins: int = 50, dpi: int = 150, verbose: bool = True) -> None:
        self.name = name
        self.features_path = features_path
        self.metric = metric
        self.max_samples = max_samples
        self.k = k
        self.thresholds = thresholds
        self.output = output
        self.stream = stream
        self.random_state = random_state
        self.bins = bins
        self.dpi = dpi
        self.verbose = verbose

    def _validate_params(self) -> list[float]:
        if self.metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {self.metric!r}")
        for param, low in (("max_samples", 2), ("k", 1), ("bins", 1)):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{param}: expected an integer >= {low}, got {value!r}")
        thresholds = SEED_THRESHOLDS if self.thresholds is None else self.thresholds
        try:
            out = [float(t) for t in thresholds]
        except (TypeError, ValueError):
            raise ValueError(f"thresholds: expected a list of numbers, got {self.thresholds!r}") from None
        if not all(np.isfinite(out)):
            raise ValueError(f"thresholds: expected finite numbers, got {self.thresholds!r}")
        return out

    def evaluate(self) -> dict:
        """Compute the distributions, write the figures and the JSON.

        Returns
        -------
        dict
            The JSON document (``samples``, ``k``, ``distances``, ``thresholds``, ``figures``).
        """
        thresholds = self._validate_params()
        if self.verbose:
            print("Reading data ...", flush=True)
        features = load_features(self.features_path, stream=self.stream)
        x = features.embeddings
        validate_embeddings(x, self.metric, features.names, min_samples=2)
        if len(x) > self.max_samples:
            rng = np.random.default_rng(self.random_state)
            x = x[np.sort(rng.choice(len(x), size=int(self.max_samples), replace=False))]
        k = int(min(self.k, len(x) - 1))
        if self.verbose:
            print(f"Evaluating {len(x)} faces, {k} neighbours each ...", flush=True)
        distances, thresholded = knn_distance_stats(x, k, self.metric, thresholds)

        top = 2.0 if self.metric in ("cosine", "correlation") else float(np.max(distances["Maximum"])) * 1.05 or 1.0
        edges = np.linspace(0.0, top, self.bins + 1)
        t_top = 1.5 if self.metric in ("cosine", "correlation") else top
        t_edges = np.linspace(0.0, t_top, self.bins + 1)
        folder = Path(self.output)
        figures = [plot_distance_distributions(
            {"": distances}, folder / "knn_distances.png", title=f"k-NN distance distribution - {self.name} (k={k})",
            xlabel=f"{self.metric} distance", value_range=(0.0, top), bins=self.bins, dpi=self.dpi)]
        if thresholded:
            figures.append(plot_distance_distributions(
                {key: {c: v for c, v in curves.items() if c != "Count-B"} for key, curves in thresholded.items()},
                folder / "thresholded_distances.png", title=f"Thresholded distance distribution - {self.name}",
                xlabel=f"{self.metric} distance", value_range=(0.0, t_top), bins=self.bins, dpi=self.dpi))
        report = {
            "name": str(self.name), "metric": self.metric, "samples": int(len(x)), "faces": int(len(features)),
            "k": k,
            "distances": {key: _summary(v, edges) for key, v in distances.items()},
            "thresholds": {
                key: {
                    **{c: _summary(v, t_edges) for c, v in curves.items() if c != "Count-B"},
                    "share_with_neighbour_below": float(np.mean(curves["Count-B"] > 0)),
                    "mean_neighbours_below": float(np.mean(curves["Count-B"])),
                }
                for key, curves in thresholded.items()
            },
            "figures": [str(p) for p in figures],
        }
        path = write_json(folder / "feature_evaluation.json", report)
        if self.verbose:
            print(f"Wrote {path} and {len(figures)} figures", flush=True)
        return report
