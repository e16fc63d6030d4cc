"""A store writer run as a separate process by the store tests (and the rows it writes).

Every value of face row ``r`` (and of its frame, ``r // 2``) is a function of
``r``, so a test can check any committed row without knowing how the rows got
there. Run::

    python tests/store_worker.py append STORE STREAM --batches N [--batch-faces B]
    python tests/store_worker.py hold STORE STREAM

``append`` resumes the stream and appends batches of B faces (B/2 frames), one
commit per batch, printing ``begin <rows>`` before and ``commit <rows>`` after
each; ``hold`` takes the writer, prints ``locked <pid>`` and sleeps.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

CROP = 256
ALIGNED = 112
T0 = 1_684_998_098_412_614  # 2023-05-25 07:01:38.412614 UTC
FACES_PER_FRAME = 2


def frames_for(first_frame: int, n: int):
    """Frames ``[first_frame, first_frame + n)``."""
    from streamface.store import FrameRecords

    rows = np.arange(first_frame, first_frame + n)
    return FrameRecords(time_us=T0 + rows * 40_000, width=np.full(n, 1920), height=np.full(n, 1080),
                        pts=rows * 0.04, source_index=rows * 25, blur=rows.astype(np.float32) + 0.5)


@functools.lru_cache(maxsize=4)
def _pattern(size: int) -> np.ndarray:
    i = np.arange(size)
    return ((i[:, None, None] + 2 * i[None, :, None] + 85 * np.arange(3)[None, None, :]) % 256).astype(np.uint8)


def faces_for(first_row: int, n: int, crop: int = CROP, aligned: int = ALIGNED):
    """Face rows ``[first_row, first_row + n)`` (``first_row`` and ``n`` even)."""
    from streamface.store import FaceRecords

    rows = np.arange(first_row, first_row + n)
    # uint8 arithmetic wraps modulo 256
    crops = _pattern(crop)[None] + (rows % 256).astype(np.uint8)[:, None, None, None]
    alig = _pattern(aligned)[None] + ((3 * rows) % 256).astype(np.uint8)[:, None, None, None]
    return FaceRecords(
        frame=rows // FACES_PER_FRAME,
        face=rows % FACES_PER_FRAME,
        score=(rows % 1000) / 1000.0,
        box=(rows[:, None] + np.arange(4)[None]) % 10_000,
        landmarks=rows[:, None, None] * 0.5 + np.arange(10).reshape(1, 5, 2),
        crop=crops,
        crop_size=np.stack([crop - rows % 5, crop - rows % 3], axis=1),
        aligned=alig,
        blur=rows * 0.25,
        match=rows // 4,
    )


def check_rows(stream, stop: int, batch: int = 128) -> None:
    """Assert that faces ``[0, stop)`` and their frames are exactly what :func:`faces_for` wrote."""
    assert stream.num_faces >= stop
    for start in range(0, stop, batch):
        end = min(stop, start + batch)
        got = stream.read_faces(start, end)
        want = faces_for(start, end - start).validate(stream.config.crop_size, stream.config.aligned_size)
        for name in ("frame", "face", "score", "box", "landmarks", "crop", "crop_size", "aligned", "blur", "match"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=f"{name} rows {start}:{end}")
    nframes = stop // FACES_PER_FRAME
    frames = stream.read_frames(0, nframes)
    want_frames = frames_for(0, nframes).validate()
    for name in ("time_us", "width", "height", "pts", "source_index", "blur"):
        np.testing.assert_array_equal(getattr(frames, name), getattr(want_frames, name), err_msg=name)


def append(store_path: str, stream: str, batches: int, batch_faces: int) -> None:
    from streamface.store import FaceStore

    store = FaceStore.open(store_path, mode="a")
    with store.writer(stream, create=True, crop_size=CROP, aligned_size=ALIGNED, flush_rows=batch_faces) as w:
        for _ in range(batches):
            rows = w.num_faces
            frames = frames_for(rows // FACES_PER_FRAME, batch_faces // FACES_PER_FRAME)
            faces = faces_for(rows, batch_faces)
            print(f"begin {rows}", flush=True)  # from here until "commit", the batch is being written
            w.append_frames(frames)
            w.append_faces(faces)
            w.flush()  # writes the arrays, then commits
            print(f"commit {w.num_faces}", flush=True)


def hold(store_path: str, stream: str) -> None:
    from streamface.store import FaceStore

    store = FaceStore.open(store_path, mode="a")
    writer = store.writer(stream, create=True, crop_size=CROP, aligned_size=ALIGNED)
    print(f"locked {os.getpid()}", flush=True)
    time.sleep(120)
    writer.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=("append", "hold"))
    parser.add_argument("store")
    parser.add_argument("stream")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-faces", type=int, default=64)
    args = parser.parse_args(argv)
    if args.action == "append":
        append(args.store, args.stream, args.batches, args.batch_faces)
    else:
        hold(args.store, args.stream)


if __name__ == "__main__":
    main(sys.argv[1:])
