"""Store rotation: a new store per day (or hour) from one base name.

A months-long ingest into one store grows without bound; rotating gives one store per
period, each complete and independently readable, archived or deleted as a unit::

    news.zarr  ->  news-2026-11-28.zarr      (period "day")
               ->  news-2026-11-28T13.zarr   (period "hour")
               ->  news.zarr                 (period "none")

Periods are in UTC, so a store never spans a daylight-saving jump and names sort in
time order. The hour form has no ``:`` (invalid on some file systems and awkward in
object-store URLs). Local paths and fsspec URLs are both named by string; only
:func:`rotated_stores` and :func:`expand_store_locations` list anything.

>>> from datetime import datetime, timezone
>>> rotation = StoreRotation("data/news.zarr", "day")
>>> rotation.location_at(datetime(2026, 11, 28, 23, 59, tzinfo=timezone.utc))
'data/news-2026-11-28.zarr'
"""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

__all__ = ["PERIODS", "StoreRotation", "base_of", "expand_store_locations", "rotated_stores", "split_base"]

PERIODS = ("none", "day", "hour")
_FORMATS = {"day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H"}
_STAMP = r"\d{4}-\d{2}-\d{2}(?:T\d{2})?"


def split_base(base: str) -> tuple[str, str, str]:
    """``(folder, stem, suffix)`` of a base location: ``"s3://b/news.zarr"`` -> ``("s3://b/", "news", ".zarr")``."""
    text = str(base).rstrip("/")
    cut = text.rfind("/") + 1
    folder, name = text[:cut], text[cut:]
    if not name or name in (".", ".."):
        raise ValueError(f"base must end in a store name (e.g. news.zarr), got {base!r}")
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    return folder, stem, suffix


@dataclass(frozen=True)
class StoreRotation:
    """Names the store of the current period.

    Parameters
    ----------
    base : str or PathLike
        The store name the user gave (``news.zarr``, ``/data/news.zarr``, ``s3://b/news.zarr``).
    period : {"day", "hour", "none"}, default "day"
    clock : callable, default time.time
        Seconds since the epoch; injected by tests.

    Examples
    --------
    An ingest checks at each commit whether its store is still the current one::

        rotation = StoreRotation(store, period)
        location = rotation.location()
        ...
        if rotation.location() != location:   # a period boundary passed
            writer.close(); location = rotation.location(); writer = open_writer(location)
    """

    base: str
    period: str = "day"
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", os.fspath(self.base))
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {PERIODS}, got {self.period!r}")
        split_base(self.base)  # a base without a name fails here, not at the first boundary

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def period_start(self, when: datetime) -> datetime | None:
        """Start (UTC) of the period holding ``when``; None for period "none"."""
        when = when.astimezone(timezone.utc)
        if self.period == "day":
            return when.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "hour":
            return when.replace(minute=0, second=0, microsecond=0)
        return None

    def next_boundary(self, when: datetime | None = None) -> datetime | None:
        """When (UTC) the period after ``when`` (default: now) starts; None for "none"."""
        start = self.period_start(when or self.now())
        if start is None:
            return None
        return start + (timedelta(days=1) if self.period == "day" else timedelta(hours=1))

    def location_at(self, when: datetime) -> str:
        """The store location of the period holding ``when`` (an aware datetime)."""
        if when.tzinfo is None:
            raise ValueError("when must be timezone-aware (rotation periods are UTC)")
        if self.period == "none":
            return self.base
        folder, stem, suffix = split_base(self.base)
        return f"{folder}{stem}-{when.astimezone(timezone.utc).strftime(_FORMATS[self.period])}{suffix}"

    def location(self) -> str:
        """The store location of the current period (by ``clock``)."""
        return self.location_at(self.now())


def base_of(location: str | os.PathLike) -> str | None:
    """The base of a rotated store's location (``news-2026-11-28.zarr`` -> ``news.zarr``); None
    when the name carries no rotation stamp."""
    folder, stem, suffix = split_base(os.fspath(location))
    found = re.fullmatch(rf"(.+)-{_STAMP}", stem)
    return f"{folder}{found.group(1)}{suffix}" if found else None


def _pattern(stem: str, suffix: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(stem)}-{_STAMP}{re.escape(suffix)}$")


def _is_local(location: str) -> bool:
    return "://" not in location or location.startswith("file://")


def _fs_and_path(location: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package is not installed
        raise ValueError(f"cannot open {location}: {exc}") from None


def rotated_stores(base: str | os.PathLike) -> list[str]:
    """The rotated stores of ``base`` that exist, oldest first (local paths or fsspec URLs)."""
    base = os.fspath(base)
    folder, stem, suffix = split_base(base)
    pattern = _pattern(stem, suffix)
    if _is_local(base):
        local = folder[len("file://"):] if folder.startswith("file://") else folder
        names = os.listdir(os.path.expanduser(local or ".")) if os.path.isdir(os.path.expanduser(local or ".")) \
            else []
    else:
        fs, path = _fs_and_path(folder.rstrip("/") or folder)
        try:
            names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]
        except OSError:  # no such folder, or not listable: no rotated stores to be found there
            names = []
    # Names sort in time order: fixed-width UTC stamps, the day form a prefix of the hour form.
    return [f"{folder}{name}" for name in sorted(n for n in names if pattern.match(n))]


def _has_store(location: str) -> bool:
    if _is_local(location):
        local = location[len("file://"):] if location.startswith("file://") else location
        return os.path.isfile(os.path.join(os.path.expanduser(local), "zarr.json"))
    fs, path = _fs_and_path(location)
    return bool(fs.exists(f"{path.rstrip('/')}/zarr.json"))


def expand_store_locations(arguments) -> list[str]:
    """The stores a list of command-line arguments names, in order, without duplicates.

    Each argument is a store; a glob (``'news-*.zarr'``, local or fsspec) standing for
    the stores it matches (paths that are not stores are skipped); or a rotation base
    that is not itself a store (``news.zarr``) standing for its rotated stores. An
    argument that is none of these is kept as given, so opening it reports why.
    """
    found: list[str] = []
    for argument in arguments:
        text = os.fspath(argument)
        if glob.has_magic(text):
            if _is_local(text):
                matches = sorted(glob.glob(os.path.expanduser(text)))
            else:
                fs, path = _fs_and_path(text)
                matches = sorted(fs.unstrip_protocol(p) for p in fs.glob(path))
            found += [m for m in matches if _has_store(m)]
        elif not _has_store(text) and rotated_stores(text):
            found += rotated_stores(text)
        else:
            found.append(text)
    return list(dict.fromkeys(found))
