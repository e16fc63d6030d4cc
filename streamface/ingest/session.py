"""One stream's store side, the same for capture, ``run``, ``ingest`` and ``ingest --ray``.

A :class:`StreamSession` opens a stream's group in a store and gets it ready to continue:

1. the writer, creating the group with the crop sizes only if it is new, and refusing a
   stream whose aligned crops are of another size than the extractor makes;
2. the capture times of a local file's content (the times it got when first stored,
   :func:`settle_source`);
3. the resume point: the capture time of the last stored frame (or of the previous
   period's store when rotating), after which the decoder continues;
4. the track memory: the last two stored frames rebuilt for track matching, so a resumed
   stream gives its faces the track ids an uninterrupted run gives them;
5. the online index rebuilt from the stored embeddings (and the faces a killed run
   embedded but did not label, labelled now);
6. one :class:`~streamface.ingest.commit_queue.CommitQueue` that owns the writer from
   then on and runs the stream's commits in decode order.

:meth:`StreamSession.close` waits for the commits, saves the online index beside the
store and closes the writer; :meth:`StreamSession.discard_if_empty` removes a group this
session created when nothing was stored in it. :func:`catch_up` analyses stored faces a
killed run committed without their embeddings, before a stream continues.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from streamface.engine.decode import VideoDecoder
from streamface.identify.online_index import OnlineIndex
from streamface.ingest.analysis import first_unanalysed
from streamface.ingest.commit_queue import CommitQueue
from streamface.ingest.file_source import content_fingerprint
from streamface.ingest.extraction import restore_previous
from streamface.store import FaceStore, NotAStoreError, StoreError, StreamNotFoundError

__all__ = ["SourceRecord", "StreamSession", "StreamStart", "catch_up", "settle_source", "source_record"]

log = logging.getLogger(__name__)


class StreamStart(NamedTuple):
    """Where a stream's decoder starts, as its session found the store."""

    #: Continue after this capture time (µs): the last frame stored or accepted; None: from the start.
    after_time_us: int | None
    #: The capture time its file's pts 0 gets (what the stream recorded for the file's
    #: content); None: the decoder keeps its own (a live source, or no file given).
    start_time_us: int | None = None


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


def catch_up(location, name: str, analyzer, batch_size: int = 128) -> int:
    """Analyse the faces of stream ``name`` that a killed run stored without their
    embeddings or attributes; the number of faces analysed (0 for a new store or stream)."""
    try:
        writer = FaceStore.open(location, mode="r+").writer(name, flush_rows=0)
    except (NotAStoreError, StreamNotFoundError):
        return 0  # a new store or stream: nothing to catch up
    with writer:
        start, stop = first_unanalysed(writer, analyzer), writer.num_faces
        for lo in range(start, stop, max(1, batch_size)):
            analyzer.analyze(writer, lo, min(stop, lo + batch_size))
        return max(0, stop - start)


class StreamSession:
    """A stream's group in a store, opened to continue where it stopped.

    Parameters
    ----------
    store : FaceStore
        Opened for writing (``mode="a"``); may be shared by the sessions of many streams.
    name : str
        The stream.
    aligned_size, crop_size : int
        Crop sizes the group is created with if it is new; a stream that exists must
        store ``aligned_size`` crops.
    extractor : FaceExtractor or None
        Its track memory is rebuilt from the stored frames (None: capture alone).
    index : tuple of (float, str) or None
        ``(threshold, metric)`` of the stream's online index (None: no online index).
    commit_jobs : int, default 2
        Batches waiting for the store at most.
    create_lock : threading.Lock, optional
        Held while a group is created (several sessions of one store create theirs one
        at a time).
    """

    def __init__(self, store: FaceStore, name: str, *, aligned_size: int, crop_size: int,
                 extractor=None, index: tuple[float, str] | None = None, commit_jobs: int = 2,
                 create_lock: threading.Lock | None = None) -> None:
        self.store = store
        self.name = name
        self.aligned_size = aligned_size
        self.crop_size = crop_size
        self.extractor = extractor
        self.index = index
        self.commit_jobs = commit_jobs
        self.create_lock = create_lock or threading.Lock()
        #: Set by :meth:`open`.
        self.commits: CommitQueue | None = None
        self.online: OnlineIndex | None = None
        self.created = False
        self.start = StreamStart(None)
        self.stored: tuple[int, int] = (0, 0)  # frames, faces when opened

    @property
    def location(self) -> str:
        return str(self.store.location)

    def open(self, source: SourceRecord | None = None, *, earlier_span=None) -> StreamStart:
        """Open the group and get it ready (steps 1-6 of the module); where to continue.

        Parameters
        ----------
        source : SourceRecord, optional
            The local file the stream reads (its content's capture times are settled).
        earlier_span : callable, optional
            ``earlier_span() -> (first_us, last_us) or None``: the stream's span in the
            previous period's store, used when this store holds none of it yet.
        """
        writer = self._open_writer()
        try:
            start_time = settle_source(writer, source)
            span = writer.capture_time_span() or (earlier_span() if earlier_span is not None else None)
            if self.extractor is not None:
                self.extractor.previous = (restore_previous(writer, writer.num_frames)
                                           if writer.num_frames and writer.has_images else [])
            self.stored = (writer.num_frames, writer.num_faces)
            if self.index is not None:
                online = OnlineIndex(*self.index)
                online.resume(self.location, self.name)  # refuses labels it did not make
                online.label_new_faces(writer)  # faces a killed run embedded but did not label
                self.online = online  # only now: a refused index must never be saved over the stored one
        except BaseException:
            writer.close()
            raise
        # From here the queue owns the writer (and closes it in close()); it has no job
        # yet, so the reads above do not race with it.
        self.commits = CommitQueue(writer, max_jobs=self.commit_jobs, name=f"commits-{self.name}")
        self.start = StreamStart(span[1] if span else None, start_time)
        return self.start

    def submit(self, job) -> None:
        """Queue a commit job (``job(writer)``, e.g. a :class:`~streamface.ingest.batch_commit.BatchCommit`)."""
        self.commits.submit(job)

    @property
    def pending(self) -> int:
        """Commit jobs waiting."""
        return self.commits.pending if self.commits is not None else 0

    def close(self) -> None:
        """Run the commits still queued, save the online index beside the store (once),
        close the writer. Raises the first commit error."""
        commits, self.commits = self.commits, None
        if commits is None:
            return
        commits.close()
        online, self.online = self.online, None
        if online is not None:
            online.save(self.location, self.name)

    def abandon(self) -> None:
        """Close after a failure: the commits queued still run; the error is logged, not raised."""
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - the failure being reported matters more
            log.warning("%s: closing after a failure: %s", self.name, exc)

    def discard_if_empty(self) -> None:
        """Remove the group when this session created it and nothing was stored in it."""
        if not self.created:
            return
        try:
            if self.store.remove_empty_stream(self.name):
                log.info("%s: removed the stream, which holds nothing", self.name)
        except Exception as exc:  # noqa: BLE001 - the failure being reported matters more
            log.warning("%s: could not remove the empty stream: %s", self.name, exc)

    def _open_writer(self):
        with self.create_lock:  # stream groups are created one at a time
            exists = self.name in self.store.streams
            self.created = self.created or not exists
            writer = self.store.writer(self.name, create=True,
                                       aligned_size=None if exists else self.aligned_size,
                                       crop_size=None if exists else self.crop_size, flush_rows=0)
        if self.extractor is not None and writer.config.aligned_size != self.aligned_size:
            writer.close()
            raise StoreError(f"stream {self.name!r} stores {writer.config.aligned_size}px aligned faces, "
                             f"not {self.aligned_size}")
        return writer
