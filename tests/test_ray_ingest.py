"""``streamface ingest --ray`` on a real local Ray instance (issue 10).

- Two file streams through the CLI on Ray store what one process stores.
- Two live HLS streams on 127.0.0.1, each in its own actor; one actor is killed
  mid-run: Ray restarts it, its ingest continues from the store, and every stream
  ends with each scene stored once (no frame twice, none of the clip's scenes lost
  beyond the one in flight).
"""

from __future__ import annotations

import functools
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from engine_fixtures import engine_home  # noqa: F401 (pytest fixture)
from hls_server import HLSServer, LiveHLS, cut_segments
from pipeline_fixtures import clip, ingest_options, model_home  # noqa: F401 (pytest fixtures)
from streamface.cli import ingest_for_specs
from streamface.cli import main as cli
from streamface.ingest_config import StreamSpec
from streamface.ray_ingest import RayIngest, place_streams
from streamface.ray_pool import RayPool
from streamface.store import FaceStore

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

SPEED = 3.0  # live clock vs wall clock: the 55 s clip in ~18 s


@pytest.fixture(scope="module")
def pool(model_home):  # noqa: F811 - the workers inherit STREAMFACE_HOME at start
    with RayPool(num_cpus=2) as pool:
        yield pool


def _times(store, name) -> np.ndarray:
    return FaceStore.open(store).stream(name).read_frames().time_us


def _restarted(actor, old_pid: int, within: float) -> bool:
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


def test_streams_are_dealt_round_robin():
    specs = [StreamSpec(f"s{i}", "x") for i in range(5)]
    assert [[s.name for s in g] for g in place_streams(specs, 2)] == [["s0", "s2", "s4"], ["s1", "s3"]]
    assert len(place_streams(specs, 9)) == 5
    with pytest.raises(ValueError, match="groups"):
        place_streams(specs, 0)


@pytest.mark.slow
def test_cli_ingest_on_ray_stores_what_one_process_stores(pool, clip, model_home, tmp_path):  # noqa: F811
    hamilton = clip.parent.parent / "videos" / "hamilton_clip.mp4"
    if not hamilton.exists():
        pytest.skip(f"{hamilton} not found (shared data)")
    args = ["--source", f"news={clip}", "--source", f"hamilton={hamilton}", "--no-progress"]
    runner = CliRunner()
    plain = runner.invoke(cli, ["ingest", *args, "--store", str(tmp_path / "plain.zarr")])
    assert plain.exit_code == 0, plain.output
    on_ray = runner.invoke(cli, ["ingest", *args, "--store", str(tmp_path / "ray.zarr"), "--ray",
                                 "--ray-groups", "2"])
    assert on_ray.exit_code == 0, on_ray.output
    assert "2/2 streams ok" in on_ray.output
    for name in ("news", "hamilton"):
        a, b = FaceStore.open(tmp_path / "plain.zarr").stream(name), FaceStore.open(tmp_path / "ray.zarr").stream(name)
        assert np.array_equal(a.read_frames().time_us, b.read_frames().time_us)
        assert a.num_faces == b.num_faces > 0 and b.num_embedded == b.num_faces
        np.testing.assert_allclose(a.read_faces().box, b.read_faces().box, atol=0.5)


@pytest.mark.slow
def test_a_killed_actor_restarts_and_resumes_without_duplicates(pool, clip, model_home, tmp_path):  # noqa: F811
    folder = tmp_path / "hls"
    segments = cut_segments(clip, folder, seconds=2.0)
    servers = [HLSServer(LiveHLS(folder, segments, speed=SPEED, window=12)) for _ in range(2)]
    for server in servers:
        server.live.start()
        server.start()
    store = tmp_path / "live.zarr"
    specs = [StreamSpec(f"live{i}", server.url) for i, server in enumerate(servers)]
    make = functools.partial(ingest_for_specs, store=str(store), o=ingest_options("--duration", "60"),
                             max_wait=0.05, max_reconnects=None)
    job = RayIngest(specs, make, pool=pool, groups=2)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("summary", job.call(progress_interval=0.3)))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.counters[0].keyframes < 4:
            time.sleep(0.2)
        assert job.counters[0].keyframes >= 4, "stream live0 stored nothing before the kill"
        before = ray.get(job.actors[0].pid.remote())
        ray.kill(job.actors[0], no_restart=False)  # the process dies; Ray restarts the actor
        assert _restarted(job.actors[0], before, within=60), "Ray did not restart the killed actor"
        runner.join(timeout=180)
        assert not runner.is_alive(), "the ingest did not finish after the actor was killed"
    finally:
        for server in servers:
            server.stop()
    summary = result["summary"]
    assert not summary.failed, summary.lines()
    counts = {}
    for name in ("live0", "live1"):
        times = _times(store, name)
        assert len(np.unique(times)) == len(times), f"{name}: a frame stored twice"
        assert np.all(np.diff(times) > 0)
        stream = FaceStore.open(store).stream(name)
        assert stream.num_embedded == stream.num_faces > 0
        counts[name] = len(times)
    # live1 ran untouched; live0 lost at most the frames in flight when its actor died.
    assert counts["live1"] >= 20
    assert counts["live0"] >= counts["live1"] - 2, counts


@pytest.mark.slow
def test_cli_analyze_on_ray_writes_the_embeddings_of_one_process(pool, clip, model_home, tmp_path):  # noqa: F811
    runner = CliRunner()
    for name in ("plain", "ray"):
        result = runner.invoke(cli, ["ingest", "--source", f"news={clip}", "--store", str(tmp_path / f"{name}.zarr"),
                                     "--no-progress", "--max-frames", "12"])
        assert result.exit_code == 0, result.output
    for name, extra in (("plain", []), ("ray", ["--ray"])):
        result = runner.invoke(cli, ["analyze", str(tmp_path / f"{name}.zarr"), "--no-resume", "--batch-size", "5",
                                     *extra])
        assert result.exit_code == 0, result.output
    a, b = (FaceStore.open(tmp_path / f"{n}.zarr").stream("news") for n in ("plain", "ray"))
    assert a.num_embedded == b.num_embedded == b.num_faces > 5  # more than one batch
    cos = np.sum(a.read_embeddings() * b.read_embeddings(), axis=1)
    assert cos.min() > 0.9999
    np.testing.assert_array_equal(a.read_attribute("pose"), b.read_attribute("pose"))
