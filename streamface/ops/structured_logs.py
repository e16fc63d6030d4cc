"""Log files for long runs: one JSON object per line (optional) and rotation.

:func:`configure_logging` installs the handlers on the ``streamface`` logger (the
stages log under it); the CLI calls it once, from the options that
:func:`log_options` adds to a command in one line. Calling it again replaces the
handlers it installed before (idempotent) and leaves every other handler alone;
nothing else is kept outside the ``logging`` module's own configuration.

A JSON line looks like::

    {"time": "2026-11-28T01:02:03.456+00:00", "level": "INFO", "logger": "streamface.ingest.multi_stream",
     "stream": "news", "event": "reconnect", "message": "news: reconnect", "fields": {"after_s": 2.5}}

``stream``, ``event`` and ``fields`` come from :func:`log_event` (or ``extra=`` with
those keys); for the stages' ``log.info("%s: ...", name, ...)`` messages the stream is
the first argument and the event is ``"log"``.

Files (in ``log_dir``): ``streamface.jsonl`` (JSON) or ``streamface.log`` (text), every
event; with ``streams=`` also ``<stream>.log``, that stream's events only. That is the
path :class:`~streamface.ingest.capture.StreamCapture` logs to (``<output_dir>/logs``),
so with ``log_dir`` there the capture finds the rotating handler in place and does not
add its own, never-rotated, file.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.handlers
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from streamface.checks import check_int

__all__ = ["JsonLineFormatter", "LogConfig", "close_logging", "configure_logging", "log_event", "log_options"]

ROOT_LOGGER = "streamface"
ROTATIONS = ("size", "daily", "hourly")
_MANAGED = "_streamface_structured_logs"  # marks the handlers this module installed
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class LogConfig:
    """How a run logs.

    Parameters
    ----------
    json : bool, default False
        One JSON object per line instead of text.
    log_dir : path or None, default None
        Folder of the log files; None: the caller's default folder, or stderr without one.
    rotate : {"size", "daily", "hourly"}, default "size"
        Start a new file when it reaches ``max_bytes``, or at midnight / each hour (UTC).
    max_bytes : int, default 50 MiB
        Size rotation threshold; 0 never rotates.
    backups : int, default 5
        Rotated files kept (``streamface.log.1`` ... for size, date-suffixed for time).
    level : str, default "INFO"
    """

    json: bool = False
    log_dir: str | os.PathLike | None = None
    rotate: str = "size"
    max_bytes: int = 50 * 1024 * 1024
    backups: int = 5
    level: str = "INFO"

    def validate(self) -> LogConfig:
        if self.rotate not in ROTATIONS:
            raise ValueError(f"rotate must be one of {ROTATIONS}, got {self.rotate!r}")
        check_int("max_bytes", self.max_bytes, minimum=0)
        check_int("backups", self.backups, minimum=0)
        if not isinstance(logging.getLevelName(self.level.upper()), int):
            raise ValueError(f"level must be a logging level name (DEBUG, INFO...), got {self.level!r}")
        return self


def _stream_of(record: logging.LogRecord) -> str | None:
    stream = getattr(record, "stream", None)
    if stream is not None:
        return str(stream)
    # The stages' convention: log.info("%s: ...", name, ...).
    if isinstance(record.msg, str) and record.msg.startswith("%s:") and isinstance(record.args, tuple) \
            and record.args and isinstance(record.args[0], str):
        return record.args[0]
    return None


class JsonLineFormatter(logging.Formatter):
    """A record as one JSON object: time (ISO 8601 UTC), level, logger, stream, event, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "stream": _stream_of(record),
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
            "fields": getattr(record, "fields", None) or {},
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # default=str: a field that is not JSON (a Path, a numpy scalar) is written, not lost.
        return json.dumps(entry, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    """The stages' text format, with an event's fields appended as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        return text + "".join(f" {k}={v}" for k, v in fields.items()) if fields else text


class _StreamFilter(logging.Filter):
    def __init__(self, stream: str) -> None:
        super().__init__()
        self.stream = stream

    def filter(self, record: logging.LogRecord) -> bool:
        return _stream_of(record) == self.stream


def _file_handler(path: Path, config: LogConfig) -> logging.Handler:
    if config.rotate == "size":
        return logging.handlers.RotatingFileHandler(path, maxBytes=config.max_bytes,
                                                    backupCount=config.backups, encoding="utf-8")
    when = "midnight" if config.rotate == "daily" else "H"
    return logging.handlers.TimedRotatingFileHandler(path, when=when, backupCount=config.backups,
                                                     encoding="utf-8", utc=True)


def configure_logging(config: LogConfig, *, default_dir: str | os.PathLike | None = None,
                      streams: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Install the log handlers of ``config`` on the ``streamface`` logger.

    Parameters
    ----------
    config : LogConfig
    default_dir : path, optional
        Folder used when ``config.log_dir`` is None (the CLI passes ``<store's parent>/logs``).
    streams : sequence of str, default ()
        Also write ``<dir>/<stream>.log`` with that stream's events only; each must be a
        valid stream name (:func:`~streamface.store.names.validate_stream_name`).

    Returns
    -------
    list of Path
        The log files (empty when logging to stderr).
    """
    from streamface.store.names import validate_stream_name

    config = config.validate()
    for stream in streams:
        validate_stream_name(stream)  # <stream>.log: a name that is not one never becomes a path
    logger = logging.getLogger(ROOT_LOGGER)
    close_logging()
    formatter = JsonLineFormatter() if config.json else _TextFormatter(_TEXT_FORMAT)
    folder = config.log_dir if config.log_dir is not None else default_dir
    handlers: list[tuple[logging.Handler, Path | None]] = []
    if folder is None:
        handlers.append((logging.StreamHandler(sys.stderr), None))
    else:
        folder = Path(folder).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        main = folder / ("streamface.jsonl" if config.json else "streamface.log")
        handlers.append((_file_handler(main, config), main))
        for stream in streams:
            path = folder / f"{stream}.log"
            if any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
                continue  # a handler of the capture's own is already there
            handler = _file_handler(path, config)
            handler.addFilter(_StreamFilter(stream))
            handlers.append((handler, path))
    for handler, _ in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MANAGED, True)
        logger.addHandler(handler)
    logger.setLevel(config.level.upper())
    return [path for _, path in handlers if path is not None]


def close_logging() -> None:
    """Remove and close the handlers :func:`configure_logging` installed (others stay)."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, _MANAGED, False)]:
        logger.removeHandler(handler)
        handler.close()


def log_event(logger: logging.Logger, event: str, *, stream: str | None = None,
              level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event: ``event`` (a short snake_case name) with ``fields``.

    >>> log_event(logging.getLogger("streamface.ingest.multi_stream"), "reconnect", stream="news", after_s=2.5)
    """
    message = f"{stream}: {event}" if stream else event
    logger.log(level, "%s", message, extra={"stream": stream, "event": event, "fields": fields})


def log_options(func):
    """Click options ``--log-json``, ``--log-dir``, ``--log-rotate``, ``--log-max-bytes``,
    ``--log-backups``, ``--log-level``, handed to the command as one ``log_config: LogConfig``."""
    options = [
        click.option("--log-json/--log-text", "log_json", default=False,
                     help="Log one JSON object per line (time, level, stream, event, fields)."),
        click.option("--log-dir", type=click.Path(file_okay=False), default=None,
                     help="Folder of the log files [default: logs/ beside the store]."),
        click.option("--log-rotate", type=click.Choice(ROTATIONS), default="size",
                     help="Start a new log file at --log-max-bytes, or daily/hourly (UTC)."),
        click.option("--log-max-bytes", type=click.IntRange(min=0), default=50 * 1024 * 1024,
                     help="Size at which a log file is rotated (--log-rotate size); 0: never."),
        click.option("--log-backups", type=click.IntRange(min=0), default=5,
                     help="Rotated log files kept."),
        click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                                      case_sensitive=False), default="INFO",
                     help="Least severe level logged."),
    ]

    @functools.wraps(func)
    def command(*args, **kwargs):
        kwargs["log_config"] = LogConfig(
            json=kwargs.pop("log_json"), log_dir=kwargs.pop("log_dir"), rotate=kwargs.pop("log_rotate"),
            max_bytes=kwargs.pop("log_max_bytes"), backups=kwargs.pop("log_backups"),
            level=kwargs.pop("log_level").upper())
        return func(*args, **kwargs)

    for option in reversed(options):
        command = option(command)
    return command
