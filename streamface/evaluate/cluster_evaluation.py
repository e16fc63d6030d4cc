"""Stage 6: internal quality of a clustering, with no reference labels (docs/stages.md §6).

Over the faces with a label ``>= 0``: Davies-Bouldin (lower is better),
Calinski-Harabasz (higher is better) and the silhouette (in [-1, 1], higher is
better; on a random sample of ``silhouette_samples`` faces above that size, since
it needs every pairwise distance), plus two figures: faces per cluster label and
clusters per size bin. Scores are written as JSON (the seed pickled them).

>>> from streamface.evaluate.cluster_evaluation import ClusterEvaluation
>>> model = ClusterEvaluation(
...     name="skynews",
...     features_path="data/news.zarr::skynews",
...     annotations_path="data/skynews/metadata/annotations.json",
...     scores_path="data/skynews/metadata/cluster_scores.json",
...     plots_path="data/skynews/metadata",
...     metric="cosine",
... )
>>> scores = model.evaluate()                                   # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from streamface.identify.annotations import read_annotations, write_json
from streamface.identify.features import METRICS, labelled_embeddings, load_features, validate_embeddings
from streamface.evaluate.plots import plot_class_sizes, plot_membership

__all__ = ["ClusterEvaluation", "cluster_scores"]


def cluster_scores(x: np.ndarray, labels: np.ndarray, *, metric: str = "cosine", silhouette_samples: int = 10000,
                   random_state: int = 0) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """Davies-Bouldin, Calinski-Harabasz and silhouette of ``labels`` (faces with label >= 0).

    Parameters
    ----------
    x : ndarray, shape (n, D)
    labels : ndarray of int, shape (n,)
    metric : str, default "cosine"
        For the silhouette; Davies-Bouldin and Calinski-Harabasz are euclidean by
        definition (as in the seed).
    silhouette_samples : int, default 10000
        Above this many faces the silhouette uses a random sample of this size.
    random_state : int, default 0

    Returns
    -------
    scores : dict
        ``Davies-Bouldin``, ``Calinski-Harabasz``, ``Silhouette`` (the seed's keys;
        None when undefined: fewer than 2 clusters or as many clusters as faces),
        ``samples``, ``clusters``, ``noise``, ``silhouette_samples`` (faces the
        silhouette used).
    sample_index : ndarray of int64, shape (s,) or None
        Rows (into the faces with label >= 0) of the per-face silhouettes.
    sample_values : ndarray of float64, shape (s,) or None
        Per-face silhouettes (the seed's ``Silhouette PS``).
    """
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_samples as per_face

    labels = np.asarray(labels)
    clean = labels >= 0
    xs, ls = x[clean], labels[clean]
    n, k = len(ls), len(np.unique(ls))
    scores: dict = {"samples": int(n), "clusters": int(k), "noise": int((~clean).sum()),
                    "Davies-Bouldin": None, "Calinski-Harabasz": None, "Silhouette": None,
                    "silhouette_samples": 0}
    if not 2 <= k <= n - 1:
        return scores, None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # DB divides by zero for clusters of identical faces
        scores["Davies-Bouldin"] = float(davies_bouldin_score(xs, ls))
        scores["Calinski-Harabasz"] = float(calinski_harabasz_score(xs, ls))
    index = np.arange(n)
    if n > silhouette_samples:
        index = np.sort(np.random.default_rng(random_state).choice(n, size=silhouette_samples, replace=False))
    k_s = len(np.unique(ls[index]))
    if 2 <= k_s <= len(index) - 1:
        values = per_face(xs[index], ls[index], metric=metric)
        scores["Silhouette"] = float(values.mean())
        scores["silhouette_samples"] = int(len(index))
        return scores, index.astype(np.int64), values
    return scores, None, None


class ClusterEvaluation:
    """Score a clustering and plot its cluster sizes (the seed's stage 6); see the module docstring.

    Parameters
    ----------
    name : str
        Dataset name, used in figure titles.
    features_path : str or path
        ``<store>::<stream>``, a store (with ``stream``), a ``.npz`` or the seed's
        features ``.pkl`` (pickles only from trusted sources).
    annotations_path : path
        ``annotations.json`` with the labels to score.
    scores_path : path
        JSON file written with the scores. A ``.pkl`` path (the seed's) is written
        as JSON beside it, with the suffix ``.json``.
    plots_path : path
        Folder for ``class_distribution.png`` and ``membership_distribution.png``.
    metric : str, default "cosine"
        For the silhouette.
    stream : str, optional
        The stream, when ``features_path`` is a store without ``::<stream>``.
    silhouette_samples : int, default 10000
    random_state : int, default 0
    dpi : int, default 150
    verbose : bool, default True
    """

    def __init__(self, name, features_path, annotations_path, scores_path, plots_path, metric: str = "cosine", *,
                 stream: str | None = None, silhouette_samples: int = 10000, random_state: int = 0,
                 dpi: int = 150, verbose: bool = True) -> None:
        self.name = name
        self.features_path = features_path
        self.annotations_path = annotations_path
        self.scores_path = scores_path
        self.plots_path = plots_path
        self.metric = metric
        self.stream = stream
        self.silhouette_samples = silhouette_samples
        self.random_state = random_state
        self.dpi = dpi
        self.verbose = verbose

    def _validate_params(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {self.metric!r}")
        if isinstance(self.silhouette_samples, bool) or not isinstance(self.silhouette_samples, (int, np.integer)) \
                or self.silhouette_samples < 2:
            raise ValueError(f"silhouette_samples: expected an integer >= 2, got {self.silhouette_samples!r}")
        if not Path(self.annotations_path).is_file():
            raise FileNotFoundError(f"annotations_path: no such file {str(self.annotations_path)!r}")

    @property
    def json_path(self) -> Path:
        """Where the scores go: ``scores_path``, with ``.pkl`` replaced by ``.json``."""
        path = Path(self.scores_path)
        return path.with_suffix(".json") if path.suffix.lower() in (".pkl", ".pickle") else path

    def evaluate(self) -> dict:
        """Compute the scores, write the JSON and the two figures.

        Returns
        -------
        dict
            The scores (see :func:`cluster_scores`) plus ``figures`` (paths written).
        """
        self._validate_params()
        if self.verbose:
            print("Reading data ...", flush=True)
        features = load_features(self.features_path, stream=self.stream)
        annotations = read_annotations(self.annotations_path)
        x, labels, names = labelled_embeddings(features, annotations)
        validate_embeddings(x, self.metric, names)
        scores, _, _ = cluster_scores(x, labels, metric=self.metric, silhouette_samples=int(self.silhouette_samples),
                                      random_state=self.random_state)
        if self.verbose:
            for key in ("Davies-Bouldin", "Calinski-Harabasz", "Silhouette"):
                value = scores[key]
                print(f"{key} : {'undefined' if value is None else f'{value:.3f}'}", flush=True)
        plots = Path(self.plots_path)
        figures = [
            plot_class_sizes(labels, plots / "class_distribution.png", name=str(self.name), dpi=self.dpi),
            plot_membership(labels, plots / "membership_distribution.png", name=str(self.name), dpi=self.dpi),
        ]
        scores["figures"] = [str(p) for p in figures]
        if self.verbose:
            print(f"Writing results to {self.json_path}", flush=True)
        write_json(self.json_path, scores)
        return scores
