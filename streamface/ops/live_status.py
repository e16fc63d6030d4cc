"""Live status of a running ingest: a JSON snapshot per stream, rewritten every few seconds.

Where: ``<store's folder>/.<store name>.status/<stream>.json`` beside a local store,
e.g. ``data/.news.zarr.status/news.json``. Not inside the store: Zarr lists a store's
directories and warns about any that is not a Zarr node, and the store's size and
contents stay exactly what the ingest committed. A rotating ingest writes under the
base name it was given (``news.zarr``), so ``streamface status news.zarr`` follows it
across rotations. Stores at fsspec URLs get no status file (writing small objects every
few seconds to object storage costs requests and proves little; their Prometheus
metrics are the live view).

Each write goes to a temporary file in the same folder, is fsynced, and replaces the
snapshot with ``os.replace``, so a reader sees the old snapshot or the new one, never a
torn one. A snapshot::

    {"version": 1, "store": str, "stream": str, "host": str, "pid": int,
     "started": float, "updated": float,   # seconds since the epoch
     "interval": float, "running": bool,   # running False: the run ended and said how
     "outcome": str, "note": str,          # with running False (optional: older writers
                                           # lack them, older readers ignore them)
     "current_store": str,                 # the rotated store being written
     "counters": {"frames_decoded", "keyframes", "faces", "reconnects": int,
                  "dropped": {reason: int}, "fps": float, "queue_depth": {queue: float}},
     "process": {"rss_bytes": int}}

A reader judges it (:func:`read_status`), one of :data:`STATES`:

``running``
    The run is alive and wrote within ``stale_after`` seconds.
``stale``
    No write for ``stale_after`` seconds from a process that is alive, or on another
    host: hung, or cut off.
``not running``
    Same host, the process is gone and never wrote its last snapshot: killed or crashed.
``finished``
    Ended cleanly: read to the end of its source or a bound (``--duration``...).
``interrupted``
    Stopped by SIGINT/SIGTERM; what was processed is stored; a new run continues it.
``truncated``
    Its file was cut short; what decoded is stored (``note``: "truncated at 16.0 s of 55.0 s").
``failed``
    Ended on an error (``note``: the error).

Snapshots of every run into a store stay, one per stream (a new run of a stream
replaces its own), so the status of a store lists every stream written into it.
``streamface status`` exits 0 when every stream is running or finished, 3 when one is
stale, not running, interrupted, truncated or failed, 1 when no run wrote a status.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from streamface.atomic_write import atomic_write
from streamface.store.locking import pid_alive
from streamface.store.names import validate_stream_name
from streamface.store.rotation import base_of

__all__ = ["HEALTHY", "OUTCOMES", "STATES", "StatusReport", "StatusWriter", "format_status", "read_status",
           "status_dir", "write_snapshot"]

log = logging.getLogger(__name__)
STATUS_VERSION = 1
STATES = ("running", "stale", "not running", "finished", "interrupted", "truncated", "failed")
#: How a run ends, as its last snapshot says (``StatusWriter.close(outcomes=...)``).
OUTCOMES = ("finished", "interrupted", "truncated", "failed")
#: States in which nothing needs a person's attention (``streamface status`` exits 0).
HEALTHY = ("running", "finished")


def status_dir(store: str | os.PathLike) -> Path | None:
    """The status folder of a local store; None for an fsspec URL (no status kept)."""
    text = os.fspath(store)
    if "://" in text and not text.startswith("file://"):
        return None
    path = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser().absolute()
    return path.parent / f".{path.name.rstrip('/')}.status"


def write_snapshot(folder: Path, stream: str, snapshot: dict[str, Any]) -> Path:
    """Write ``<folder>/<stream>.json`` atomically (temporary file, fsync, rename)."""
    validate_stream_name(stream)  # the name becomes a path
    return atomic_write(folder / f"{stream}.json", json.dumps(snapshot, indent=1).encode("utf-8"))


class StatusWriter:
    """Rewrites the status of every stream a :class:`~streamface.ops.telemetry.Telemetry` knows.

    Parameters
    ----------
    store : str or PathLike
        The store the ingest was given (its base name when it rotates).
    telemetry : Telemetry
        Source of the counters.
    interval : float, default 5
        Seconds between two writes.
    clock : callable, default time.time
    current_store : callable, optional
        Returns the store being written now (a rotated one); default ``store``.

    Use as a context manager, or :meth:`start` / :meth:`close`. On a URL store it does
    nothing (see the module notes). ``close`` writes a last snapshot with ``running``
    false, so a clean end reads as ``finished`` rather than ``not running``.
    """

    def __init__(self, store, telemetry, interval: float = 5.0, *, clock: Callable[[], float] = time.time,
                 current_store: Callable[[], str] | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.store = os.fspath(store)
        self.telemetry = telemetry
        self.interval = float(interval)
        self.clock = clock
        self.current_store = current_store
        self.folder = status_dir(self.store)
        self.started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.folder is None:
            log.info("%s: no live status for a store at a URL (use the Prometheus metrics)", self.store)

    def write(self, running: bool = True, outcomes: dict[str, tuple[str, str]] | None = None) -> list[Path]:
        """Write every stream's snapshot now; returns the files written.

        Parameters
        ----------
        running : bool, default True
        outcomes : dict, optional
            With ``running`` false: ``{stream: (outcome, note)}``, outcome one of
            :data:`OUTCOMES`; a stream left out finished.
        """
        if self.folder is None:
            return []
        snapshot = self.telemetry.snapshot()
        common = {"version": STATUS_VERSION, "store": self.store, "host": socket.gethostname(),
                  "pid": os.getpid(), "started": self.started, "updated": self.clock(),
                  "interval": self.interval, "running": running,
                  "current_store": self.current_store() if self.current_store else self.store,
                  "process": snapshot["process"]}
        ends = {}
        for name in snapshot["streams"]:
            outcome, note = (outcomes or {}).get(name, ("finished", ""))
            if outcome not in OUTCOMES:
                raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
            ends[name] = {} if running else {"outcome": outcome, "note": note}
        # "*" holds what streams share (the batcher's queue), not a stream of its own.
        return [write_snapshot(self.folder, name, {**common, **ends[name], "stream": name, "counters": counters})
                for name, counters in snapshot["streams"].items() if name != "*"]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except OSError as exc:  # a full disk must not stop the ingest; the snapshot goes stale
                log.warning("%s: cannot write the live status: %s", self.store, exc)

    def start(self) -> StatusWriter:
        """Write once, then every ``interval`` seconds from a daemon thread. The snapshots of
        other streams, written by earlier runs, stay: they say how each of them ended."""
        if self.folder is not None and self._thread is None:
            self.write()
            self._thread = threading.Thread(target=self._loop, name="streamface-status", daemon=True)
            self._thread.start()
        return self

    def close(self, outcomes: dict[str, tuple[str, str]] | None = None) -> None:
        """Stop the thread and write the final snapshot (``running`` false) with each
        stream's ``(outcome, note)`` (see :meth:`write`; default: finished)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=max(5.0, self.interval))
            self._thread = None
            self.write(running=False, outcomes=outcomes)

    def __enter__(self) -> StatusWriter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class StatusReport:
    """One stream's snapshot and how it reads now."""

    stream: str
    state: str
    age: float
    snapshot: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "state": self.state, "age_s": round(self.age, 3), **{
            k: v for k, v in self.snapshot.items() if k != "stream"}}


def _state(snapshot: dict[str, Any], age: float, stale_after: float) -> str:
    if not snapshot.get("running", False):
        outcome = snapshot.get("outcome", "finished")  # older writers: a clean end
        return outcome if outcome in OUTCOMES else "finished"
    if snapshot.get("host") == socket.gethostname() and not pid_alive(int(snapshot.get("pid", -1))):
        return "not running"
    if age > stale_after:
        return "stale"
    return "running"


def read_status(store: str | os.PathLike, *, stale_after: float | None = None,
                now: float | None = None) -> list[StatusReport]:
    """The status snapshots of ``store``'s streams, judged at ``now``.

    Parameters
    ----------
    store : str or PathLike
        As given to the ingest (its base name when it rotates; a rotated store's name
        finds the status of its base).
    stale_after : float, optional
        Seconds after which a snapshot of a live pid counts as stale
        [default: 3 writing intervals, at least 10 s].
    now : float, optional
        Seconds since the epoch [default: the current time].

    Returns
    -------
    list of StatusReport
        Sorted by stream; empty when no ingest wrote a status for ``store``.

    Raises
    ------
    ValueError
        ``store`` is an fsspec URL (no status is kept there).
    """
    folder = status_dir(store)
    if folder is None:
        raise ValueError(f"{os.fspath(store)}: no live status for a store at a URL "
                         f"(read the ingest's Prometheus metrics instead)")
    base = base_of(store)
    if not folder.is_dir() and base is not None:
        folder = status_dir(base)  # a rotated store: its ingest writes the status under the base name
    now = time.time() if now is None else now
    reports = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            snapshot = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # removed meanwhile, or not ours: atomic writes never leave a torn snapshot
        if not isinstance(snapshot, dict) or snapshot.get("version") != STATUS_VERSION:
            continue
        age = max(0.0, now - float(snapshot.get("updated", 0.0)))
        limit = stale_after if stale_after is not None else max(3 * float(snapshot.get("interval", 5.0)), 10.0)
        reports.append(StatusReport(path.stem, _state(snapshot, age, limit), age, snapshot))
    return reports


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def format_status(store: str, reports: list[StatusReport]) -> str:
    """A plain-text table: one row per stream with its state, live counters and note.

    ``dropped`` counts kept frames of a live source dropped because inference was
    behind (the same in ``run`` and ``ingest``); the frames keyframe selection passed
    over (empty, blurred, similar) are not lost data and are in ``--json`` and the
    metrics (``frames_dropped_total{reason}``).
    """
    header = ("stream", "state", "pid", "updated (UTC)", "age", "frames", "keyframes", "faces",
              "reconnects", "dropped", "fps", "rss", "note")
    rows = [header]
    for r in reports:
        s, c = r.snapshot, r.snapshot.get("counters", {})
        rows.append((r.stream, r.state, str(s.get("pid", "?")), _iso(s.get("updated", 0.0)), f"{r.age:.0f}s",
                     str(c.get("frames_decoded", 0)), str(c.get("keyframes", 0)), str(c.get("faces", 0)),
                     str(c.get("reconnects", 0)), str(c.get("dropped", {}).get("queue_full", 0)),
                     f"{c.get('fps', 0.0):.1f}", _mib(s.get("process", {}).get("rss_bytes", 0)),
                     str(s.get("note", "")) if r.state not in ("running", "stale", "not running") else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"{store}: {len(reports)} streams"]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) if i < 4 or i == len(header) - 1 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(lines)
