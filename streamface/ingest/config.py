"""The streams of ``streamface ingest``: a TOML file of ``[[stream]]`` tables and/or ``NAME=URL``.

A config file lists one table per stream::

    [[stream]]
    name = "skynews"                 # store group; [A-Za-z0-9._-]
    url = "https://example.com/live.m3u8"

    [[stream]]
    name = "archive"
    url = "/data/archive.mp4"
    sample_fps = 1.0                 # optional: overrides the command line's value
    max_frames = 500
    duration = 600.0

Every problem (missing or unreadable file, TOML syntax, a missing or unknown key, a
bad value, a bad or repeated name) raises :class:`IngestConfigError` with one line
naming the file and the stream.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from streamface.store import StoreError, validate_stream_name

__all__ = ["IngestConfigError", "StreamSpec", "parse_config", "parse_sources", "STREAM_OPTIONS", "stream_specs"]

#: Per-stream options a config table may set: name -> (type check, what it must be).
STREAM_OPTIONS = {
    "sample_fps": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
                   "a number > 0"),
    "max_frames": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                   "an integer >= 1"),
    "duration": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
                 "a number of seconds > 0"),
    "max_reconnects": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                       "an integer >= 0"),
}
_REQUIRED = ("name", "url")


class IngestConfigError(ValueError):
    """A bad stream list; the message is one line saying what and where."""


@dataclass
class StreamSpec:
    """One stream to ingest.

    Parameters
    ----------
    name : str
        Store group of the stream.
    url : str
        Path or URL (anything ``streamface run`` reads).
    options : dict
        Per-stream overrides of :data:`STREAM_OPTIONS` (keys absent: the command line's).
    """

    name: str
    url: str
    options: dict = field(default_factory=dict)


def parse_config(path) -> list[StreamSpec]:
    """The ``[[stream]]`` tables of the TOML file at ``path``, checked."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise IngestConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise IngestConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise IngestConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - {"stream"})
    if unknown:
        raise IngestConfigError(f"{path}: unknown top-level key {unknown[0]!r} "
                                f"(expected [[stream]] tables)")
    tables = doc.get("stream")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise IngestConfigError(f"{path}: no [[stream]] tables")
    specs = [_spec(table, f"{path}: stream {i + 1}") for i, table in enumerate(tables)]
    check_unique(specs, str(path))
    return specs


def _spec(table: dict, where: str) -> StreamSpec:
    if isinstance(table.get("name"), str):
        where += f" ({table['name']!r})"
    for key in _REQUIRED:
        if key not in table:
            raise IngestConfigError(f"{where}: missing key {key!r}")
        if not isinstance(table[key], str) or not table[key]:
            raise IngestConfigError(f"{where}: {key} must be a non-empty string, got {table[key]!r}")
    options = {}
    for key, value in table.items():
        if key in _REQUIRED:
            continue
        if key not in STREAM_OPTIONS:
            allowed = ", ".join([*_REQUIRED, *STREAM_OPTIONS])
            raise IngestConfigError(f"{where}: unknown key {key!r} (allowed: {allowed})")
        check, what = STREAM_OPTIONS[key]
        if not check(value):
            raise IngestConfigError(f"{where}: {key} must be {what}, got {value!r}")
        options[key] = value
    try:
        validate_stream_name(table["name"])
    except (StoreError, ValueError) as exc:
        raise IngestConfigError(f"{where}: {exc}") from None
    return StreamSpec(table["name"], table["url"], options)


def parse_sources(sources) -> list[StreamSpec]:
    """``NAME=URL`` strings (``--source``) as specs, checked."""
    specs = []
    for text in sources:
        name, sep, url = text.partition("=")
        if not sep or not name or not url:
            raise IngestConfigError(f"--source {text!r}: expected NAME=URL")
        try:
            validate_stream_name(name)
        except (StoreError, ValueError) as exc:
            raise IngestConfigError(f"--source {text!r}: {exc}") from None
        specs.append(StreamSpec(name, url))
    check_unique(specs, "--source")
    return specs


def check_unique(specs: list[StreamSpec], where: str) -> None:
    """One stream per name (two writers of one store group would wait on each other)."""
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise IngestConfigError(f"{where}: stream name {spec.name!r} given twice")
        seen.add(spec.name)


def stream_specs(config=None, sources=()) -> list[StreamSpec]:
    """``streamface ingest``'s streams: the tables of the TOML file ``config`` (if given), then
    the ``NAME=URL`` strings of ``sources``; one stream per name, at least one stream."""
    specs = (parse_config(config) if config else []) + parse_sources(sources)
    if not specs:
        raise IngestConfigError("no stream to ingest: give --config FILE or --source NAME=URL")
    check_unique(specs, "--config and --source")
    return specs
