"""Stage 9: score predicted face labels against reference labels (docs/stages.md §9).

>>> from streamface.evaluate.annotation_evaluation import AnnotationEvaluation
>>> evaluator = AnnotationEvaluation(
...     true_annotations_path="data/skynews/metadata/annotations_manual.json",
...     pred_annotations_path="data/skynews/metadata/annotations.json",
... )
>>> scores = evaluator.evaluate(verbose=True)          # doctest: +SKIP
>>> round(scores["BCubed"][2], 3)                       # doctest: +SKIP
0.958
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from streamface.identify.annotations import Annotations, read_annotations
from streamface.evaluate.metrics import NOISE_RULES, LabelScores, evaluate_labels

__all__ = ["AnnotationEvaluation", "align_annotations", "format_report"]


def align_annotations(true: Annotations, pred: Annotations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels of the faces both annotations name, in the order of ``pred`` (as the seed did).

    Returns
    -------
    names : ndarray of str, shape (m,)
    labels_true, labels_pred : ndarray of int64, shape (m,)

    Raises
    ------
    ValueError
        The two name no face in common.

    Warns
    -----
    UserWarning
        When some faces are named by only one of them (they are left out, as the seed did).
    """
    true_of = true.label_of()
    keep = np.fromiter((name in true_of for name in pred.names.tolist()), bool, count=len(pred))
    if not keep.any():
        raise ValueError("the true and predicted annotations name no face in common "
                         f"({len(true)} and {len(pred)} faces; e.g. {true.names[:1].tolist()} "
                         f"vs {pred.names[:1].tolist()})")
    missing_true = len(pred) - int(keep.sum())
    missing_pred = len(true) - int(keep.sum())
    if missing_true or missing_pred:
        warnings.warn(f"scoring the {int(keep.sum())} faces named by both annotations; left out "
                      f"{missing_true} predicted faces without a true label and {missing_pred} true faces "
                      "without a prediction", UserWarning, stacklevel=3)
    names = pred.names[keep]
    y_pred = pred.labels[keep]
    y_true = np.array([true_of[name] for name in names.tolist()], dtype=np.int64)
    return names, y_true, y_pred


def format_report(scores: LabelScores) -> str:
    """The seed's ``Annotations Report`` text, numbers to 3 decimals."""
    lines = ["Annotations Report:"]
    for key, value in scores.to_seed_dict().items():
        if isinstance(value, tuple):
            text = "P {:.3f}, R {:.3f}, F {:.3f}".format(*value)
        elif isinstance(value, float):
            text = f"{value:.3f}"
        else:
            text = str(value)
            if key == "True Clusters" and scores.noise:
                text += f" (noise faces: {scores.noise})"
        lines.append(f"\t{key}: {text}")
    return "\n".join(lines)


class AnnotationEvaluation:
    """Score the labels of one annotations file against another (the seed's report).

    Faces are matched by name; faces named by only one file are left out with a
    warning. Scores are those of :mod:`streamface.evaluate.metrics`.

    Parameters
    ----------
    true_annotations_path : path
        Reference labels, e.g. the reviewed ``annotations_manual.json``.
    pred_annotations_path : path
        Labels to score, e.g. the automatic ``annotations.json``.
    noise : {"label", "singletons", "drop"}, default "label"
        How a true label of ``-1`` counts. ``"label"`` (the seed's behaviour): all
        noise faces form one more class; on the seed's sample this reproduces its
        published numbers. ``"singletons"``: each noise face is its own class.
        ``"drop"``: noise faces are left out.

    Examples
    --------
    On the seed's own files (``../shared/data/skynews/metadata``) this gives 37
    samples, 21 true labels (20 people and the noise label) against 24 predicted,
    BCubed F 0.958 (P 1.000, R 0.919), pairwise F 0.893, NMI 0.974, ARI 0.888.
    """

    def __init__(self, true_annotations_path: str | os.PathLike, pred_annotations_path: str | os.PathLike,
                 noise: str = "label") -> None:
        self.true_annotations_path = true_annotations_path
        self.pred_annotations_path = pred_annotations_path
        self.noise = noise

    def _validate(self) -> None:
        if self.noise not in NOISE_RULES:
            raise ValueError(f"noise: expected one of {NOISE_RULES}, got {self.noise!r}")
        for param in ("true_annotations_path", "pred_annotations_path"):
            path = Path(getattr(self, param))
            if not path.is_file():
                raise FileNotFoundError(f"{param}: no such file {str(path)!r}")

    def scores(self) -> LabelScores:
        """Read both files and score them.

        Returns
        -------
        LabelScores
        """
        self._validate()
        true = read_annotations(self.true_annotations_path)
        pred = read_annotations(self.pred_annotations_path)
        _, y_true, y_pred = align_annotations(true, pred)
        return evaluate_labels(y_true, y_pred, noise=self.noise)

    def evaluate(self, verbose: bool = True) -> dict:
        """Score the predicted labels; print the report when ``verbose``.

        Returns
        -------
        dict
            The seed's report: ``Samples``, ``True Clusters``, ``Pred Clusters``,
            ``Accuracy``, ``Precision``, ``Recall`` (weighted), ``Adjusted Rand``,
            ``NMI``, ``Purity`` (floats) and ``Pairwise``, ``BCubed``
            ((precision, recall, fscore) tuples).
        """
        scores = self.scores()
        if verbose:
            print(format_report(scores))
        return scores.to_seed_dict()
