"""Operations metrics of a running ingest, exported in the Prometheus text format.

One :class:`Telemetry` object per process holds a private
``prometheus_client.CollectorRegistry`` (no module-level registry, so tests and
several ingests in one process never share counters) and is passed to whatever
records something. Per-stream instruments are bound once by
:meth:`Telemetry.stream`, so the hot path is a bound child's ``inc()``/``set()``
(one lock, no label lookup).

Why ``prometheus_client`` and not a hand-written exporter: it is a small pure-Python
package without dependencies, its exposition output is the reference for the format
(escaping, histogram ``_bucket``/``_sum``/``_count``, ``# HELP``/``# TYPE``), it
ships the standard ``process_*`` collector dashboards expect, and it takes an
explicit registry everywhere, so it fits "no global state".

Metrics (all prefixed ``streamface_``)::

    frames_decoded_total{stream}          counter
    keyframes_total{stream}               counter
    faces_total{stream}                   counter
    reconnects_total{stream}              counter
    frames_dropped_total{stream,reason}   counter  reason: empty, blurred, similar, queue_full
    fps{stream}                           gauge    decoded frames per second, ~1 s window
    queue_depth{stream,queue}             gauge
    batch_size{stream,stage}              histogram
    model_latency_seconds{stream,model}   histogram
    process_rss_bytes                     gauge    resident memory of this process
    store_bytes{store}                    gauge    bytes on disk, recomputed at most every ``store_interval`` s

plus ``process_*`` (CPU seconds, open fds, start time, RSS) from
``prometheus_client.ProcessCollector`` where ``/proc`` exists. A batch that mixes
streams (cross-stream inference) is recorded under ``stream="*"``.

>>> telemetry = Telemetry()
>>> news = telemetry.stream("news")
>>> news.keyframes.inc()
>>> news.model_latency("sface").observe(0.012)
>>> telemetry.snapshot()["streams"]["news"]["keyframes"]
1
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import click
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server

__all__ = ["MetricsServer", "StreamMetrics", "Telemetry", "metrics_options", "resident_memory_bytes"]

DROP_REASONS = ("empty", "blurred", "similar", "queue_full")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Model calls run from ~1 ms (SFace on one face, GPU) to seconds (a large CPU batch).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SNAPSHOT_COUNTERS = ("frames_decoded", "keyframes", "faces", "reconnects")


def resident_memory_bytes() -> int:
    """Resident set size of this process in bytes (``/proc/self/statm``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


@dataclass
class StreamMetrics:
    """The instruments of one stream, bound to its label (hot-path handles).

    Attributes
    ----------
    frames_decoded, keyframes, faces, reconnects : prometheus_client Counter children
        ``.inc(n=1)``.
    fps : Gauge child
        Set by :meth:`update` from the decoded-frame count (or ``.set()`` directly).
    """

    name: str
    frames_decoded: Any
    keyframes: Any
    faces: Any
    reconnects: Any
    fps: Any
    _telemetry: Telemetry

    def __post_init__(self) -> None:
        self._dropped = {r: self._telemetry._dropped.labels(self.name, r) for r in DROP_REASONS}
        self._last = {"decoded": 0, "kept": 0, "faces": 0, "reconnects": 0,
                      "empty": 0, "blurred": 0, "similar": 0, "queue_full": 0}
        self._window = (self._telemetry._clock(), 0)
        self._update_lock = threading.Lock()

    def dropped(self, reason: str):
        """Counter child of frames dropped for ``reason`` (one of ``DROP_REASONS``)."""
        child = self._dropped.get(reason)
        if child is None:
            raise ValueError(f"reason must be one of {DROP_REASONS}, got {reason!r}")
        return child

    def queue_depth(self, queue: str):
        """Gauge child of the depth of ``queue`` (e.g. ``"decoded"``, ``"inference"``)."""
        return self._telemetry._queue_depth.labels(self.name, queue)

    def batch_size(self, stage: str):
        """Histogram child of the batch sizes of ``stage`` (``"detection"``, ``"embedding"``...)."""
        return self._telemetry._batch_size.labels(self.name, stage)

    def model_latency(self, model: str):
        """Histogram child of the seconds one call of ``model`` takes."""
        return self._telemetry._model_latency.labels(self.name, model)

    def update(self, decoded: int, kept: int, faces: int, reconnects: int = 0, *,
               empty: int = 0, blurred: int = 0, similar: int = 0, queue_full: int = 0) -> None:
        """Bring the counters up to cumulative totals (what the stages' callbacks report).

        ``Pipeline.call(on_frame=...)`` hands ``(decoder_stats, selection_counts, faces)``
        with running totals; this turns them into counter increments and refreshes
        ``fps`` about once a second. A total that goes down is a restarted stage counting
        from zero, so all of it is new (Prometheus' own counter-reset rule): the counters
        keep counting new work and never decrease. Safe to call from
        several threads.
        """
        totals = {"decoded": decoded, "kept": kept, "faces": faces, "reconnects": reconnects,
                  "empty": empty, "blurred": blurred, "similar": similar, "queue_full": queue_full}
        targets = {"decoded": self.frames_decoded, "kept": self.keyframes, "faces": self.faces,
                   "reconnects": self.reconnects, **self._dropped}
        with self._update_lock:  # the last totals and the fps window change together
            for key, total in totals.items():
                # Below the last total: counted anew from zero, so all of it is new work.
                delta = total - self._last[key] if total >= self._last[key] else total
                if delta > 0:
                    targets[key].inc(delta)
                self._last[key] = total
            now = self._telemetry._clock()
            since, frames = self._window
            if decoded < frames:
                self._window = (now, decoded)
            elif now - since >= 1.0:
                self.fps.set(max(0, decoded - frames) / (now - since))
                self._window = (now, decoded)


class _StoreBytes:
    """Collector of ``streamface_store_bytes``: stores are walked at scrape time, not on the
    hot path, and at most every ``interval`` seconds (a months-long store has many files)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stores: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def watch(self, location: str) -> None:
        with self._lock:
            self._stores.setdefault(str(location), (float("-inf"), 0))

    def collect(self):
        from streamface.store.store import Location

        family = GaugeMetricFamily("streamface_store_bytes", "Bytes the face store occupies.",
                                   labels=["store"])
        with self._lock:
            now = time.monotonic()
            for location, (when, size) in list(self._stores.items()):
                if now - when >= self.interval:
                    try:
                        size = Location.parse(location).nbytes()
                    except Exception:  # noqa: BLE001 - an unreachable store must not break the scrape
                        pass
                    self._stores[location] = (now, size)
                family.add_metric([location], size)
        yield family


class MetricsServer:
    """The HTTP exporter thread: ``GET /metrics`` on ``host:port``. Use :meth:`Telemetry.serve`."""

    def __init__(self, httpd, thread: threading.Thread) -> None:
        self._httpd, self._thread = httpd, thread

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when 0 was asked for)."""
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Telemetry:
    """A registry of the ingest's metrics; pass the one object to everything that records.

    Parameters
    ----------
    store_interval : float, default 60
        Seconds between two walks of a watched store for ``streamface_store_bytes``.
    process : bool, default True
        Also export the standard ``process_*`` metrics (Linux ``/proc``).
    clock : callable, default time.monotonic
        Seconds, for the ``fps`` window; injected by tests.
    """

    def __init__(self, *, store_interval: float = 60.0, process: bool = True, clock=time.monotonic) -> None:
        if not store_interval >= 0:
            raise ValueError(f"store_interval must be >= 0 seconds, got {store_interval!r}")
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._frames = Counter("streamface_frames_decoded", "Frames decoded.", ["stream"], registry=r)
        self._keyframes = Counter("streamface_keyframes", "Keyframes kept.", ["stream"], registry=r)
        self._faces = Counter("streamface_faces", "Faces stored.", ["stream"], registry=r)
        self._reconnects = Counter("streamface_reconnects", "Source reconnects.", ["stream"], registry=r)
        self._dropped = Counter("streamface_frames_dropped", "Frames dropped, by reason.",
                                ["stream", "reason"], registry=r)
        self._fps = Gauge("streamface_fps", "Decoded frames per second (about 1 s window).",
                          ["stream"], registry=r)
        self._queue_depth = Gauge("streamface_queue_depth", "Items waiting in a queue.",
                                  ["stream", "queue"], registry=r)
        self._batch_size = Histogram("streamface_batch_size", "Items per batch of a stage.",
                                     ["stream", "stage"], buckets=BATCH_BUCKETS, registry=r)
        self._model_latency = Histogram("streamface_model_latency_seconds", "Seconds per model call.",
                                        ["stream", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self._rss = Gauge("streamface_process_rss_bytes", "Resident memory of the process.", registry=r)
        self._rss.set_function(resident_memory_bytes)
        self._store_bytes = _StoreBytes(store_interval)
        r.register(self._store_bytes)
        if process and os.path.isdir("/proc/self"):
            ProcessCollector(registry=r)
        self._streams: dict[str, StreamMetrics] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def stream(self, name: str) -> StreamMetrics:
        """The bound instruments of stream ``name`` (created on first use, then cached)."""
        metrics = self._streams.get(name)
        if metrics is None:
            with self._lock:
                metrics = self._streams.get(name)
                if metrics is None:
                    metrics = StreamMetrics(name, self._frames.labels(name), self._keyframes.labels(name),
                                            self._faces.labels(name), self._reconnects.labels(name),
                                            self._fps.labels(name), self)
                    self._streams[name] = metrics
        return metrics

    @property
    def streams(self) -> list[str]:
        """Names of the streams recorded so far."""
        return sorted(self._streams)

    def record(self, counters) -> None:
        """Bring every stream up to an ingest's live counters (``Ingest.call``'s ``on_progress``).

        Parameters
        ----------
        counters : iterable
            Objects with ``name, frames, keyframes, faces, reconnects, dropped`` running
            totals (:class:`streamface.ingest.multi_stream.StreamCounters`); ``dropped`` counts as
            ``reason="queue_full"`` (kept frames dropped while inference was behind), and
            ``empty``, ``blurred``, ``similar`` where they have them (the frames keyframe
            selection passed over, as ``streamface run`` reports them).
        """
        for c in counters:
            self.stream(c.name).update(c.frames, c.keyframes, c.faces, c.reconnects,
                                       queue_full=getattr(c, "dropped", 0), empty=getattr(c, "empty", 0),
                                       blurred=getattr(c, "blurred", 0), similar=getattr(c, "similar", 0))

    def watch_store(self, location) -> None:
        """Export ``streamface_store_bytes{store=location}`` (a local path or fsspec URL)."""
        self._store_bytes.watch(str(location))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Serve ``/metrics`` from a daemon thread; ``port=0`` picks a free port.

        Returns
        -------
        MetricsServer
            ``.port`` is the bound port; ``.close()`` stops it.

        Raises
        ------
        OSError
            The address cannot be bound (in use, no such interface).
        """
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in [0, 65535], got {port!r}")
        httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(httpd, thread)

    def snapshot(self) -> dict[str, Any]:
        """Current values, per stream, as plain JSON-ready numbers (for the status file).

        Returns
        -------
        dict
            ``{"streams": {name: {"frames_decoded", "keyframes", "faces", "reconnects": int,
            "dropped": {reason: int}, "fps": float, "queue_depth": {queue: float}}},
            "process": {"rss_bytes": int}}``
        """
        streams: dict[str, dict[str, Any]] = {
            name: {**{k: 0 for k in SNAPSHOT_COUNTERS}, "dropped": {r: 0 for r in DROP_REASONS},
                   "fps": 0.0, "queue_depth": {}} for name in self.streams}
        counters = {f"streamface_{k}_total": k for k in SNAPSHOT_COUNTERS}
        for family in (self._frames, self._keyframes, self._faces, self._reconnects, self._dropped,
                       self._fps, self._queue_depth):
            for metric in family.collect():
                for sample in metric.samples:
                    entry = streams.get(sample.labels.get("stream"))
                    if entry is None:
                        continue
                    if sample.name in counters:
                        entry[counters[sample.name]] = int(sample.value)
                    elif sample.name == "streamface_frames_dropped_total":
                        entry["dropped"][sample.labels["reason"]] = int(sample.value)
                    elif sample.name == "streamface_fps":
                        entry["fps"] = round(sample.value, 3)
                    elif sample.name == "streamface_queue_depth":
                        entry["queue_depth"][sample.labels["queue"]] = sample.value
        return {"streams": streams, "process": {"rss_bytes": resident_memory_bytes()}}


def metrics_options(func):
    """Click options ``--metrics-host`` and ``--metrics-port``, handed to the command as
    ``metrics_address``: ``(host, port)``, or None when no exporter was asked for."""
    options = [
        click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
                     help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port, "
                     "logged) [default: no exporter]."),
        click.option("--metrics-host", default="127.0.0.1",
                     help="Interface of the metrics exporter (0.0.0.0 exposes it to the network)."),
    ]

    @functools.wraps(func)
    def command(*args, **kwargs):
        host, port = kwargs.pop("metrics_host"), kwargs.pop("metrics_port")
        kwargs["metrics_address"] = None if port is None else (host, port)
        return func(*args, **kwargs)

    for option in reversed(options):
        command = option(command)
    return command
