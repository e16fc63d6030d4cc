"""Many streams at once (``streamface ingest``): one process, the models loaded once.

::

    decoder thread, stream A ─┐                                  ┌─> commit thread A ─> store/A
    decoder thread, stream B ─┼─> batcher ─> inference worker ───┼─> commit thread B ─> store/B
    decoder thread, stream C ─┘   (detector batches of up to     └─> commit thread C ─> store/C
                                   ``batch_frames`` kept frames from all streams)

* One thread per stream decodes it (:class:`~streamface.engine.decode.VideoDecoder`,
  which reconnects live sources on its own) and selects keyframes with the seed's
  rules; the kept frames go to one queue shared by all streams.
* One inference worker (one device) takes batches from that queue, up to
  ``batch_frames`` frames or whatever arrived within ``max_wait`` seconds of the
  first, and runs one detector call for all of them and one recognizer call for all
  their faces. The seed's filters, crops and track matching run per stream, each
  stream keeping its own :class:`~streamface.ingest.extraction.FaceExtractor` state.
* One :class:`~streamface.ingest.commit_queue.CommitQueue` per stream encodes the frames and
  writes frames, faces, embeddings and attributes into the stream's store group, in
  decode order, behind the inference.

A stream that fails for good (its source cannot be opened, a file read error, a live
source past ``max_reconnects``, a store error) is reported in its counters while the
others go on. Every stream holds at most ``in_flight`` kept frames waiting for (or in)
inference: a file waits for room (nothing is lost), a live stream drops the
frame and counts it (falling behind a live source would only delay everything after).
:meth:`Ingest.stop` (SIGINT/SIGTERM) ends every decoder after its current frame; what
was decoded is still detected and committed. Running again continues every stream
after its last stored frame, as ``streamface run`` does.

With ``decode=False`` the decoders run elsewhere (``streamface ingest --ray``: one
decoder actor per stream): they hand their kept frames in with :meth:`Ingest.offer`
and end with :meth:`Ingest.end_stream`; batching, inference and commits are the same.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from streamface.checks import check_int
from streamface.identify.online_index import check_index_parameters
from streamface.ingest.batch_commit import BatchCommit
from streamface.ingest.counters import IngestSummary, StreamCounters
from streamface.ingest.keyframes import Candidate
from streamface.ingest.loop import FrameTiming, select_keyframes
from streamface.ingest.session import SourceRecord, StreamSession, StreamStart, catch_up, source_record

__all__ = ["FrameTiming", "Ingest", "IngestSummary", "StreamCounters", "StreamStart"]

log = logging.getLogger(__name__)


@dataclass
class _Kept:
    work: _StreamWork
    candidate: Candidate


@dataclass
class _End:
    work: _StreamWork


class _StreamWork:
    """One stream's moving parts: its decoder thread, track memory, commits, counters."""

    def __init__(self, capture, max_reconnects: int | None, in_flight: int) -> None:
        self.capture = capture
        self.max_reconnects = max_reconnects
        self.counters = StreamCounters(capture.name)
        self.stop_event = threading.Event()
        self.slots = threading.Semaphore(in_flight)
        self.extractor = None
        self.session: StreamSession | None = None  # the stream's store side, once opened
        self.next_row = 0
        self.live = False
        self.commits_closed = False
        self.commits_failed = False
        self.staged = None
        self.staged_at = 0.0
        self.thread: threading.Thread | None = None
        # Capture time of the last frame stored or accepted: frames at or before it are
        # not taken again (a decoder that resumes after a restart may send one twice).
        self.last_time_us: int | None = None
        # Capture time of the stream's file's pts 0, as the stream recorded it for its content.
        self.start_time_us: int | None = None
        self.ended = False
        self.lock = threading.Lock()

    @property
    def location(self) -> str | None:
        """The store the stream writes now (None: not opened)."""
        return self.session.location if self.session is not None else None

    def fail(self, exc: BaseException | str) -> None:
        if self.counters.error is None:
            text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
            self.counters.error = text.splitlines()[0]
            log.error("%s: failed: %s", self.capture.name, self.counters.error)
        self.stop_event.set()


class Ingest:
    """Capture, extract and analyze several streams in one process.

    Parameters
    ----------
    captures : list of StreamCapture
        One per stream: its name, source and capture parameters (keyframe rules,
        ``sample_fps``, ``max_frames``, ``duration``, ``image_format``...). Names must
        differ. ``batch_size`` and ``store`` of these are not used.
    extraction : FaceExtraction
        Its detector and filter parameters are used (not its folders).
    analysis : FaceAnalysis or None
        Its models are used; None skips analysis.
    store : path or URL
        The store (created if missing); one group per stream.
    batch_frames : int, default 8
        Kept frames per detector batch at most.
    max_wait : float, default 0.05
        Seconds a batch waits for more frames after its first.
    in_flight : int or None
        Kept frames per stream between its decoder and its commits at most
        (default ``batch_frames``); bounds memory and latency.
    commit_jobs : int, default 2
        Batches waiting per stream for the store at most.
    commit_wait : float, default 1.0
        Seconds a stream's processed frames may wait for more of its frames, so that
        a stream commits about ``batch_frames`` frames at a time even when a detector
        batch holds only a few of its frames (a commit costs about the same for one
        frame as for ten).
    max_reconnects : int or None, default None
        Reconnects in a row without a frame before a live stream is given up (None:
        never); ``max_reconnects_by_stream`` overrides it per stream name.
    rotation : StoreRotation or None, default None
        Write each period (day, hour) into its own store named from ``store``
        (:class:`~streamface.store.rotation.StoreRotation`). At a boundary every
        stream commits what it holds to the old store and goes on in the new one;
        track matches do not cross stores. A stream new in a store continues after
        the last frame of the previous period's store, so a restart just after a
        boundary stores nothing twice.
    on_batch : callable, optional
        ``on_batch(stage, size, seconds)`` after each model call of the inference
        worker (``stage`` "detection": frames; "embedding": faces), for monitoring.
    decode : bool, default True
        Decode every stream on a thread of this process. False: the kept frames come
        from decoders elsewhere through :meth:`open_stream`, :meth:`offer` and
        :meth:`end_stream`, and :meth:`call` runs until every stream has ended.
    index_threshold : float or None, default None
        Online identification, as ``streamface run`` does it: each stream's new faces
        go into its own :class:`~streamface.identify.online_index.OnlineIndex` (this threshold and
        ``index_metric``) as they are committed, their live labels are stored, and the
        tree is saved beside the store when the stream ends (each rotated store has its
        own). Needs ``analysis``.
    index_metric : {"cosine", "euclidean"}, default "cosine"
    """

    def __init__(self, captures, extraction, analysis=None, *, store, batch_frames: int = 8,
                 max_wait: float = 0.05, in_flight: int | None = None, commit_jobs: int = 2,
                 commit_wait: float = 1.0,
                 max_reconnects: int | None = None,
                 max_reconnects_by_stream: dict | None = None, rotation=None, on_batch=None,
                 decode: bool = True, index_threshold: float | None = None,
                 index_metric: str = "cosine") -> None:
        self.captures = list(captures)
        self.extraction = extraction
        self.analysis = analysis
        self.store = store
        self.batch_frames = batch_frames
        self.max_wait = max_wait
        self.in_flight = in_flight
        self.commit_jobs = commit_jobs
        self.commit_wait = commit_wait
        self.max_reconnects = max_reconnects
        self.max_reconnects_by_stream = dict(max_reconnects_by_stream or {})
        self.rotation = rotation
        self.on_batch = on_batch
        self.decode = decode
        self.index_threshold = index_threshold
        self.index_metric = index_metric
        self._stopping = threading.Event()
        self._opening = threading.Lock()
        self._opened = False
        self._works: list[_StreamWork] = []

    # ---- parameters -----------------------------------------------------------------------------

    def _validate(self) -> None:
        if not self.captures:
            raise ValueError("captures: no stream to ingest")
        names = [c.name for c in self.captures]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"captures: stream name {twice[0]!r} given twice")
        for capture in self.captures:
            capture.validate()
        check_int("batch_frames", self.batch_frames)
        if not self.max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {self.max_wait!r}")
        check_int("in_flight", self.in_flight, optional=True)
        if not self.commit_wait >= 0:
            raise ValueError(f"commit_wait must be >= 0 seconds, got {self.commit_wait!r}")
        check_int("commit_jobs", self.commit_jobs)
        check_index_parameters(self.index_threshold, self.index_metric, self.analysis)

    # ---- control --------------------------------------------------------------------------------

    def stop(self) -> None:
        """End every stream after its current frame; what was decoded is committed.

        With ``decode=False`` the decoders elsewhere are stopped by their owner; this only
        commits the frames that wait, without waiting for more of them.
        """
        self._stopping.set()
        for work in self._works:
            work.stop_event.set()

    @property
    def stream_names(self) -> list[str]:
        """The streams, in the order given."""
        return [c.name for c in self.captures]

    @property
    def counters(self) -> list[StreamCounters]:
        """The live counters of every stream (empty before :meth:`call`)."""
        return [w.counters for w in self._works]

    @property
    def queue_depth(self) -> dict[str, int]:
        """Items waiting now: ``{"inference": kept frames of all streams, "commits/<name>":
        batches waiting for the store}`` (for monitoring)."""
        depth = {"inference": self._queue.qsize() if hasattr(self, "_queue") else 0}
        for work in self._works:
            depth[f"commits/{work.capture.name}"] = work.session.pending if work.session else 0
        return depth

    def call(self, on_progress=None, progress_interval: float = 0.5, on_batch=None) -> IngestSummary:
        """Run every stream to its end (or bound, or failure, or :meth:`stop`).

        Parameters
        ----------
        on_progress : callable, optional
            ``on_progress(counters)`` with the list of :class:`StreamCounters`, every
            ``progress_interval`` seconds and once at the end (main thread).
        on_batch : callable, optional
            For this run, in place of the constructor's ``on_batch``.

        Returns
        -------
        IngestSummary
        """
        if on_batch is not None:
            self.on_batch = on_batch
        self.open()
        started, loading = self._started, self._loading
        worker = threading.Thread(target=self._infer, name="ingest-inference", daemon=True)
        worker.start()
        for work in self._works if self.decode else []:
            work.thread = threading.Thread(target=self._decode, args=(work,),
                                           name=f"ingest-decode-{work.capture.name}", daemon=True)
            work.thread.start()
        # The main thread only waits (in short joins, so signal handlers run) and reports.
        last = time.monotonic()
        while worker.is_alive():
            worker.join(timeout=0.1)
            if on_progress is not None and time.monotonic() - last >= progress_interval:
                on_progress(self.counters)
                last = time.monotonic()
        for work in self._works if self.decode else []:
            work.thread.join()
        self._opened = False  # another call starts afresh
        if on_progress is not None:
            on_progress(self.counters)
        if self._fatal is not None:
            raise self._fatal
        summary = IngestSummary(self.counters, self._location(),
                                time.monotonic() - started, started - loading,
                                interrupted=self._stopping.is_set())
        if self._analyzer is not None:
            summary.warnings = list(self._analyzer.summary.warnings)
        return summary

    def open(self) -> None:
        """Check the parameters, load the models and get every stream ready (once; :meth:`call`
        does it when not done yet). With ``decode=False``, open before the first :meth:`offer`."""
        with self._opening:
            if self._opened:
                return
            self._validate()
            self._loading = time.monotonic()
            template = self.extraction.make_extractor()
            self._detector = template.detector
            self._analyzer = self.analysis.make_analyzer() if self.analysis is not None else None
            self._started = time.monotonic()
            in_flight = self.in_flight or self.batch_frames
            works = [_StreamWork(c, self.max_reconnects_by_stream.get(c.name, self.max_reconnects),
                                 in_flight) for c in self.captures]
            for work in works:
                work.extractor = template.for_stream()
                if self._stopping.is_set():
                    work.stop_event.set()
            self._works = works
            self._store_lock = threading.Lock()
            self._stores: dict = {}
            self._queue: queue.Queue = queue.Queue()
            self._fatal: BaseException | None = None
            self._catch_up()
            self._opened = True

    # ---- kept frames decoded elsewhere (decode=False) -------------------------------------------

    def open_stream(self, name: str, live: bool, source: SourceRecord | None = None) -> StreamStart:
        """Open stream ``name``'s group (once) for a decoder elsewhere that has opened its source.

        Parameters
        ----------
        name : str
        live : bool
            Whether the source is live.
        source : SourceRecord, optional
            The local file the decoder reads (:func:`~streamface.ingest.capture.source_record`),
            so that the same content gets the same capture times as when it was first stored.

        Returns
        -------
        StreamStart
            Where the decoder continues and the capture time of its file's pts 0. Store
            errors are raised (and end the stream).
        """
        work = self._work(name)
        with work.lock:
            if work.session is None and work.counters.error is None and not work.ended:
                try:
                    self._open_stream(work, live, source)
                except Exception as exc:
                    work.fail(exc)
                    raise
            return StreamStart(work.last_time_us, work.start_time_us)

    def offer(self, name: str, candidate: Candidate, wait: float = 0.0) -> str:
        """Hand a kept frame of stream ``name`` (opened with :meth:`open_stream`) to the batcher.

        Parameters
        ----------
        candidate : Candidate
            Its ``item`` has ``time_us``, ``pts``, ``index`` and ``decoded_at``
            (``time.monotonic()`` of this process); ``rgb`` is (H, W, 3) uint8.
        wait : float, default 0
            Seconds to wait for one of the stream's ``in_flight`` slots.

        Returns
        -------
        str
            "kept"; "full": no slot freed within ``wait`` (a live stream drops the
            frame, a file offers it again); "stale": not after the last frame stored
            or accepted (sent twice), ignored; "ended": the stream failed or ended, or
            inference failed: send no more.
        """
        work = self._work(name)
        time_us = candidate.item.time_us
        if work.session is None and not self._stream_over(work):
            raise RuntimeError(f"stream {name!r}: open_stream before offer")
        with work.lock:
            if self._stream_over(work):
                return "ended"
            if work.last_time_us is not None and time_us <= work.last_time_us:
                return "stale"
        if not (work.slots.acquire(timeout=wait) if wait > 0 else work.slots.acquire(blocking=False)):
            return "full"
        with work.lock:  # again: another offer of the same frame may have won meanwhile
            over = self._stream_over(work)
            if over or (work.last_time_us is not None and time_us <= work.last_time_us):
                work.slots.release()
                return "ended" if over else "stale"
            work.last_time_us = time_us
            self._queue.put(_Kept(work, candidate))
        return "kept"

    def end_stream(self, name: str) -> None:
        """No more frames of stream ``name``: commit what it holds and close it (repeating is harmless)."""
        self._end(self._work(name))

    def _work(self, name: str) -> _StreamWork:
        if not self._opened:
            raise RuntimeError("Ingest: open() before handing in frames")
        for work in self._works:
            if work.capture.name == name:
                return work
        raise KeyError(f"stream {name!r} is not one of this ingest's streams")

    def _stream_over(self, work: _StreamWork) -> bool:
        return work.ended or work.commits_failed or work.counters.error is not None or self._fatal is not None

    def _end(self, work: _StreamWork) -> None:
        with work.lock:
            if work.ended:
                return
            work.ended = True
        self._queue.put(_End(work))

    # ---- store ----------------------------------------------------------------------------------

    def _location(self) -> str:
        """The store written now (the current period's when rotating)."""
        return self.rotation.location() if self.rotation is not None else str(self.store)

    def _open_store(self, location: str):
        from streamface.store import FaceStore

        with self._store_lock:
            if location not in self._stores:
                self._stores[location] = FaceStore.open(location, mode="a")
            return self._stores[location]

    def _new_session(self, work: _StreamWork) -> StreamSession:
        ext = work.extractor
        index = None if self.index_threshold is None else (self.index_threshold, self.index_metric)
        return StreamSession(self._open_store(self._location()), work.capture.name,
                             aligned_size=ext.aligned_size, crop_size=max(ext.face_size), extractor=ext,
                             index=index, commit_jobs=self.commit_jobs, create_lock=self._store_lock)

    def _rotate(self, work: _StreamWork) -> None:
        """A period boundary passed: commit what the stream holds to its old store and
        go on in the new one (face rows and track matches start afresh there)."""
        self._commit_staged(work)
        try:
            work.session.close()  # its online index is saved beside the old store
            work.session = self._new_session(work)
            work.session.open()  # the track memory and the online index start afresh there
            self._opened_session(work)
        except Exception as exc:  # noqa: BLE001 - a store error ends this stream only
            work.commits_failed = True
            work.fail(exc)
            return
        log.info("%s: rotated to %s", work.capture.name, work.location)

    def _previous_period_span(self, name: str) -> tuple[int, int] | None:
        """Capture time span of stream ``name`` in the previous period's store, if any."""
        from datetime import timedelta

        from streamface.store import FaceStore, StoreError

        if self.rotation is None or self.rotation.period == "none":
            return None
        start = self.rotation.period_start(self.rotation.now())
        try:
            earlier = FaceStore.open(self.rotation.location_at(start - timedelta(microseconds=1)), mode="r")
            return earlier.stream(name).capture_time_span()
        except (StoreError, OSError, KeyError):
            return None  # no earlier store, or the stream is new

    def _catch_up(self) -> None:
        """Analyse stored faces left without embeddings (a run killed between a batch's
        commit and its analysis) before the streams continue."""
        if self._analyzer is None:
            return
        for work in self._works:
            catch_up(self._location(), work.capture.name, self._analyzer,
                     getattr(self.analysis, "batch_size", 128))

    # ---- decoder threads ------------------------------------------------------------------------

    def _decode(self, work: _StreamWork) -> None:
        c, counters = work.capture, work.counters
        decoder = selector = None

        def on_frame(stats, counts, pts):
            counters.frames, counters.reconnects = stats.yielded, stats.reconnects
            self._count_selection(counters, counts)

        def emit(kept):
            for candidate in kept:
                self._send(work, candidate)

        try:
            # The source is opened first, so a bad source leaves no stream group behind.
            decoder = c.open_decoder(max_reconnects=work.max_reconnects, stop_event=work.stop_event)
            c.start_decoder(decoder, self._open_stream(work, decoder.live, source_record(decoder)))
            selector = c.make_selector()
            truncated = select_keyframes(decoder, selector, emit=emit, truncation=c.truncation,
                                         stop_event=work.stop_event, on_frame=on_frame, name=c.name)
            if truncated is not None:
                counters.truncated = truncated.text()
        except Exception as exc:  # noqa: BLE001 - one stream's failure must not stop the others
            work.fail(exc)
        finally:
            if decoder is not None:
                decoder.close()
                counters.frames = decoder.stats.yielded
                counters.reconnects = decoder.stats.reconnects
            if selector is not None:
                self._count_selection(counters, selector.counts)
            self._end(work)

    @staticmethod
    def _count_selection(counters: StreamCounters, counts) -> None:
        counters.empty, counters.blurred = counts.empty, counts.blurred
        counters.similar = max(0, counts.similar - counts.replaced)

    def _open_stream(self, work: _StreamWork, live: bool, source: SourceRecord | None = None) -> StreamStart:
        """Open the stream's session: where its decoder continues (see
        :class:`~streamface.ingest.session.StreamSession`); ``source`` is the local file it
        reads, so that the same content gets the capture times it had when first stored."""
        work.live = live
        session = self._new_session(work)
        try:
            start = session.open(source, earlier_span=lambda: self._previous_period_span(work.capture.name))
        except BaseException:
            session.discard_if_empty()  # a group created for nothing
            raise
        work.session = session
        self._opened_session(work)
        work.last_time_us, work.start_time_us = start
        return start

    def _opened_session(self, work: _StreamWork) -> None:
        frames, faces = work.session.stored
        work.next_row = faces
        work.counters.stored = (work.location, frames, faces)

    def _send(self, work: _StreamWork, kept: Candidate) -> None:
        """Hand a kept frame to the batcher, within the stream's ``in_flight`` slots."""
        if work.live and not work.stop_event.is_set():
            if not work.slots.acquire(blocking=False):
                work.counters.dropped += 1
                return
        else:
            while not work.slots.acquire(timeout=0.1):
                if self._fatal is not None:
                    return
        self._queue.put(_Kept(work, kept))

    # ---- the batcher and the inference worker ---------------------------------------------------

    def _next_batch(self) -> list:
        """Up to ``batch_frames`` kept frames (and any stream ends among them), in arrival order."""
        while True:
            try:
                items = [self._queue.get(timeout=0.05)]
                break
            except queue.Empty:
                self._commit_due()
        frames = isinstance(items[0], _Kept)
        deadline = time.monotonic() + self.max_wait
        while frames < self.batch_frames:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                wait = deadline - time.monotonic()
                if wait <= 0 or self._all_ended(items):
                    break
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
            items.append(item)
            frames += isinstance(item, _Kept)
        return items

    def _all_ended(self, items: list) -> bool:
        """No more frames can come: every stream still open has its end in ``items``."""
        ended = {id(i.work) for i in items if isinstance(i, _End)}
        return all(w.commits_closed or id(w) in ended for w in self._works)

    def _infer(self) -> None:
        open_streams = len(self._works)
        while open_streams:
            items = self._next_batch()
            kept = [i for i in items if isinstance(i, _Kept)]
            if kept:
                try:
                    if self._fatal is None:
                        self._infer_batch(kept)
                except Exception as exc:  # noqa: BLE001 - a model error ends every stream
                    self._fatal = exc
                    self.stop()
                finally:
                    for item in kept:
                        item.work.slots.release()
            for item in items:
                if isinstance(item, _End):
                    self._commit_staged(item.work)
                    self._close_stream(item.work)
                    open_streams -= 1

    def _infer_batch(self, kept: list[_Kept]) -> None:
        images = [k.candidate.rgb for k in kept]
        started = time.perf_counter()
        detections = self._detector.detect(images)
        self._report_batch("detection", len(images), time.perf_counter() - started)
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(kept):
            groups.setdefault(id(item.work), []).append(i)
        batches = []
        for members in groups.values():
            work = kept[members[0]].work
            if self.rotation is not None and not work.commits_failed and work.session is not None \
                    and self._location() != work.location:
                self._rotate(work)
            if work.session is None or work.commits_failed:
                continue  # frames of a stream whose store failed are not processed
            frames = [images[i] for i in members]
            faces = work.extractor.process_detections(frames, [detections[i] for i in members],
                                                      work.next_row,
                                                      [kept[i].candidate.small for i in members])
            batches.append((work, [kept[i].candidate for i in members], frames, faces, work.next_row))
            work.next_row += len(faces)
        embeddings: list = [None] * len(batches)
        if self._analyzer is not None and batches:
            # One recognizer call for the faces of every stream in the batch.
            aligned = np.concatenate([faces.aligned for *_, faces, _ in batches])
            split = np.cumsum([len(faces) for *_, faces, _ in batches])[:-1]
            started = time.perf_counter()
            embeddings = np.split(self._analyzer.embed(aligned), split)
            if len(aligned):
                self._report_batch("embedding", len(aligned), time.perf_counter() - started)
        for (work, candidates, frames, faces, start), emb in zip(batches, embeddings):
            attributes = (self._analyzer.describe(faces.landmarks, faces.frame, dict(enumerate(frames)))
                          if emb is not None and len(faces) else {})
            self._stage(work, BatchCommit(self._analyzer, work.capture, candidates, faces, start,
                                          emb, attributes, work.session.online, work.counters.committed))
        self._commit_due()

    def _report_batch(self, stage: str, size: int, seconds: float) -> None:
        if self.on_batch is not None:
            self.on_batch(stage, size, seconds)

    # ---- commits --------------------------------------------------------------------------------

    def _stage(self, work: _StreamWork, job: BatchCommit) -> None:
        """Hold ``job`` back to merge it with the stream's next ones (see ``commit_wait``)."""
        if work.staged is not None:
            merged = work.staged.merge(job)
            if merged is None:
                self._commit_staged(work)
            else:
                work.staged = merged
        if work.staged is None:
            work.staged, work.staged_at = job, time.monotonic()
        if len(work.staged.candidates) >= self.batch_frames:
            self._commit_staged(work)

    def _commit_due(self) -> None:
        now = time.monotonic()
        for work in self._works:
            if work.staged is not None and (now - work.staged_at >= self.commit_wait
                                            or self._stopping.is_set()):
                self._commit_staged(work)

    def _commit_staged(self, work: _StreamWork) -> None:
        job, work.staged = work.staged, None
        if job is None or work.commits_failed:
            return
        try:
            work.session.submit(job)
        except Exception as exc:  # noqa: BLE001 - a store error ends this stream only
            work.commits_failed = True
            work.fail(exc)

    def _close_stream(self, work: _StreamWork) -> None:
        work.commits_closed = True
        if work.session is not None:
            try:
                work.session.close()  # the commits done, the online index saved
            except Exception as exc:  # noqa: BLE001
                work.fail(exc)
            c = work.counters
            if c.error is not None or c.truncated is not None:
                work.session.discard_if_empty()
        work.counters.seconds = time.monotonic() - self._started
