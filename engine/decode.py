"""Decode frames from a source with PyAV: keyframes only (the seed's mode) or sampled.

::

    from streamface.engine.decode import VideoDecoder
    with VideoDecoder("clip.mp4") as decoder:          # keyframes only
        for frame in decoder:
            rgb = frame.rgb()                          # (H, W, 3) uint8, converted once
            frame.time_us, frame.pts, frame.index

Every frame carries a capture time in microseconds that increases monotonically:
the wall clock for live sources, and for files (and other sources with a duration) a
synthetic clock ``start_time_us + pts``, so that face ids are unique and the same on
every run over the same file. Live sources reconnect after errors, a stall, two
corrupt frames in a row, or their end, with capped exponential backoff; frames at or
before the last one handed out are skipped after a reconnect, so none is seen twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

import av
import numpy as np

from streamface.engine.sources import Source, SourceError, resolve_source

__all__ = ["DecodedFrame", "DecoderStats", "VideoDecoder", "open_container"]

log = logging.getLogger(__name__)

#: Live sources: a pts this many seconds before the last one handed out is a restarted
#: clock, not a repeat (an HLS window replays at most a minute or two after a reconnect).
PTS_RESET_S = 300.0


@dataclass
class DecodedFrame:
    """One decoded frame.

    Parameters
    ----------
    frame : av.VideoFrame
        The decoded frame (planes readable without a copy, e.g. by ``preprocess_batch``).
    index : int
        Position among the frames this decoder handed out (0, 1, 2...).
    pts : float
        Presentation time in seconds within the source (NaN when unknown).
    time_us : int
        Capture time, µs since the epoch (see the module docstring).
    key : bool
        Whether the frame is a keyframe.
    """

    frame: av.VideoFrame
    index: int
    pts: float
    time_us: int
    key: bool
    _rgb: np.ndarray | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        return self.frame.width

    @property
    def height(self) -> int:
        return self.frame.height

    def rgb(self) -> np.ndarray:
        """The frame as ``(H, W, 3)`` uint8 RGB (converted on first call, then cached)."""
        if self._rgb is None:
            self._rgb = self.frame.to_ndarray(format="rgb24")
        return self._rgb


@dataclass
class DecoderStats:
    """Counters of one decoder."""

    decoded: int = 0
    yielded: int = 0
    corrupt: int = 0
    reconnects: int = 0
    skipped_repeats: int = 0


def _av_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]


def open_container(source: Source, *, open_timeout: float = 15.0, read_timeout: float = 15.0,
                   live_start_index: int | None = None):
    """Open ``source`` with PyAV; one-line :class:`SourceError` when it is not a readable video.

    ``live_start_index``: HLS only, the playlist segment to start a live stream at
    (FFmpeg's option; its default -3 starts 3 segments before the end, 0 at the first
    segment the playlist still lists).
    """
    options = {}
    if live_start_index is not None:
        options["live_start_index"] = str(int(live_start_index))
    if source.headers:
        options["headers"] = "".join(f"{k}: {v}\r\n" for k, v in source.headers.items())
    if source.kind == "stream" and source.location.lower().startswith("rtsp"):
        options["rtsp_transport"] = "tcp"
    try:
        container = av.open(source.location, mode="r", options=options,
                            timeout=None if source.is_local else (open_timeout, read_timeout))
    except av.error.InvalidDataError:
        raise SourceError(f"{source.original}: not a video PyAV can read (wrong format or truncated)") from None
    except av.error.FFmpegError as exc:
        raise SourceError(f"{source.original}: cannot open ({_av_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"{source.original}: no video stream")
    return container


class VideoDecoder:
    """Iterate over the frames of a source.

    Parameters
    ----------
    source : str, PathLike or Source
        Path or URL (resolved with :func:`~streamface.engine.sources.resolve_source`).
    keyframes_only : bool, default True
        Decode keyframes only (``skip_frame = "NONKEY"``), the seed's mode.
    sample_fps : float or None, default None
        Instead of keyframes, hand out frames at most this often (in pts time);
        implies decoding every frame.
    max_frames : int or None
        Stop after handing out this many frames.
    duration : float or None
        Stop after this many seconds of source time (files) or wall time (live).
    start_time_us : int or None
        Files: capture time of pts 0 (default: the container's ``creation_time``,
        else the file's modification time). Ignored for live sources.
    after_time_us : int or None
        Skip frames whose capture time is at or before this (resume of a stream).
    reconnect : bool or None
        Reconnect after errors and at the end (default: for live sources only).
    reconnect_interval : int or None
        Live sources: reopen after this many frames (the seed's option).
    max_reconnects : int or None
        Give up after this many reconnects in a row without a frame (None: never).
    backoff : (float, float), default (0.5, 8)
        First and largest wait between reconnects, in seconds (doubling in between).
        The cap is short because a live playlist keeps only a window of recent
        segments (often 12-30 s): measured in ``benchmarks/soak.py``, a 30 s cap came
        back 12-14 s after a 20 s server outage ended, when the window had already
        moved past the outage.
    threads : int or None
        Decoder threads (None: FFmpeg's automatic count).
    stop_event : threading.Event, optional
        Set it (e.g. from a signal handler) to end the iteration after the current frame.
    """

    def __init__(self, source, *, keyframes_only: bool = True, sample_fps: float | None = None,
                 max_frames: int | None = None, duration: float | None = None,
                 start_time_us: int | None = None, after_time_us: int | None = None,
                 reconnect: bool | None = None, reconnect_interval: int | None = None,
                 max_reconnects: int | None = None, backoff: tuple[float, float] = (0.5, 8.0),
                 threads: int | None = None, open_timeout: float = 15.0,
                 read_timeout: float = 15.0, stop_event: threading.Event | None = None) -> None:
        if sample_fps is not None and not sample_fps > 0:
            raise ValueError(f"sample_fps must be > 0, got {sample_fps}")
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        if duration is not None and not duration > 0:
            raise ValueError(f"duration must be > 0, got {duration}")
        if backoff[0] <= 0 or backoff[1] < backoff[0]:
            raise ValueError(f"backoff must be (first > 0, largest >= first), got {backoff}")
        self.source = source if isinstance(source, Source) else resolve_source(source)
        self.keyframes_only = keyframes_only and sample_fps is None
        self.sample_fps = sample_fps
        self.max_frames = max_frames
        self.duration = duration
        self.after_time_us = after_time_us
        self.reconnect_interval = reconnect_interval
        self.max_reconnects = max_reconnects
        self.backoff = backoff
        self.threads = threads
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.stop_event = stop_event or threading.Event()
        self.stats = DecoderStats()
        self._container = open_container(self.source, open_timeout=open_timeout,
                                         read_timeout=read_timeout)
        stream = self._container.streams.video[0]
        live = self.source.live
        if live is None:
            live = not self.source.is_local and self._container.duration is None
        self.live = bool(live)
        self._hls = "hls" in (self._container.format.name or "")
        self.reconnect = self.live if reconnect is None else bool(reconnect)
        self.width = stream.codec_context.width
        self.height = stream.codec_context.height
        self.fps = float(stream.average_rate) if stream.average_rate else None
        self.source_duration = (self._container.duration / 1e6
                                if self._container.duration is not None else None)
        self.start_time_us = (int(start_time_us) if start_time_us is not None
                              else self._default_start_us())
        self._last_pts: float | None = None
        self._last_time_us: int | None = None
        self._past_duration = False
        self._interval_reopen = False

    def _default_start_us(self) -> int:
        created = self._container.metadata.get("creation_time")
        if created:
            try:
                return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() * 1e6)
            except ValueError:
                pass
        if self.source.is_local:
            return int(os.stat(self.source.location).st_mtime * 1e6)
        return int(time.time() * 1e6)

    # ---- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[DecodedFrame]:
        started = time.monotonic()
        failures = 0
        while not self.stop_event.is_set():
            if self._container is None:
                if not self._reopen(failures):
                    return
            self._interval_reopen = False
            try:
                for frame in self._frames(started):
                    failures = 0
                    yield frame
                    if self._done(started):
                        return
                ended, error = True, None
            except (av.error.FFmpegError, OSError) as exc:
                ended, error = False, exc
            finally:
                # A live source that now has a duration (an HLS playlist with
                # #EXT-X-ENDLIST after a reconnect) is over once read to its end.
                finished = (self.live and self._container is not None
                            and self._container.duration is not None)
                if self._container is not None and (self._done(started) or self.stop_event.is_set()):
                    self.close()
            if self._done(started) or self.stop_event.is_set():
                return
            if ended and finished and not self._interval_reopen:
                log.info("%s: live stream finished", self.source.original)
                self.close()
                return
            if not self.reconnect:
                if error is not None:
                    raise SourceError(f"{self.source.original}: read error after "
                                      f"{self.stats.yielded} frames ({_av_reason(error)})") from None
                return
            if error is not None:
                log.warning("%s: %s; reconnecting", self.source.original, _av_reason(error))
            elif ended:
                log.info("%s: stream ended or reopened; reconnecting", self.source.original)
            self.close()
            failures += 1

    def _done(self, started: float) -> bool:
        if self.max_frames is not None and self.stats.yielded >= self.max_frames:
            return True
        if self.duration is not None:
            if self.live:
                return time.monotonic() - started >= self.duration
            return self._past_duration
        return False

    def _frames(self, started: float) -> Iterator[DecodedFrame]:
        stream = self._container.streams.video[0]
        ctx = stream.codec_context
        if self.keyframes_only:
            ctx.skip_frame = "NONKEY"
        if self.threads is None:
            stream.thread_type = "AUTO"
        else:
            ctx.thread_count = self.threads
            stream.thread_type = "AUTO" if self.threads != 1 else "SLICE"
        time_base = float(stream.time_base) if stream.time_base else None
        corrupt_run = 0
        since_open = 0
        next_sample = None
        for frame in self._container.decode(stream):
            self.stats.decoded += 1
            if getattr(frame, "is_corrupt", False):
                self.stats.corrupt += 1
                corrupt_run += 1
                if corrupt_run >= 2:  # the seed ends the connection on two corrupt frames in a row
                    raise av.error.InvalidDataError(1094995529, "two corrupt frames in a row")
                continue
            corrupt_run = 0
            pts = float(frame.pts * time_base) if frame.pts is not None and time_base else float("nan")
            if self._last_pts is not None and not np.isnan(pts) and pts <= self._last_pts:
                if self.live and pts + PTS_RESET_S < self._last_pts:
                    self._last_pts = None  # the server restarted its clock (e.g. an RTSP camera)
                else:
                    self.stats.skipped_repeats += 1
                    continue
            if (not self.live and self.duration is not None and not np.isnan(pts)
                    and pts >= self.duration):
                self._past_duration = True
                return
            if self.sample_fps is not None and not np.isnan(pts):
                if next_sample is not None and pts < next_sample - 1e-6:
                    continue
                next_sample = (pts if next_sample is None else next_sample) + 1.0 / self.sample_fps
            if self.live:
                time_us = int(time.time() * 1e6)
            else:
                time_us = self.start_time_us + int(round((0.0 if np.isnan(pts) else pts) * 1e6))
            if self._last_time_us is not None and time_us <= self._last_time_us:
                time_us = self._last_time_us + 1  # keep capture times strictly increasing
            if self.after_time_us is not None and time_us <= self.after_time_us:
                self.stats.skipped_repeats += 1
                if not np.isnan(pts):
                    self._last_pts = pts
                continue
            if not np.isnan(pts):
                self._last_pts = pts
            self._last_time_us = time_us
            decoded = DecodedFrame(frame, self.stats.yielded, pts, time_us, bool(frame.key_frame))
            self.stats.yielded += 1
            since_open += 1
            yield decoded
            if self._done(started) or self.stop_event.is_set():
                return
            if self.live and self.reconnect_interval and since_open >= self.reconnect_interval:
                self._interval_reopen = True
                return  # the seed reopens live streams every reconnect_interval frames

    def _reopen(self, failures: int) -> bool:
        """Open the source again after ``failures`` failed tries; False when giving up or stopped."""
        while not self.stop_event.is_set():
            if self.max_reconnects is not None and failures > self.max_reconnects:
                raise SourceError(f"{self.source.original}: gave up after {failures - 1} reconnects")
            wait = min(self.backoff[1], self.backoff[0] * 2 ** max(0, failures - 1))
            if self.stop_event.wait(wait):
                return False
            self.stats.reconnects += 1
            try:
                self._container = open_container(self.source, open_timeout=self.open_timeout,
                                                 read_timeout=self.read_timeout,
                                                 live_start_index=self._reopen_start_index())
                return True
            except SourceError as exc:
                log.warning("%s", exc)
                failures += 1
        return False

    def _reopen_start_index(self) -> int | None:
        # A live HLS stream is read again from the first segment its playlist still
        # lists, so the segments published during an outage are not lost (FFmpeg starts
        # 3 segments before the end); the repeats are skipped by pts.
        return 0 if self.live and self._hls else None

    # ---- resources ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the container (idempotent)."""
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
