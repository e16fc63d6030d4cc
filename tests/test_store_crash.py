"""The store survives writers killed with SIGKILL, and keeps one writer per stream across processes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from store_worker import FACES_PER_FRAME, check_rows, faces_for, frames_for
from streamface.store import FaceStore, StoreLockedError

WORKER = Path(__file__).with_name("store_worker.py")
BATCH = 64

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fcntl are POSIX")


def _start(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _read_until(proc: subprocess.Popen, predicate, timeout: float = 60.0) -> list[str]:
    """Lines of the worker's stdout up to (and including) the first for which ``predicate`` holds."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"worker exited early ({proc.wait()}): {proc.stderr.read()}")
        lines.append(line.strip())
        if predicate(lines[-1]):
            return lines
    raise AssertionError(f"worker too slow: {lines}")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()


def _assert_consistent(store_path: Path, at_least: int) -> int:
    """Reopen read-only: committed rows are intact and complete; return how many there are."""
    stream = FaceStore.open(store_path, mode="r").stream("cam")
    n = stream.num_faces
    assert n >= at_least
    assert n % BATCH == 0, "a batch was committed in part"
    assert stream.num_frames == n // FACES_PER_FRAME, "frames and faces were committed apart"
    check_rows(stream, n)
    with pytest.raises(IndexError):
        stream.read_faces(0, n + 1)
    return n


def test_sigkill_mid_append_keeps_committed_rows_and_resume_continues_without_gaps(tmp_path):
    store_path = tmp_path / "crash.zarr"
    rng = random.Random(1234)
    committed = 0
    # Round 1: kill right after the worker announced an append (it is writing chunks).
    # Round 2: kill at a random moment after a commit.
    for round_ in range(2):
        proc = _start("append", str(store_path), "cam", "--batches", "200", "--batch-faces", str(BATCH))
        lines = _read_until(proc, lambda s: s.startswith("commit") and int(s.split()[1]) >= committed + 3 * BATCH)
        if round_ == 0:
            lines += _read_until(proc, lambda s: s.startswith("begin"))
            time.sleep(rng.uniform(0.0, 0.03))
        else:
            time.sleep(rng.uniform(0.0, 0.2))
        _kill(proc)
        last_commit = max(int(s.split()[1]) for s in lines if s.startswith("commit"))
        committed = _assert_consistent(store_path, last_commit)

    # Resume in this process: the writer cuts what the killed one left past the counters.
    store = FaceStore.open(store_path, mode="r+")
    with store.writer("cam", flush_rows=BATCH) as w:
        assert w.num_faces == committed
        for _ in range(2):
            rows = w.num_faces
            w.append_frames(frames_for(rows // FACES_PER_FRAME, BATCH // FACES_PER_FRAME))
            w.append_faces(faces_for(rows, BATCH))
            w.flush()
    stream = FaceStore.open(store_path).stream("cam")
    assert stream.num_faces == committed + 2 * BATCH
    check_rows(stream, stream.num_faces)
    ids = stream.face_ids()
    assert len(np.unique(ids)) == len(ids), "duplicate face ids"
    # After a clean close the arrays hold exactly the committed rows.
    crop = stream._faces["crop"]
    assert crop.capacity == stream.num_faces


def test_a_reader_following_a_live_writer_only_ever_sees_complete_batches(tmp_path):
    store_path = tmp_path / "live.zarr"
    proc = _start("append", str(store_path), "cam", "--batches", "8", "--batch-faces", str(BATCH))
    try:
        _read_until(proc, lambda s: s.startswith("begin"))
        stream = FaceStore.open(store_path, mode="r").stream("cam")
        seen = set()
        while proc.poll() is None:
            n = stream.refresh().num_faces
            assert n % BATCH == 0 and stream.num_frames == n // FACES_PER_FRAME
            if n and n not in seen:
                seen.add(n)
                last = stream.read_faces(n - BATCH, n)
                np.testing.assert_array_equal(last.crop, faces_for(n - BATCH, BATCH).crop)
            time.sleep(0.01)
        assert proc.wait() == 0, proc.stderr.read()
        assert len(seen) >= 2, "the reader never saw the writer's progress"
        check_rows(stream.refresh(), 8 * BATCH)
    finally:
        if proc.poll() is None:
            _kill(proc)
        else:
            proc.stdout.close()
            proc.stderr.close()


def test_second_writer_in_another_process_is_refused_until_the_first_is_killed(tmp_path):
    store_path = tmp_path / "lock.zarr"
    holder = _start("hold", str(store_path), "cam")
    try:
        _read_until(holder, lambda s: s.startswith("locked"))
        store = FaceStore.open(store_path, mode="r+")
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid} on host"):
            store.writer("cam")
        # Readers are not blocked by the writer.
        assert store.stream("cam").num_faces == 0
    finally:
        _kill(holder)
    # The kernel released the dead writer's lock: a new writer opens at once.
    with FaceStore.open(store_path, mode="r+").writer("cam") as w:
        assert w.num_faces == 0


def test_second_writer_in_the_same_process_is_refused(tmp_path):
    store = FaceStore.create(tmp_path / "s.zarr")
    with store.writer("cam", create=True):
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
            store.writer("cam")
    store.writer("cam").close()  # released on close
