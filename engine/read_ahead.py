"""Decode ahead on a thread of its own, so decoding overlaps the work done per frame.

Decoding (FFmpeg) and the RGB conversion release the GIL, and so do the keyframe
scores, so a decoder that runs a few frames ahead of the selection keeps two cores
busy where one loop would leave one waiting. :class:`ReadAhead` wraps any iterable
(a :class:`~streamface.engine.VideoDecoder`): a thread pulls items, applies ``prepare``
to each (e.g. the RGB conversion) and hands them over through a queue of ``depth``
items, so memory stays bounded when the consumer is slower.

Errors raised by the iterable (or ``prepare``) come out of the consumer's loop at the
position where they happened, after the items before them. Leaving the loop early
(``break``, an exception, :meth:`ReadAhead.close`) stops the thread after its current
item; nothing is closed behind its back, so the caller closes the decoder afterwards,
once the thread is out of it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from streamface.checks import check_int

__all__ = ["ReadAhead"]

_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead:
    """Iterate ``(item, prepare(item))`` pairs produced on a background thread.

    Parameters
    ----------
    source : iterable
        Read only by the background thread.
    prepare : callable, optional
        ``prepare(item)`` run on the background thread; None hands over ``None``.
    depth : int, default 4
        Items decoded ahead at most (a 1080p RGB frame is 6 MB).
    name : str, default "read-ahead"
        Thread name.

    Examples
    --------
    >>> with ReadAhead(range(3), prepare=lambda x: x * x) as items:
    ...     [pair for pair in items]
    [(0, 0), (1, 1), (2, 4)]
    """

    def __init__(self, source: Iterable, prepare: Callable[[Any], Any] | None = None, *,
                 depth: int = 4, name: str = "read-ahead") -> None:
        check_int("depth", depth)
        self._source = source
        self._prepare = prepare
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._started = False

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            got = self._items.get()
            if got is _END:
                return
            if isinstance(got, _Failure):
                raise got.error
            yield got

    def close(self) -> None:
        """Stop the thread after its current item and wait for it (idempotent)."""
        self._stop.set()
        if self._started:
            while self._thread.is_alive():
                try:  # make room, so a thread blocked on a full queue sees the stop
                    self._items.get(timeout=0.05)
                except queue.Empty:
                    pass
            self._thread.join()

    def _put(self, value) -> bool:
        while not self._stop.is_set():
            try:
                self._items.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._source:
                prepared = self._prepare(item) if self._prepare is not None else None
                if not self._put((item, prepared)):
                    return
                if self._stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(_Failure(exc))
            return
        self._put(_END)
