"""What the streams of an ingest did: live counters per stream, and the summary of a run.

Read for progress while an ingest runs (the CLI's bar, the Prometheus metrics, the live
status files), summed over the lives of a Ray actor, and printed at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["IngestSummary", "StreamCounters"]


@dataclass
class StreamCounters:
    """What one stream of an ingest did (updated live; read them for progress).

    Attributes
    ----------
    frames : int
        Decoded frames handed out by the decoder.
    keyframes : int
        Kept frames committed to the store.
    faces : int
        Faces committed.
    reconnects : int
        Reopenings of the source.
    dropped : int
        Kept frames of a live source dropped because inference was behind.
    empty, blurred, similar : int
        Decoded frames keyframe selection passed over (as ``streamface run`` counts them).
    latency_s, latency_max_s : float
        Mean and largest seconds from a kept frame's decoding to its commit.
    error : str or None
        One line when the stream failed.
    truncated : str or None
        ``"truncated at 16.0 s of 55.0 s"`` when a file was cut short (what decoded is stored).
    stored : tuple of (str, int, int) or None
        ``(location, frames, faces)``: what the stream's group in the store at
        ``location`` holds, as of its opening and each commit since (None: not opened).
        Lets Ray count what an actor that died committed after it last reported.
    """

    name: str
    frames: int = 0
    keyframes: int = 0
    faces: int = 0
    reconnects: int = 0
    dropped: int = 0
    empty: int = 0
    blurred: int = 0
    similar: int = 0
    latency_s: float = 0.0
    latency_max_s: float = 0.0
    error: str | None = None
    truncated: str | None = None
    seconds: float = 0.0
    stored: tuple[str, int, int] | None = None

    def committed(self, batch) -> None:
        """Count a stored :class:`~streamface.ingest.batch_commit.BatchCommit`: its faces, and the
        latency of each of its frames from decoding to commit."""
        now = time.monotonic()
        self.faces += len(batch.faces)
        if self.stored is not None:
            location, frames, faces = self.stored
            self.stored = (location, frames + len(batch.candidates), faces + len(batch.faces))
        self.add_latency([now - c.item.decoded_at for c in batch.candidates])

    def add_latency(self, seconds: list[float]) -> None:
        if seconds:
            total = self.latency_s * self.keyframes + sum(seconds)
            self.keyframes += len(seconds)
            self.latency_s = total / self.keyframes
            self.latency_max_s = max(self.latency_max_s, max(seconds))

    def line(self) -> str:
        done = (f"{self.frames} frames, {self.keyframes} keyframes, {self.faces} faces, "
                f"{self.reconnects} reconnects, {self.dropped} dropped")
        if self.error is not None:
            return f"{self.name}: FAILED: {self.error} (after {done})"
        return (f"{self.name}: {done}, {self.seconds:.1f} s, "
                f"latency {self.latency_s:.2f} s (max {self.latency_max_s:.2f} s)"
                + (f"; {self.truncated}, what decoded is stored" if self.truncated else ""))


@dataclass
class IngestSummary:
    """What an ingest did: one :class:`StreamCounters` per stream, in the order given."""

    streams: list[StreamCounters]
    store: str
    seconds: float
    load_seconds: float = 0.0
    warnings: list = field(default_factory=list)
    #: Stopped by :meth:`Ingest.stop` (SIGINT/SIGTERM) before the streams ended.
    interrupted: bool = False

    @property
    def failed(self) -> list[StreamCounters]:
        return [s for s in self.streams if s.error is not None]

    @property
    def truncated(self) -> list[StreamCounters]:
        """Streams whose file was cut short."""
        return [s for s in self.streams if s.truncated is not None and s.error is None]

    def lines(self) -> list[str]:
        """One line per stream, then a total line."""
        frames = sum(s.frames for s in self.streams)
        faces = sum(s.faces for s in self.streams)
        rate = frames / self.seconds if self.seconds > 0 else 0.0
        ok = len(self.streams) - len(self.failed) - len(self.truncated)
        total = ("interrupted: what was processed is stored, run again to continue; "
                 if self.interrupted else "")
        total += (f"{ok}/{len(self.streams)} streams ok"
                  + (f", {len(self.truncated)} truncated" if self.truncated else "") + ": "
                 f"{frames} frames, {sum(s.keyframes for s in self.streams)} keyframes, "
                 f"{faces} faces, {self.seconds:.1f} s ({rate:.1f} fps; models loaded in "
                 f"{self.load_seconds:.1f} s) -> {self.store}")
        total += "".join(f"; warning: {w}" for w in self.warnings)
        return [s.line() for s in self.streams] + [total]
