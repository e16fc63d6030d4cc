"""Capture, extraction and analysis fused in one pass over one source (``streamface run``).

One decoder feeds the keyframe selection; each batch of kept frames goes to batched
detection, the seed's filters, crops and track matching, and its new faces are
embedded and described from the frames and crops still in memory (no PNG round
trip, no re-read of the store); then the frames, their faces, embeddings and
attributes are committed. Three threads work in a line, each on its own batch:
decoding and keyframe selection; inference (on a
:class:`~streamface.ingest.commit_queue.CommitQueue` thread); JPEG encoding and the store
writes (on a second one). Order is kept and at most ``COMMIT_QUEUE_JOBS`` batches
wait at each step. Stopping (SIGINT/SIGTERM, bounds)
flushes and commits what was processed; running again continues after the last
stored frame.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streamface.identify.online_index import check_index_parameters
from streamface.ingest.analysis import AnalysisSummary, FaceAnalysis
from streamface.ingest.batch_commit import BatchCommit
from streamface.ingest.capture import CaptureSummary, StreamCapture
from streamface.ingest.commit_queue import CommitQueue
from streamface.ingest.extraction import ExtractionSummary, FaceExtraction
from streamface.ingest.session import StreamSession, catch_up, source_record
from streamface.store import FaceStore
from streamface.store.names import store_path

__all__ = ["EXIT_TRUNCATED", "Pipeline", "PipelineSummary", "Signals", "exit_status", "stop_on_signals",
           "stream_outcome"]

log = logging.getLogger(__name__)

#: Batches waiting for the store at most (memory stays bounded when the disk is slow).
COMMIT_QUEUE_JOBS = 4

#: Exit status of ``run`` and ``ingest`` when a file was cut short (what decoded is stored).
EXIT_TRUNCATED = 4


@dataclass
class PipelineSummary:
    """What a run did."""

    capture: CaptureSummary
    extraction: ExtractionSummary
    analysis: AnalysisSummary
    seconds: float
    load_seconds: float = 0.0

    def line(self) -> str:
        c, e = self.capture, self.extraction
        fps = c.decoded / self.seconds if self.seconds > 0 else 0.0
        text = (f"{c.stream}: {c.decoded} frames, {c.kept} keyframes, {e.faces} faces "
                f"({self.analysis.faces} embedded), {c.reconnects} reconnects, "
                f"{self.seconds:.1f} s ({fps:.1f} fps; models loaded in {self.load_seconds:.1f} s) "
                f"-> {c.store}")
        return text + c.outcome_note() + "".join(f"; warning: {w}" for w in self.analysis.warnings)


class Pipeline:
    """``StreamCapture`` + ``FaceExtraction`` + ``FaceAnalysis`` on one source, in one pass.

    Parameters
    ----------
    capture : StreamCapture
    extraction : FaceExtraction
        Its detector and filter parameters are used (not its folders).
    analysis : FaceAnalysis or None
        Its models are used; None skips analysis.
    index_threshold : float or None, default None
        Online identification: every new face is inserted into a
        :class:`~streamface.identify.hri.HierarchicalRetrievalIndex` (this threshold and
        ``index_metric``) as it is stored, and its HRI label is committed as the face's
        label. The index is saved beside the store at the end. Needs ``analysis``.
    index_metric : {"cosine", "euclidean"}, default "cosine"
    """

    def __init__(self, capture: StreamCapture, extraction: FaceExtraction,
                 analysis: FaceAnalysis | None = None, *,
                 index_threshold: float | None = None, index_metric: str = "cosine") -> None:
        self.capture = capture
        self.extraction = extraction
        self.analysis = analysis
        self.index_threshold = index_threshold
        self.index_metric = index_metric

    def stop(self) -> None:
        """Stop after the current frame; what was processed is committed."""
        self.capture.stop()

    def call(self, on_frame=None) -> PipelineSummary:
        """Run to the end of the source (or a bound, or :meth:`stop`).

        Parameters
        ----------
        on_frame : callable, optional
            ``on_frame(decoder_stats, selection_counts, faces)`` after each decoded frame.
        """
        capture = self.capture
        capture.validate()
        check_index_parameters(self.index_threshold, self.index_metric, self.analysis)
        loading = time.monotonic()
        extractor = self.extraction.make_extractor()
        analyzer = self.analysis.make_analyzer() if self.analysis is not None else None
        started = time.monotonic()
        location = capture.store or store_path(capture.output_dir)
        if analyzer is not None:
            catch_up(location, capture.name, analyzer, getattr(self.analysis, "batch_size", 128))
        # The source is opened first, so a bad source leaves no store or stream behind.
        try:
            decoder = capture.open_decoder()
        except BaseException as exc:
            capture.log_failure(exc)
            raise
        try:
            session = StreamSession(
                FaceStore.open(location, mode="a"), capture.name, aligned_size=extractor.aligned_size,
                crop_size=max(extractor.face_size), extractor=extractor,
                index=None if self.index_threshold is None else (self.index_threshold, self.index_metric))
            capture.start_decoder(decoder, session.open(source_record(decoder)))
        except BaseException as exc:
            capture.log_failure(exc)
            decoder.close()
            raise

        # Three threads in a line: decoding and keyframe selection run here; detection,
        # the face filters and crops, and the embeddings and attributes run on the
        # inference queue's thread; JPEG encoding and the store writes run on the
        # session's commit thread, so a batch is written while the next one is inferred.
        # Both queues keep decode order and hold at most COMMIT_QUEUE_JOBS batches.
        inference = CommitQueue(None, max_jobs=COMMIT_QUEUE_JOBS, close_writer=False,
                                name=f"inference-{capture.name}")
        next_row = session.stored[1]

        def infer(kept):
            nonlocal next_row
            images = [c.rgb for c in kept]
            start = next_row
            faces = extractor.process(images, start, [c.small for c in kept])
            next_row += len(faces)
            embeddings, attributes = None, {}
            if analyzer is not None:
                embeddings = analyzer.embed(faces.aligned)
                if len(faces):
                    attributes = analyzer.describe(faces.landmarks, faces.frame, dict(enumerate(images)))
            # Batches waiting behind a slow store merge into one commit (BatchCommit.merge).
            session.submit(BatchCommit(analyzer, capture, kept, faces, start, embeddings, attributes,
                                       session.online))

        def progress(stats, counts, pts):
            on_frame(stats, counts, extractor.summary.faces)

        selector = capture.make_selector()
        truncated = capture.follow(decoder, selector, session, lambda kept: inference.submit(lambda _: infer(kept)),
                                   progress if on_frame else None, before_close=inference.close)
        summary = capture.summary(selector, decoder, session.location, time.monotonic() - started, truncated)
        extraction = extractor.summary
        extraction.store = summary.store
        analysis = analyzer.summary if analyzer is not None else AnalysisSummary(store=summary.store)
        return PipelineSummary(summary, extraction, analysis, time.monotonic() - started, started - loading)


@dataclass
class Signals:
    """The stop signal received inside :func:`stop_on_signals`'s block (None: none)."""

    received: int | None = None

    @property
    def name(self) -> str | None:
        """``"SIGINT"``, ``"SIGTERM"`` or None."""
        return None if self.received is None else signal.Signals(self.received).name


def exit_status(signals: Signals, *, failed: bool = False, truncated: bool = False) -> int:
    """The exit status of ``run`` and ``ingest``.

    128 + the signal number when a signal stopped it (130 for SIGINT, 143 for SIGTERM),
    else 1 when a stream failed, else :data:`EXIT_TRUNCATED` (4) when a file was cut
    short, else 0.
    """
    if signals.received is not None:
        return 128 + signals.received
    if failed:
        return 1
    return EXIT_TRUNCATED if truncated else 0


def stream_outcome(signals: Signals, truncated, error: str | None = None) -> tuple[str, str]:
    """A stream's ``(outcome, note)`` for its last status snapshot (streamface.ops.live_status):
    interrupted by a signal, failed with ``error``, ``truncated`` (a file cut short: its
    :class:`~streamface.engine.decode.Truncation` or a note), else finished."""
    if signals.received is not None:
        return "interrupted", f"interrupted by {signals.name}"
    if error is not None:
        return "failed", error
    if truncated is not None:
        return "truncated", truncated if isinstance(truncated, str) else truncated.text()
    return "finished", ""


@contextmanager
def stop_on_signals(stop):
    """Call ``stop()`` on SIGINT/SIGTERM inside the block (main thread only); restore after.

    Yields a :class:`Signals` that records the first signal received.
    """
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    previous = {}

    def handler(signum, frame):
        if signals.received is None:
            signals.received = signum
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield signals
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def default_output_dir(store) -> Path:
    """Folder beside a store for logs: ``<store's parent>``."""
    return Path(store).expanduser().resolve().parent
