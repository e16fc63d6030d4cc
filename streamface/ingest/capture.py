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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

try:
    import simplejpeg
except ImportError:  # installed without its dependencies: Pillow encodes
    simplejpeg = None

from streamface.engine.decode import DecodedFrame, VideoDecoder
from streamface.engine.read_ahead import ReadAhead
from streamface.engine.sources import SourceError
from streamface.ingest.file_source import content_fingerprint, declared_duration, video_data_end
from streamface.ingest.keyframes import Candidate, KeyframeSelector
from streamface.store import FaceStore, FrameRecords, validate_stream_name

__all__ = ["CaptureSummary", "SourceRecord", "StreamCapture", "Truncation", "encode_frame", "settle_source",
           "source_record", "store_path"]

log = logging.getLogger(__name__)

STORE_NAME = "streamface.zarr"
IMAGE_FORMATS = ("jpeg", "png")
#: A file whose video data ends more than this many seconds before the length its
#: header announces was cut short (packet durations and audio tracks make a complete
#: file's two ends differ by a frame or two).
TRUNCATION_TOLERANCE_S = 1.0


def store_path(output_dir) -> Path:
    """The store a stage keeps its data in: ``<output_dir>/streamface.zarr``."""
    return Path(output_dir) / STORE_NAME


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


@dataclass(frozen=True)
class SourceRecord:
    """A local file as a stream records it: its content and the capture time of its pts 0.

    Made where the file is decoded (:func:`source_record`) and settled where the stream's
    writer is (:func:`settle_source`): on one machine for ``run`` and ``ingest``, on two
    for ``ingest --ray``, whose decoder and store writer are different actors.
    """

    fingerprint: str
    start_time_us: int
    file: str


def source_record(decoder: VideoDecoder) -> SourceRecord | None:
    """The :class:`SourceRecord` of the local file ``decoder`` reads (None for a live or remote
    source, whose capture times are the wall clock)."""
    if decoder.live or not decoder.source.is_local:
        return None
    location = decoder.source.location
    return SourceRecord(content_fingerprint(location), decoder.start_time_us, Path(location).name)


def settle_source(writer, record: SourceRecord | None) -> int | None:
    """The capture time (µs) the file of ``record`` gives its pts 0 in ``writer``'s stream.

    The time recorded when the same content was first captured into the stream, so a
    re-run of the same content resumes; for new content, the record's own time, which is
    recorded. None when ``record`` is None.
    """
    if record is None:
        return None
    recorded = writer.source_start_time(record.fingerprint)
    if recorded is not None:
        return recorded
    writer.record_source(record.fingerprint, record.start_time_us, file=record.file)
    return record.start_time_us


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

    def _validate(self) -> None:
        validate_stream_name(self.name)
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
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

    def settle_start_time(self, writer, decoder: VideoDecoder) -> None:
        """Give a local file the capture times it had when its content was first captured
        into this stream (after a ``touch`` or a copy its own clock would differ), and
        record its content fingerprint with the times it gets."""
        start = settle_source(writer, source_record(decoder))
        if start is not None:
            decoder.start_time_us = start

    def truncation(self, decoder: VideoDecoder, last_pts: float | None,
                   error: SourceError | None = None) -> Truncation | None:
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
        """
        local = not decoder.live and decoder.source.is_local
        if error is not None and not local:
            raise error
        if not local or self.stop_event.is_set():
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

    def call(self, on_keyframes=None, on_frame=None, on_end=None) -> CaptureSummary:
        """Run the capture to the end of the source (or a bound) and return its summary.

        Parameters
        ----------
        on_keyframes : callable, optional
            ``on_keyframes(writer, kept)`` replaces the plain frame append: the fused
            pipeline uses it to add faces to the same commit.
        on_frame : callable, optional
            ``on_frame(decoder_stats, selection_counts)`` after every decoded frame (progress).
        on_end : callable, optional
            ``on_end(writer)`` once the source is done (or failed), before the writer is
            closed: the fused pipeline waits there for its background commits.
        """
        self._validate()
        started = time.monotonic()
        # The source is opened first, so a bad source leaves no store or stream behind.
        decoder = self.open_decoder()
        try:
            store = FaceStore.open(self.store or store_path(self.output_dir), mode="a")
            exists = self.name in store.streams
            writer = store.writer(self.name, create=True,
                                  aligned_size=None if exists else self.aligned_size,
                                  crop_size=None if exists else self.crop_size, flush_rows=0)
        except BaseException:
            decoder.close()
            raise
        selector = self.make_selector()
        truncated = None
        length = None if decoder.live else decoder.source_duration
        self.length_s = length if self.duration is None or length is None else min(length, self.duration)
        self.position_s = 0.0
        try:
            with writer:
                Path(self.output_dir).mkdir(parents=True, exist_ok=True)
                _attach_log_file(Path(self.output_dir) / "logs", self.name)
                self.settle_start_time(writer, decoder)
                span = writer.capture_time_span()
                decoder.after_time_us = span[1] if span else None
                append = on_keyframes or self._append
                pending: list[Candidate] = []
                last_pts = None
                try:
                    # Decoding and the RGB conversion run a few frames ahead of the selection;
                    # the counts are of the frames selected (those decoded ahead when a stop
                    # comes are decoded again by the next run, which starts after the last
                    # stored frame).
                    try:
                        with ReadAhead(decoder, prepare=DecodedFrame.rgb,
                                       name=f"decode-{self.name}") as frames:
                            for seen, (frame, rgb) in enumerate(frames, 1):
                                last_pts = frame.pts
                                if frame.pts == frame.pts:  # not NaN
                                    self.position_s = frame.pts
                                pending += selector.offer(frame, rgb)
                                if seen % self.batch_size == 0 and pending:
                                    append(writer, pending)
                                    pending = []
                                if on_frame is not None:
                                    on_frame(replace(decoder.stats, yielded=seen), selector.counts)
                                if self.log_interval and seen % self.log_interval == 0:
                                    log.info("%s: %d frames, %d keyframes", self.name, seen,
                                             selector.counts.kept)
                                if self.stop_event.is_set():
                                    break  # not the frames already decoded ahead
                    except SourceError as exc:  # a file cut short: what decoded is kept
                        truncated = self.truncation(decoder, last_pts, exc)
                    else:
                        truncated = self.truncation(decoder, last_pts)
                    pending += selector.finish()
                    if pending:
                        append(writer, pending)
                finally:
                    decoder.close()
                    if on_end is not None:
                        on_end(writer)
        except BaseException:
            if not exists:
                _remove_if_empty(store, self.name)
            raise
        if truncated is not None and not exists:
            _remove_if_empty(store, self.name)
        c = selector.counts
        return CaptureSummary(self.name, str(store.location), c.seen, c.kept, c.empty,
                              c.blurred, c.similar - c.replaced, c.replaced,
                              decoder.stats.reconnects, time.monotonic() - started,
                              truncated=truncated, interrupted=self.stop_event.is_set())

    def _append(self, writer, kept: list[Candidate]) -> None:
        writer.append(frame_records(kept, self.image_format, self.jpeg_quality))
        writer.flush()


def _remove_if_empty(store: FaceStore, name: str) -> None:
    """A failed capture leaves no empty stream behind (a stream that held data before stays)."""
    try:
        if store.remove_empty_stream(name):
            log.info("%s: removed the stream, which holds nothing", name)
    except Exception as exc:  # noqa: BLE001 - the failure being reported matters more
        log.warning("%s: could not remove the empty stream: %s", name, exc)


def _attach_log_file(folder: Path, name: str) -> None:
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
