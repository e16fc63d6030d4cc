"""Store writes behind the inference: one thread per stream writer runs its commits in order.

Encoding kept frames (JPEG) and the Zarr appends take about a third of a fused run on
a CPU; run on the caller's thread they stall decoding and inference. A
:class:`CommitQueue` takes commit jobs (callables given the stream's writer), runs them
one by one on its own thread in submission order (so commits land in the order the
frames were decoded), and holds at most ``max_jobs`` waiting jobs: a slow disk blocks
the producer instead of growing memory. :meth:`CommitQueue.close` runs every job still
queued, then closes the writer.

Group commit: a job with a ``merge(later_job)`` method (returning one job doing both,
or None when they cannot be merged) is merged with the jobs already waiting behind
it before it runs. A commit costs about the same for one frame or ten (chunks of
face crops are rewritten whole), so when the store falls behind, the batches waiting
go in as one commit and it catches up instead of falling further behind.

The first job that raises stops the queue: the jobs after it are dropped (their rows
were never committed, so a resumed run redoes them) and the error is raised again in
the producer by the next :meth:`~CommitQueue.submit` or by :meth:`~CommitQueue.close`.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

from streamface.checks import check_int

__all__ = ["CommitQueue"]

_CLOSE = object()


class CommitQueue:
    """Run ``job(writer)`` callables in order on a background thread.

    Parameters
    ----------
    writer : StreamWriter
        The stream's writer; only the queue's thread uses it until :meth:`close`.
    max_jobs : int, default 4
        Jobs waiting at most (each holds one batch of frames and faces in memory).
    name : str, default "commits"
        Thread name (shown in tracebacks and debuggers).
    close_writer : bool, default True
        Close the writer in :meth:`close` after the last job.
    """

    def __init__(self, writer, *, max_jobs: int = 4, name: str = "commits",
                 close_writer: bool = True) -> None:
        check_int("max_jobs", max_jobs)
        self.writer = writer
        self.close_writer = close_writer
        self.error: BaseException | None = None
        #: Jobs merged into an earlier one (group commits).
        self.merged = 0
        self._jobs: queue.Queue = queue.Queue(maxsize=max_jobs)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable) -> None:
        """Queue ``job``; blocks while ``max_jobs`` are waiting; raises a failed job's error."""
        self._raise_error()
        if self._closed:
            raise RuntimeError("submit() after close()")
        while True:
            try:
                self._jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                self._raise_error()  # the worker died: never block forever

    def close(self) -> None:
        """Run the queued jobs, close the writer (idempotent); raise a failed job's error."""
        if not self._closed:
            self._closed = True
            self._jobs.put(_CLOSE)
            self._thread.join()
        self._raise_error()

    @property
    def pending(self) -> int:
        """Jobs waiting (not counting the one running)."""
        return self._jobs.qsize()

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _next_job(self, carried):
        """The next job to run, merged with those waiting behind it; (job, carried over)."""
        job = carried if carried is not None else self._jobs.get()
        while job is not _CLOSE and hasattr(job, "merge"):
            try:
                later = self._jobs.get_nowait()
            except queue.Empty:
                break
            merged = job.merge(later) if later is not _CLOSE else None
            if merged is None:
                return job, later
            job = merged
            self.merged += 1
        return job, None

    def _work(self) -> None:
        failed, carried = False, None
        try:
            while True:
                job, carried = self._next_job(carried)
                if job is _CLOSE:
                    return
                if failed:
                    continue  # drain without running: the producer learns of the error
                try:
                    job(self.writer)
                except BaseException as exc:  # noqa: BLE001 - handed to the producer
                    self.error, failed = exc, True
        finally:
            if self.close_writer:
                try:
                    self.writer.close()
                except BaseException as exc:  # noqa: BLE001
                    if self.error is None and not failed:
                        self.error = exc
