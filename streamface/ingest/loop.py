"""The one decode-and-select loop: every stream of capture, ``run``, ``ingest`` and ``ingest --ray``.

::

    decoder ──> (read ahead, RGB) ──> KeyframeSelector.offer ──> emit(kept frames)
       │                                                            ▲
       └── end of the source, a stop, or a file read error ──> finish ┘ ──> Truncation or None

:func:`select_keyframes` decodes a source, offers each frame to the seed's keyframe
selection and hands the kept frames to ``emit``; at the end it hands over the frame the
selection held back for a sharper twin, and says whether a file was cut short. What
each caller does with the kept frames differs (capture appends them, ``run`` infers and
commits them, ``ingest`` queues them for the shared batcher, a Ray decoder sends them
to its inference actor); how a stream is decoded, selected, bounded and ended does not.

A kept frame is a :class:`~streamface.ingest.keyframes.Candidate` whose ``item`` is a
:class:`FrameTiming`: the decoded ``av.VideoFrame`` is let go as soon as its RGB array
exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from streamface.engine.decode import DecodedFrame, VideoDecoder
from streamface.engine.read_ahead import ReadAhead
from streamface.engine.sources import SourceError
from streamface.ingest.keyframes import Candidate, KeyframeSelector

__all__ = ["FrameTiming", "select_keyframes"]

log = logging.getLogger(__name__)


@dataclass
class FrameTiming:
    """What the store needs of a decoded frame (the av.VideoFrame itself is let go).

    The item of a kept frame's :class:`~streamface.ingest.keyframes.Candidate` in every
    stream. ``decoded_at`` is a ``time.monotonic()`` of the process that commits the frame
    (a decoder elsewhere sends its wall clock, converted on arrival), for the latency
    counters.
    """

    time_us: int
    pts: float
    index: int
    decoded_at: float


def select_keyframes(decoder: VideoDecoder, selector: KeyframeSelector, *,
                     emit: Callable[[list[Candidate]], None], truncation, stop_event,
                     every: int = 1, on_frame=None, read_ahead: int = 0, clock=time.monotonic,
                     name: str = "stream", log_interval: int = 0):
    """Decode ``decoder`` to its end, select its keyframes, hand them to ``emit``.

    Parameters
    ----------
    decoder : VideoDecoder
        Opened; the caller closes it afterwards.
    selector : KeyframeSelector
    emit : callable
        ``emit(kept)`` with a non-empty list of kept frames, in decode order.
    truncation : callable
        ``truncation(decoder, last_pts, error, stopped) -> Truncation or None``
        (:meth:`StreamCapture.truncation <streamface.ingest.capture.StreamCapture.truncation>`);
        ``error`` is the :class:`SourceError` the decoder raised (None: it ended).
    stop_event : threading.Event
        Set: stop after the current frame (frames decoded ahead are decoded again by
        the next run, which starts after the last stored frame).
    every : int, default 1
        Hand the kept frames over every this many decoded frames (1: as soon as kept).
    on_frame : callable, optional
        ``on_frame(decoder_stats, selection_counts, pts)`` after every decoded frame.
    read_ahead : int, default 0
        Frames decoded and converted to RGB ahead on a thread of their own (0: on the
        caller's thread). One stream alone gains a core; many streams, each on its own
        thread already, would only double their threads.
    clock : callable, default time.monotonic
        ``decoded_at`` of each frame (a decoder in another process sends ``time.time``).
    name : str
        The stream, in thread names and logs.
    log_interval : int, default 0
        Log progress every this many decoded frames (0: never).

    Returns
    -------
    Truncation or None
        What ``truncation`` said of how the source ended.
    """
    pending: list[Candidate] = []
    last_pts = None
    frames = (ReadAhead(decoder, prepare=DecodedFrame.rgb, depth=read_ahead, name=f"decode-{name}")
              if read_ahead else None)
    try:
        pairs = iter(frames) if frames is not None else ((f, f.rgb()) for f in decoder)
        for seen, (frame, rgb) in enumerate(pairs, 1):
            last_pts = frame.pts
            timed = FrameTiming(frame.time_us, frame.pts, frame.index, clock())
            pending += selector.offer(timed, rgb)
            if pending and seen % every == 0:
                emit(pending)
                pending = []
            if on_frame is not None:
                on_frame(replace(decoder.stats, yielded=seen), selector.counts, frame.pts)
            if log_interval and seen % log_interval == 0:
                log.info("%s: %d frames, %d keyframes", name, seen, selector.counts.kept)
            if stop_event.is_set():
                break  # not the frames already decoded ahead
    except SourceError as exc:  # a file cut short: what decoded is kept
        ended = truncation(decoder, last_pts, exc, stop_event.is_set())
    else:
        ended = truncation(decoder, last_pts, None, stop_event.is_set())
    finally:
        if frames is not None:
            frames.close()
    pending += selector.finish()  # the frame held back for a sharper twin
    if pending:
        emit(pending)
    return ended
