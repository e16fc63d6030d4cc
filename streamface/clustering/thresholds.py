"""Distance thresholds of the analysis stages, and what ``None`` means for them.

The seed's thresholds were tuned for its ``arcfacenet`` embeddings (ArcFace and
FaceNet concatenated, cosine distance). Other recognisers (our default SFace)
spread faces differently, so a threshold only means something for one model.
Every stage accepts ``None`` for these parameters and resolves it here from the
embedding model's name; until per-model values are measured and registered, every
model gets the seed's values.
"""

from __future__ import annotations

__all__ = ["SEED_THRESHOLDS", "resolve_threshold"]

#: The seed's values (SEED_README), by parameter name.
SEED_THRESHOLDS: dict[str, float] = {
    "matching_threshold": 0.3,   # face clustering: linkage cut
    "merging_threshold": 0.5,    # face clustering: mean distance joining matched clusters
    "min_threshold": 0.35,       # cluster matching: a cluster's closest match must be below it
    "max_threshold": 0.5,        # cluster matching: pairs listed up to it
}

#: Per-model values, ``{model name: {parameter: value}}``; filled when measured.
MODEL_THRESHOLDS: dict[str, dict[str, float]] = {}


def resolve_threshold(name: str, value: float | None, model: str | None = None) -> float:
    """The threshold to use: ``value`` when given, else the model's default, else the seed's.

    Parameters
    ----------
    name : str
        A key of :data:`SEED_THRESHOLDS`.
    value : float or None
    model : str, optional
        The embedding model's name (as recorded in the store).

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
        return MODEL_THRESHOLDS.get(model or "", {}).get(name, SEED_THRESHOLDS[name])
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or None, got {value!r}") from None
    if not out >= 0 or out == float("inf"):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return out
