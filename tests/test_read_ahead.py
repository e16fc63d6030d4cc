"""ReadAhead: items in order, errors at their position, an early exit stops the thread."""

from __future__ import annotations

import threading
import time

import pytest

from streamface.engine.read_ahead import ReadAhead


def test_items_come_in_order_with_what_prepare_made():
    with ReadAhead(range(50), prepare=lambda x: x * 2, depth=3) as items:
        assert list(items) == [(x, 2 * x) for x in range(50)]


def test_an_error_comes_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise OSError("read failed at 3")

    got = []
    with pytest.raises(OSError, match="read failed at 3"), ReadAhead(source()) as items:
        for item, _ in items:
            got.append(item)
    assert got == [1, 2]


def test_leaving_early_stops_the_thread_with_at_most_depth_items_read_past():
    read = []

    def source():
        for i in range(10_000):
            read.append(i)
            yield i

    ahead = ReadAhead(source(), depth=2)
    for item, _ in ahead:
        if item == 5:
            break
    ahead.close()
    assert not ahead._thread.is_alive()
    assert len(read) <= 6 + 2 + 2  # consumed + queued + the one in hand when stopped


def test_the_source_runs_on_another_thread_while_the_consumer_works():
    threads = set()

    def source():
        for i in range(3):
            threads.add(threading.current_thread().name)
            time.sleep(0.05)
            yield i

    started = time.perf_counter()
    with ReadAhead(source(), name="decode-test") as items:
        for _ in items:
            time.sleep(0.05)  # the consumer's work overlaps the next read
    assert threads == {"decode-test"}
    assert time.perf_counter() - started < 0.05 * 6 - 0.02


def test_depth_is_validated():
    with pytest.raises(ValueError, match="depth"):
        ReadAhead([], depth=0)
