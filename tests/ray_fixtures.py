"""Live HLS ingests on Ray for the Ray tests: streams served on 127.0.0.1, actors killed mid-run."""

from __future__ import annotations

import functools
import threading
import time

import numpy as np
import pytest

from hls_server import HLSServer, LiveHLS, cut_segments
from pipeline_fixtures import ingest_options
from streamface.ingest.options import build_ingest
from streamface.ingest.config import StreamSpec
from streamface.ingest.ray_streams import RayIngest
from streamface.store import FaceStore

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

SPEED = 3.0  # live clock vs wall clock: the 55 s clip in ~18 s


def stored_times(store, name) -> np.ndarray:
    return FaceStore.open(store).stream(name).read_frames().time_us


def restarted(actor, old_pid: int, within: float) -> bool:
    """Wait for ``actor`` to answer from another process (``ray.kill`` is asynchronous)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if ray.get(actor.pid.remote(), timeout=10) != old_pid:
                return True
        except ray.exceptions.RayError:
            pass  # dead or restarting
        time.sleep(0.2)
    return False


def actors_up(job, streams: int, within: float) -> None:
    """Wait until ``job`` has started all its actors and each answers (models loaded)."""
    deadline = time.monotonic() + within
    while len(job.decoders) < streams or len(job.inference) < len(job.placements) or not job.placements:
        assert time.monotonic() < deadline, "the Ray actors were not started in time"
        time.sleep(0.1)
    for actor in [*job.inference, *job.decoders.values()]:
        ray.get(actor.pid.remote(), timeout=max(1.0, deadline - time.monotonic()))


def live_ingest(pool, clip, tmp_path, groups, kill):  # noqa: F811
    """Two live HLS streams on Ray; ``kill(job)`` once live0 has stored a few keyframes.

    Returns the stored capture times per stream (after checking that no frame is stored
    twice and every stream was analysed) and the summary.
    """
    folder = tmp_path / "hls"
    segments = cut_segments(clip, folder, seconds=2.0)
    servers = [HLSServer(LiveHLS(folder, segments, speed=SPEED, window=12)) for _ in range(2)]
    for server in servers:
        server.start()  # serving, with the live clocks held at the first segment
    store = tmp_path / "live.zarr"
    specs = [StreamSpec(f"live{i}", server.url) for i, server in enumerate(servers)]
    make = functools.partial(build_ingest, store=str(store), options=ingest_options("--duration", "60"))
    job = RayIngest(specs, make, pool=pool, groups=groups)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("summary", job.call(progress_interval=0.3)))
    runner.start()
    try:
        # The clocks start once every actor is up: a decoder that joined a running live
        # stream late (Ray starting actors on a loaded box) would begin at its live edge.
        actors_up(job, len(specs), within=120)
        for server in servers:
            server.live.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.counters[0].keyframes < 4:
            time.sleep(0.2)
        assert job.counters[0].keyframes >= 4, "stream live0 stored nothing before the kill"
        kill(job)
        runner.join(timeout=180)
        assert not runner.is_alive(), "the ingest did not finish after the actor was killed"
    finally:
        if runner.is_alive():
            job.stop()
        for server in servers:
            server.stop()
    summary = result["summary"]
    assert not summary.failed, summary.lines()
    counts = {}
    for name in ("live0", "live1"):
        times = stored_times(store, name)
        assert len(np.unique(times)) == len(times), f"{name}: a frame stored twice"
        assert np.all(np.diff(times) > 0)
        stream = FaceStore.open(store).stream(name)
        assert stream.num_embedded == stream.num_faces > 0
        counts[name] = times
    # Exact even for a stream whose actors died: what a dead life committed after its
    # last report is found in the store by the next one.
    assert {c.name: c.keyframes for c in summary.streams} == {n: len(t) for n, t in counts.items()}
    return counts, summary


def kept_counts(times, summary) -> dict[str, int]:
    """Kept frames per stream: stored, or dropped because inference was behind (a loaded
    2-core box drops a few now and then, in either stream)."""
    return {c.name: len(times[c.name]) + c.dropped for c in summary.streams}
