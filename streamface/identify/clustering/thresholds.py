"""Distance thresholds of the analysis stages, and what ``None`` means for them.

The seed's thresholds were tuned for its ``arcfacenet`` embeddings (ArcFace and
FaceNet concatenated, cosine distance). Other recognisers (our default SFace)
spread faces differently, so a threshold only means something for one model.
Every stage accepts ``None`` for these parameters and resolves it here from the
embedding model's name (``Stream.embedding_model``, or a ``model=`` argument): the
recognizer's calibrated values in the engine registry (``ModelSpec.clustering``,
e.g. SFace's, measured by ``benchmarks/calibrate_clustering.py``). A model the
registry does not know, or no model at all, gets the seed's values, with a warning
(:func:`threshold_warning`). An explicit number always wins.

Precedence, first to last: explicit number > the user's calibration file
(``<cache dir>/calibration.json``, written by ``streamface calibrate --write``; see
:mod:`streamface.engine.weights.calibration_file`) > the registry's shipped value >
the seed's fallback. A malformed calibration file raises one line naming it.

The registry is read lazily (no model is loaded; no inference session is made).
"""

from __future__ import annotations

import functools

__all__ = ["SEED_THRESHOLDS", "model_thresholds", "resolve_threshold", "threshold_warning"]

#: The seed's values (the original README's values; docs/stages.md), by parameter name.
SEED_THRESHOLDS: dict[str, float] = {
    "matching_threshold": 0.3,   # face clustering: linkage cut
    "merging_threshold": 0.5,    # face clustering: mean distance joining matched clusters
    "min_threshold": 0.35,       # cluster matching: a cluster's closest match must be below it
    "max_threshold": 0.5,        # cluster matching: pairs listed up to it
}

#: Extra per-model values, ``{model name: {parameter: value}}``, over the registry's (tests, users).
MODEL_THRESHOLDS: dict[str, dict[str, float]] = {}


@functools.lru_cache(maxsize=None)
def _registry_defaults(model: str):
    from streamface.engine.weights.registry import REGISTRY

    return getattr(REGISTRY.get(model), "clustering", None)


def _registry_thresholds(model: str) -> dict[str, float] | None:
    defaults = _registry_defaults(model)
    return None if defaults is None else defaults.thresholds()


def _user_values(model: str) -> dict:
    from streamface.engine.weights.calibration_file import user_values

    return user_values(model)  # read each time: a calibration written meanwhile takes effect


def model_thresholds(model: str | None) -> dict[str, float] | None:
    """The calibrated thresholds of embedding model ``model``; None when it has none (unknown, absent).

    The user's calibration file overrides the registry's values key by key.

    Raises
    ------
    CalibrationFileError
        (a ValueError) The user's calibration file is malformed.
    """
    if not model:
        return None
    if model in MODEL_THRESHOLDS:
        return {**SEED_THRESHOLDS, **MODEL_THRESHOLDS[model]}
    user = {k: v for k, v in _user_values(str(model)).items() if k in SEED_THRESHOLDS}
    shipped = _registry_thresholds(str(model))
    if user:
        return {**(shipped or SEED_THRESHOLDS), **user}
    return shipped


def _model_metric(model: str) -> str | None:
    """The metric ``model``'s default thresholds are distances in (user file over registry)."""
    user = _user_values(model)
    if "metric" in user:
        return user["metric"]
    if any(k in user for k in SEED_THRESHOLDS):
        return None  # user values without a stated metric: nothing to check against
    defaults = _registry_defaults(model)
    return None if defaults is None else defaults.metric


def threshold_warning(model: str | None, *values: float | None, metric: str | None = None) -> str | None:
    """A one-line warning when a ``None`` among ``values`` falls back to the seed's thresholds, else None.

    With ``metric``: also when the model's values were calibrated for another metric.
    """
    if all(v is not None for v in values):
        return None
    if model_thresholds(model) is not None:
        calibrated = None if model in MODEL_THRESHOLDS else _model_metric(str(model))
        if metric is not None and calibrated is not None and metric != calibrated:
            return (f"the default thresholds of {model!r} are {calibrated} distances, but metric={metric!r}: "
                    f"pass thresholds for {metric!r} explicitly")
        return None
    which = f"embedding model {model!r} has no calibrated thresholds" if model else "no embedding model recorded"
    return (f"{which}: using the seed's clustering thresholds (tuned for its ArcFace+FaceNet); "
            f"pass them explicitly or calibrate with `streamface calibrate`")


def resolve_threshold(name: str, value: float | None, model: str | None = None) -> float:
    """The threshold to use: ``value`` when given, else the model's calibrated value, else the seed's.

    Parameters
    ----------
    name : str
        A key of :data:`SEED_THRESHOLDS`.
    value : float or None
    model : str, optional
        The embedding model's name (as recorded in the store); unknown or None: the seed's value
        (:func:`threshold_warning` says so).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``value`` is not a finite non-negative number (the message names ``name``).
    """
    if name not in SEED_THRESHOLDS:
        raise KeyError(f"unknown threshold {name!r}; known: {sorted(SEED_THRESHOLDS)}")
    if value is None:
        return (model_thresholds(model) or SEED_THRESHOLDS)[name]
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or None, got {value!r}") from None
    if not out >= 0 or out == float("inf"):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return out
