"""Capture, extraction and analysis fused in one pass over one source (``streamface run``).

One decoder feeds the keyframe selection; each batch of kept frames goes to batched
detection, the seed's filters, crops and track matching, and is committed to the
store together with its faces; the new faces are then embedded and described from
the frames still in memory (no PNG round trip). Stopping (SIGINT/SIGTERM, bounds)
flushes and commits what was processed; running again continues after the last
stored frame.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streamface.face_analysis import AnalysisSummary, FaceAnalysis
from streamface.face_extraction import ExtractionSummary, FaceExtraction
from streamface.stream_capture import CaptureSummary, StreamCapture, frame_records

__all__ = ["Pipeline", "PipelineSummary", "stop_on_signals"]


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
        return text + "".join(f"; warning: {w}" for w in self.analysis.warnings)


class Pipeline:
    """``StreamCapture`` + ``FaceExtraction`` + ``FaceAnalysis`` on one source, in one pass.

    Parameters
    ----------
    capture : StreamCapture
    extraction : FaceExtraction
        Its detector and filter parameters are used (not its folders).
    analysis : FaceAnalysis or None
        Its models are used; None skips analysis.
    """

    def __init__(self, capture: StreamCapture, extraction: FaceExtraction,
                 analysis: FaceAnalysis | None = None) -> None:
        self.capture = capture
        self.extraction = extraction
        self.analysis = analysis

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
        loading = time.monotonic()
        extractor = self.extraction.make_extractor()
        analyzer = self.analysis.make_analyzer() if self.analysis is not None else None
        started = time.monotonic()
        if self.capture.aligned_size != extractor.aligned_size:
            self.capture.aligned_size = extractor.aligned_size
        self.capture.crop_size = max(extractor.face_size)

        def on_keyframes(writer, kept):
            frames = frame_records(kept, self.capture.image_format, self.capture.jpeg_quality)
            images = [c.rgb for c in kept]
            start = writer.num_faces
            faces = extractor.process(images, start)
            frame_rows, _ = writer.append(frames, faces)
            writer.flush()
            if analyzer is not None:
                analyzer.analyze(writer, start, writer.num_faces,
                                 frames=dict(zip(frame_rows.tolist(), images)))

        def progress(stats, counts):
            on_frame(stats, counts, extractor.summary.faces)

        capture = self.capture.call(on_keyframes=on_keyframes, on_frame=progress if on_frame else None)
        extraction = extractor.summary
        extraction.store = capture.store
        analysis = analyzer.summary if analyzer is not None else AnalysisSummary(store=capture.store)
        return PipelineSummary(capture, extraction, analysis, time.monotonic() - started,
                               started - loading)


@contextmanager
def stop_on_signals(stop):
    """Call ``stop()`` on SIGINT/SIGTERM inside the block (main thread only); restore after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def default_output_dir(store) -> Path:
    """Folder beside a store for logs: ``<store's parent>``."""
    return Path(store).expanduser().resolve().parent
