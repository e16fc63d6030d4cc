"""What a long-running ingest shows the outside: logs, Prometheus metrics and a live status.

:class:`Monitoring` sets up, for one ``streamface run`` or ``ingest``, the log files
(:mod:`streamface.ops.structured_logs`), the metrics exporter
(:class:`~streamface.ops.telemetry.Telemetry`, when a port is given) and the status
snapshots that ``streamface status`` reads (:class:`~streamface.ops.live_status.StatusWriter`),
and tears them down in reverse order, a last snapshot marking the run finished.
The job reports through :meth:`Monitoring.record` (ingest counters) or
:meth:`Monitoring.record_frame` (the single-stream pipeline's running totals).
"""

from __future__ import annotations

import logging
from pathlib import Path

from streamface.ops.live_status import StatusWriter
from streamface.ops.structured_logs import LogConfig, close_logging, configure_logging, log_event
from streamface.ops.telemetry import Telemetry

__all__ = ["Monitoring"]

log = logging.getLogger(__name__)


class Monitoring:
    """Logs, metrics and live status around one run.

    Parameters
    ----------
    store : path or URL
        The store being written (status snapshots go beside a local one).
    streams : list of str
        Stream names (one log file and one status snapshot each).
    log_config : LogConfig or None, default None
        None: leave logging as it is.
    metrics_address : (str, int) or None, default None
        Serve Prometheus metrics on this host and port (0: any free port).
    status_interval : float, default 5
        Seconds between two status snapshots.
    """

    def __init__(self, store, streams: list[str], *, log_config: LogConfig | None = None,
                 metrics_address: tuple[str, int] | None = None, status_interval: float = 5.0) -> None:
        self.store = str(store)
        self.streams = list(streams)
        self.log_config = log_config
        self.metrics_address = metrics_address
        self.status_interval = status_interval
        self.telemetry = Telemetry()
        self.server = None
        self._status: StatusWriter | None = None
        self._outcomes: dict[str, tuple[str, str]] = {}

    @property
    def metrics_url(self) -> str | None:
        """Where the exporter serves, once started."""
        return self.server.url if self.server is not None else None

    def __enter__(self) -> Monitoring:
        if self.log_config is not None:
            local = "://" not in self.store
            configure_logging(self.log_config, streams=self.streams,
                              default_dir=Path(self.store).expanduser().resolve().parent / "logs" if local else None)
        self.telemetry.watch_store(self.store)
        for name in self.streams:
            self.telemetry.stream(name)
        try:
            if self.metrics_address is not None:
                self.server = self.telemetry.serve(*self.metrics_address)
                log_event(log, "metrics_served", url=self.server.url)
            self._status = StatusWriter(self.store, self.telemetry, self.status_interval).start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def finish(self, outcomes: dict[str, tuple[str, str]]) -> None:
        """How each stream ended, for the last status snapshot: ``{stream: (outcome, note)}``
        (see :data:`streamface.ops.live_status.OUTCOMES`); a stream left out finished, or failed
        when the block ends on an exception."""
        self._outcomes.update(outcomes)

    def __exit__(self, kind=None, exc=None, tb=None) -> None:
        if self._status is not None:
            outcomes = dict(self._outcomes)
            if exc is not None:
                note = (str(exc) or type(exc).__name__).splitlines()[0]
                for name in self.streams:
                    outcomes.setdefault(name, ("interrupted", "") if isinstance(exc, KeyboardInterrupt)
                                        else ("failed", note))
            self._status.close(outcomes)
            self._status = None
        if self.server is not None:
            self.server.close()
        if self.log_config is not None:
            close_logging()

    def record(self, counters, queue_depth: dict[str, int] | None = None) -> None:
        """An ingest's live :class:`~streamface.ingest.multi_stream.StreamCounters` (and queue depths)."""
        self.telemetry.record(counters)
        for key, depth in (queue_depth or {}).items():
            queue, _, stream = key.partition("/")  # "inference" (shared) or "commits/<stream>"
            self.telemetry.stream(stream or "*").queue_depth(queue).set(depth)

    def record_batch(self, stage: str, size: int, seconds: float) -> None:
        """One model call of the shared inference worker (``Ingest(on_batch=...)``)."""
        shared = self.telemetry.stream("*")
        shared.batch_size(stage).observe(size)
        shared.model_latency(stage).observe(seconds)

    def record_run(self, summary) -> None:
        """A finished single-stream run (:class:`~streamface.ingest.run.PipelineSummary`): the
        last snapshot holds what was stored, not the count at the last decoded frame."""
        c = summary.capture
        self.telemetry.stream(c.stream).update(c.decoded, c.kept, summary.extraction.faces, c.reconnects,
                                             empty=c.empty, blurred=c.blurred, similar=c.similar)

    def record_frame(self, stream: str, stats, counts, faces: int) -> None:
        """The single-stream pipeline's running totals (``Pipeline.call(on_frame=...)``)."""
        self.telemetry.stream(stream).update(
            stats.yielded, counts.kept, faces, stats.reconnects, empty=counts.empty,
            blurred=counts.blurred, similar=max(0, counts.similar - getattr(counts, "replaced", 0)))
