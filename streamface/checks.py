"""The one checker of whole-number parameters (batch sizes, counts, thread numbers).

Every class that takes such a parameter validates it once, in its ``validate``/``__init__``,
with :func:`check_int`, so that a bad value is refused with the same line everywhere:
``batch_size must be an int >= 1, got 0``. ``bool`` is refused although it is an ``int``
(``batch_size=True`` is a mistake, not 1); numpy integers are accepted.
Standard library only: the engine and the store may use it too.
"""

from __future__ import annotations

import numbers

__all__ = ["check_int"]


def check_int(name: str, value, *, minimum: int = 1, optional: bool = False,
              error: type[Exception] = ValueError):
    """Return ``value`` when it is a whole number ``>= minimum`` (or None when ``optional``).

    Parameters
    ----------
    name : str
        The parameter's name, as the caller wrote it (it starts the error line).
    value : int, numpy integer or None
        The value to check.
    minimum : int, default 1
        The smallest value allowed.
    optional : bool, default False
        Whether None is allowed (it means "not set" to the caller).
    error : type of Exception, default ValueError
        What is raised: a module's own error class where it has one.

    Raises
    ------
    error
        ``"<name> must be an int >= <minimum>[ or None], got <value!r>"``.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise error(f"{name} must be an int >= {minimum}{' or None' if optional else ''}, got {value!r}")
    return value
