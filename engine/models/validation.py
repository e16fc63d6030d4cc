"""Parameter checks for the wrappers' ``prepare`` options (scikit-learn style).

Each check names the parameter and the allowed values, so a wrong option fails once, at
the start of the work, with a message the user can act on.
"""

from __future__ import annotations

import numbers


def check_param(name: str, value, kind: type, *, low=None, high=None, multiple: int | None = None,
                choices=None) -> None:
    """Raise ``ValueError`` unless ``value`` is a ``kind`` within the constraints.

    ``kind`` is ``int`` (integers, not bool), ``float`` (any real number) or ``str``.
    ``low``/``high`` are inclusive bounds; ``multiple`` requires ``value % multiple == 0``.
    """
    if kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        what = "an int"
    elif kind is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        what = "a number"
    else:
        ok = isinstance(value, kind)
        what = f"a {kind.__name__}"
    if choices is not None:
        if value not in choices:
            allowed = ", ".join(map(repr, choices))
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        return
    if not ok:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if low is not None and value < low:
        rng = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    if high is not None and value > high:
        rng = f"in [{low}, {high}]" if low is not None else f"<= {high}"
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    if multiple is not None and value % multiple:
        raise ValueError(f"{name} must be a multiple of {multiple}, got {value!r}")


def batch_size(max_batch, engine) -> int:
    """``max_batch`` checked (an int >= 1) and capped at the engine's own ``max_batch``."""
    check_param("max_batch", max_batch, int, low=1)
    if engine.max_batch is not None:
        max_batch = min(max_batch, engine.max_batch)
    return max_batch
