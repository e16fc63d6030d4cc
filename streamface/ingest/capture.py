"""Stage 1, frame collection (docs/stages.md §1): keyframes of a video or stream into the store.

>>> from streamface.ingest.capture import StreamCapture
>>> capture = StreamCapture(name="skynews", url="clip.mp4", output_dir="data/skynews")  # doctest: +SKIP
>>> capture.call()                                                                     # doctest: +SKIP
CaptureSummary(decoded=31, kept=24, ...)

The source is decoded (keyframes only, as the seed did, or sampled at ``sample_fps``),
each frame goes through the seed's keyframe selection
(:class:`~streamface.ingest.keyframes.KeyframeSelector`) and kept frames are encoded (JPEG by
default, or PNG) into ``<output_dir>/streamface.zarr`` under the stream ``name``,
committed every ``batch_size`` decoded frames. A file is read to its end; a live
source runs until ``duration``, ``max_frames`` or :meth:`StreamCapture.stop`.
Running again on the same stream continues after its last stored frame.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

try:
    import simplejpeg
except ImportError:  # installed without its dependencies: Pillow encodes
    simplejpeg = None

from streamface.checks import check_int
from streamface.engine.decode import VideoDecoder
from streamface.engine.sources import SourceError
from streamface.ingest.file_source import declared_duration, video_data_end
from streamface.ingest.keyframes import Candidate, KeyframeSelector
from streamface.ingest.loop import select_keyframes
from streamface.ingest.session import SourceRecord, StreamSession, settle_source, source_record
from streamface.store import FaceStore, FrameRecords, validate_stream_name
from streamface.store.names import STORE_NAME, store_path

__all__ = ["CaptureSummary", "STORE_NAME", "SourceRecord", "StreamCapture", "Truncation", "append_frames",
           "attach_log_file", "encode_frame", "frame_records", "settle_source", "source_record", "store_path"]

#: Frames decoded and converted to RGB ahead of the selection, on a thread of their own.
READ_AHEAD_FRAMES = 4

log = logging.getLogger(__name__)

IMAGE_FORMATS = ("jpeg", "png")
#: A file whose video data ends more than this many seconds before the length its
#: header announces was cut short (packet durations and audio tracks make a complete
#: file's two ends differ by a frame or two).
TRUNCATION_TOLERANCE_S = 1.0


def encode_frame(rgb: np.ndarray, image_format: str = "jpeg", quality: int = 95) -> bytes:
    """Encode an RGB frame as JPEG (``quality``, 4:2:0) or PNG (compress level 1: fast, lossless).

    JPEG goes straight from the array to libjpeg-turbo (simplejpeg, a dependency): the
    same codec and quality tables as Pillow's, without its image copy and colour
    conversion, about a third less CPU a 1080p frame (benchmarks/bench_pipeline.py
    --cpu-budget). Where simplejpeg is not installed (a tree installed without its
    dependencies), Pillow encodes as before.
    """
    buf = io.BytesIO()
    if image_format == "jpeg":
        if simplejpeg is not None:
            return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=int(quality),
                                          colorspace="RGB", colorsubsampling="420")
        Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def frame_records(kept: list[Candidate], image_format: str | None, quality: int = 95) -> FrameRecords:
    """Store rows of kept frames (``Candidate.item`` is a ``DecodedFrame``)."""
    return FrameRecords(
        time_us=np.array([c.item.time_us for c in kept], np.int64),
        width=np.array([c.rgb.shape[1] for c in kept], np.int32),
        height=np.array([c.rgb.shape[0] for c in kept], np.int32),
        pts=np.array([c.item.pts for c in kept], np.float64),
        source_index=np.array([c.item.index for c in kept], np.int64),
        blur=np.array([c.blur for c in kept], np.float32),
        emptiness=np.array([c.emptiness for c in kept], np.float32),
        similarity=np.array([c.similarity for c in kept], np.float32),
        images=None if image_format is None else [encode_frame(c.rgb, image_format, quality)
                                                  for c in kept],
    )


@dataclass
class CaptureSummary:
    """What a capture did."""

    stream: str
    store: str
    decoded: int
    kept: int
    empty: int
    blurred: int
    similar: int
    replaced: int
    reconnects: int
    seconds: float
    truncated: Truncation | None = None
    interrupted: bool = False

    def line(self) -> str:
        fps = self.decoded / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.stream}: {self.decoded} frames decoded, {self.kept} keyframes kept "
                f"(dropped {self.empty} empty, {self.blurred} blurred, {self.similar} similar; "
                f"{self.replaced} replaced by a sharper twin), "
                f"{self.reconnects} reconnects, {self.seconds:.1f} s ({fps:.1f} fps) -> {self.store}"
                + self.outcome_note())

    def outcome_note(self) -> str:
        """``"; interrupted ..."`` or ``"; truncated at ..."`` when the source was not read to its end."""
        if self.interrupted:
            return "; interrupted: what was processed is stored, run again to continue"
        if self.truncated is not None:
            return f"; {self.truncated.text()}, what decoded is stored"
        return ""


@dataclass(frozen=True)
class Truncation:
    """A file whose data ends before the length its header announces.

    Attributes
    ----------
    at_s : float
        Seconds of video the file really holds.
    declared_s : float or None
        Seconds its header announces.
    """

    at_s: float
    declared_s: float | None = None

    def text(self) -> str:
        """E.g. ``"truncated at 16.0 s of 55.0 s"``."""
        of = f" of {self.declared_s:.1f} s" if self.declared_s is not None else ""
        return f"truncated at {self.at_s:.1f} s{of}"


class StreamCapture:
    """Collect distinct, sharp keyframes of a video or stream into the store.

    Parameters
    ----------
    name : str
        Stream name: the store group and the frame-name prefix (``[A-Za-z0-9._-]``).
    url : str
        Local path, http(s)/HLS URL, rtsp/rtmp URL or page URL (via yt-dlp).
    output_dir : path
        Where ``streamface.zarr`` (and ``logs/``) live.
    batch_size : int, default 50
        Commit kept frames every this many decoded frames.
    empty_threshold, blur_threshold, similarity_threshold : float, default 0.95, 50, 0.9
        The seed's keyframe rules.
    reconnect_interval : int, default 500
        Live sources: reopen every this many frames (the seed's behaviour).
    log_interval : int, default 100
        Log progress every this many decoded frames.
    image_format : {"jpeg", "png"}, default "jpeg"
        Encoding of the kept frames.
    jpeg_quality : int, default 95
    keyframes_only : bool, default True
    sample_fps : float or None
        Sample frames at this rate instead of decoding keyframes only.
    max_frames : int or None
        Stop after this many decoded frames.
    duration : float or None
        Stop after this many seconds (source time for files, wall time for live).
    prefer_sharper : bool, default True
        See :mod:`streamface.ingest.keyframes`.
    aligned_size : int, default 128
        Aligned-crop size of the stream when capture creates it (the seed's 128).
    threads : int or None
        Decoder threads (None: FFmpeg's automatic count).
    kernel_threads : int or None, default 1
        Threads of the keyframe-score kernels (see :class:`~streamface.ingest.keyframes.KeyframeSelector`).
    store : path or None
        Use this store instead of ``<output_dir>/streamface.zarr``.
    """

    def __init__(self, name, url, output_dir, batch_size=50, empty_threshold=0.95,
                 blur_threshold=50, similarity_threshold=0.9, reconnect_interval=500,
                 log_interval=100, *, image_format="jpeg", jpeg_quality=95, keyframes_only=True,
                 sample_fps=None, max_frames=None, duration=None, prefer_sharper=True,
                 aligned_size=128, crop_size=256, threads=None, kernel_threads=1, store=None):
        self.name = name
        self.url = url
        self.output_dir = output_dir
        self.batch_size = batch_size
        self.empty_threshold = empty_threshold
        self.blur_threshold = blur_threshold
        self.similarity_threshold = similarity_threshold
        self.reconnect_interval = reconnect_interval
        self.log_interval = log_interval
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.keyframes_only = keyframes_only
        self.sample_fps = sample_fps
        self.max_frames = max_frames
        self.duration = duration
        self.prefer_sharper = prefer_sharper
        self.aligned_size = aligned_size
        self.crop_size = crop_size
        self.threads = threads
        self.kernel_threads = kernel_threads
        self.store = store
        self.stop_event = threading.Event()
        #: While :meth:`call` runs: seconds of a file to read (None: live or unknown), and
        #: the pts reached (for a progress bar with a total and the time left).
        self.length_s: float | None = None
        self.position_s = 0.0
        # The name becomes paths (the store group, logs/<name>.log, the status file):
        # checked here, before anything can touch the disk.
        validate_stream_name(self.name)

    def validate(self) -> None:
        """Check the parameters (raises ValueError naming the first bad one)."""
        validate_stream_name(self.name)
        check_int("batch_size", self.batch_size)
        for key in ("empty_threshold", "similarity_threshold"):
            value = getattr(self, key)
            if not 0 <= value <= 1:
                raise ValueError(f"{key} must lie in [0, 1], got {value!r}")
        if self.blur_threshold < 0:
            raise ValueError(f"blur_threshold must be >= 0, got {self.blur_threshold!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {self.image_format!r}")

    def stop(self) -> None:
        """End the capture after the current frame (safe from a signal handler or thread)."""
        self.stop_event.set()

    def open_decoder(self, *, max_reconnects: int | None = None, stop_event=None) -> VideoDecoder:
        """Open the source with this capture's decoding options (sampling, bounds, reconnects).

        ``stop_event`` defaults to the capture's own (set by :meth:`stop`); ``max_reconnects``
        None reconnects a live source for as long as it runs.
        """
        return VideoDecoder(self.url, keyframes_only=self.keyframes_only, sample_fps=self.sample_fps,
                            max_frames=self.max_frames, duration=self.duration,
                            reconnect_interval=self.reconnect_interval, max_reconnects=max_reconnects,
                            threads=self.threads,
                            stop_event=self.stop_event if stop_event is None else stop_event)

    def truncation(self, decoder: VideoDecoder, last_pts: float | None,
                   error: SourceError | None = None, stopped: bool = False) -> Truncation | None:
        """Whether a file ended early: its :class:`Truncation`, or None (read to its end,
        stopped, bounded, or a live source).

        Parameters
        ----------
        decoder : VideoDecoder
            Done iterating.
        last_pts : float or None
            Pts of the last frame it handed out.
        error : SourceError, optional
            What the decoder raised; raised again unless it is a file read error.
        stopped : bool, default False
            The stream was stopped (a stopped file is not cut short).
        """
        local = not decoder.live and decoder.source.is_local
        if error is not None and not local:
            raise error
        if not local or stopped:
            return None
        if self.max_frames is not None and decoder.stats.yielded >= self.max_frames:
            return None
        start = 0.0 if last_pts is None or last_pts != last_pts else last_pts
        end = video_data_end(decoder.source.location, start)
        declared = declared_duration(decoder.source.location)
        expected = declared if self.duration is None or declared is None else min(declared, self.duration)
        if error is None and (expected is None or end >= expected - TRUNCATION_TOLERANCE_S):
            return None
        log.warning("%s: %s is %s", self.name, decoder.source.original,
                    Truncation(end, declared).text())
        return Truncation(end, declared)

    def make_selector(self) -> KeyframeSelector:
        """A keyframe selector with this capture's thresholds (the seed's rules)."""
        return KeyframeSelector(self.empty_threshold, self.blur_threshold, self.similarity_threshold,
                                prefer_sharper=self.prefer_sharper, threads=self.kernel_threads)

    def call(self, on_frame=None) -> CaptureSummary:
        """Run the capture to the end of the source (or a bound) and return its summary.

        Parameters
        ----------
        on_frame : callable, optional
            ``on_frame(decoder_stats, selection_counts)`` after every decoded frame (progress).
        """
        self.validate()
        started = time.monotonic()
        # The source is opened first, so a bad source leaves no store or stream behind.
        decoder = self.open_decoder()
        try:
            session = StreamSession(FaceStore.open(self.store or store_path(self.output_dir), mode="a"),
                                    self.name, aligned_size=self.aligned_size, crop_size=self.crop_size)
            self.start_decoder(decoder, session.open(source_record(decoder)))
        except BaseException:
            decoder.close()
            raise
        selector = self.make_selector()

        def emit(kept):
            session.submit(partial(append_frames, kept=kept, image_format=self.image_format,
                                   quality=self.jpeg_quality))

        progress = None if on_frame is None else (lambda stats, counts, pts: on_frame(stats, counts))
        truncated = self.follow(decoder, selector, session, emit, progress)
        return self.summary(selector, decoder, session.location, time.monotonic() - started, truncated)

    def summary(self, selector: KeyframeSelector, decoder: VideoDecoder, location: str, seconds: float,
                truncated: Truncation | None) -> CaptureSummary:
        """The :class:`CaptureSummary` of a stream followed to its end."""
        c = selector.counts
        return CaptureSummary(self.name, location, c.seen, c.kept, c.empty, c.blurred,
                              c.similar - c.replaced, c.replaced, decoder.stats.reconnects, seconds,
                              truncated=truncated, interrupted=self.stop_event.is_set())

    def log_failure(self, exc: BaseException) -> None:
        """Say in the stream's log file why it stopped, not only on the terminal."""
        log.error("%s: failed: %s", self.name, (str(exc) or type(exc).__name__).splitlines()[0])

    def start_decoder(self, decoder: VideoDecoder, start) -> None:
        """Continue ``decoder`` where its stream's session says (a
        :class:`~streamface.ingest.session.StreamStart`): after the last stored frame, with
        the capture times a file's content got when it was first stored."""
        decoder.after_time_us = start.after_time_us
        if start.start_time_us is not None:
            decoder.start_time_us = start.start_time_us

    def follow(self, decoder: VideoDecoder, selector: KeyframeSelector, session: StreamSession, emit,
               on_frame=None, before_close=None) -> Truncation | None:
        """The stream of one source, on this thread: decode and select into ``emit``, then
        close the decoder and the session (its commits done); a truncation or None.

        ``session`` is open; ``on_frame(stats, counts, pts)`` after each decoded frame;
        ``before_close()`` once the source is done, before the session closes (``run``
        waits there for its inference thread; called again, its error only logged, when
        the stream fails). A stream this session created is removed again if the run
        fails or the file was cut short before anything was stored in it.
        """
        length = None if decoder.live else decoder.source_duration
        self.length_s = length if self.duration is None or length is None else min(length, self.duration)
        self.position_s = 0.0

        def progress(stats, counts, pts):
            if pts == pts:  # not NaN
                self.position_s = pts
            if on_frame is not None:
                on_frame(stats, counts, pts)

        try:
            try:
                Path(self.output_dir).mkdir(parents=True, exist_ok=True)
                attach_log_file(Path(self.output_dir) / "logs", self.name)
                # Decoding and the RGB conversion run a few frames ahead of the selection.
                truncated = select_keyframes(decoder, selector, emit=emit, truncation=self.truncation,
                                             stop_event=self.stop_event, every=self.batch_size,
                                             on_frame=progress, read_ahead=READ_AHEAD_FRAMES,
                                             name=self.name, log_interval=self.log_interval)
            finally:
                decoder.close()
            if before_close is not None:
                before_close()
            session.close()
        except BaseException as exc:
            self.log_failure(exc)
            if before_close is not None:
                try:
                    before_close()
                except Exception as again:  # noqa: BLE001 - the first failure is the one raised
                    log.warning("%s: %s", self.name, again)
            session.abandon()
            session.discard_if_empty()
            raise
        if truncated is not None:
            session.discard_if_empty()
        return truncated


def append_frames(writer, kept: list[Candidate], image_format: str, quality: int) -> None:
    """Commit job of capture alone: the kept frames, encoded, in one commit."""
    writer.append(frame_records(kept, image_format, quality))
    writer.flush()


def attach_log_file(folder: Path, name: str) -> None:
    """Log this stage's messages to ``<output_dir>/logs/<name>.log`` (once per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = str((folder / f"{name}.log").resolve())
    root = logging.getLogger("streamface")
    if any(getattr(h, "baseFilename", None) == path for h in root.handlers):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
