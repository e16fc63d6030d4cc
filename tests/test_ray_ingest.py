"""``streamface ingest --ray`` on a real local Ray instance (issue 10).

- ``Ingest(decode=False)``, what the inference actors run: kept frames handed in from
  outside, a frame sent twice stored once, a full stream refusing more.
- Placement: one inference actor per GPU (per node without GPUs), streams dealt over
  them, reservations that fit the node.
- Two file streams through the CLI on Ray store what one process stores.
- Two live HLS streams on 127.0.0.1, one decoder actor each beside the inference
  actor of their node; a decoder actor, or an inference actor, is killed mid-run: Ray
  restarts it, its stream continues after what the store holds, and every stream ends
  with each scene stored once (no frame twice, none of the clip's scenes lost beyond
  the ones in flight).
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from engine_fixtures import engine_home  # noqa: F401 (pytest fixture)
from pipeline_fixtures import clip, cut_clip, ingest_options, model_home  # noqa: F401 (pytest fixtures)
from streamface.ingest.options import build_ingest
from streamface.cli import main as cli
from streamface.engine.decode import VideoDecoder
from streamface.ingest.multi_stream import FrameTiming, StreamCounters, StreamStart
from streamface.ingest.config import StreamSpec
from streamface.ingest.keyframes import KeyframeSelector
from streamface.ingest.ray_streams import RayIngest, _Lives, place_streams, plan_placement
from streamface.ops.ray_pool import RayPool
from streamface.store import FaceStore

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
from ray_fixtures import kept_counts, live_ingest, restarted, stored_times  # noqa: E402

@pytest.fixture(scope="module")
def pool(model_home):  # noqa: F811 - the workers inherit STREAMFACE_HOME at start
    with RayPool(num_cpus=2) as pool:
        yield pool


def _kept_frames(clip, max_frames: int) -> list:  # noqa: F811
    """The kept frames of the clip's first ``max_frames`` decoded frames, as a decoder actor sends them."""
    selector = KeyframeSelector()
    with_rgb = [(FrameTiming(f.time_us, f.pts, f.index, time.monotonic()), f.rgb())
                for f in VideoDecoder(str(clip), max_frames=max_frames)]
    return [k for timed, rgb in with_rgb for k in selector.offer(timed, rgb)] + selector.finish()


def _outside_ingest(clip, store, name="news", **params):  # noqa: F811
    job = build_ingest([StreamSpec(name, str(clip))], store=str(store), options=ingest_options(), decode=False)
    for name, value in params.items():
        setattr(job, name, value)
    job.open()
    return job


def test_ingest_stores_frames_from_outside_once_even_when_sent_twice(clip, model_home, tmp_path):  # noqa: F811
    kept = _kept_frames(clip, 8)
    job = _outside_ingest(clip, tmp_path / "s.zarr")
    assert job.open_stream("news", live=False) == StreamStart(None, None)  # a new stream: from the start
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("summary", job.call()), daemon=True)
    runner.start()
    sent = [job.offer("news", k, wait=5.0) for k in kept] + [job.offer("news", kept[-1], wait=5.0)]
    job.end_stream("news")
    job.end_stream("news")  # repeating is harmless
    runner.join(timeout=60)
    assert sent == ["kept"] * len(kept) + ["stale"]
    assert list(stored_times(tmp_path / "s.zarr", "news")) == [k.item.time_us for k in kept]
    counters = result["summary"].streams[0]
    assert counters.keyframes == len(kept) > 2
    faces = FaceStore.open(tmp_path / "s.zarr").stream("news").num_faces
    assert counters.stored == (str(tmp_path / "s.zarr"), len(kept), faces) and faces == counters.faces > 0
    # Another ingest of the store (an inference actor restarted) continues after it.
    again = _outside_ingest(clip, tmp_path / "s.zarr")
    assert again.open_stream("news", live=False).after_time_us == kept[-1].item.time_us
    assert again.counters[0].stored == (str(tmp_path / "s.zarr"), len(kept), faces)  # what it found
    assert again.offer("news", kept[0]) == "stale"
    again.end_stream("news")
    assert again.call().streams[0].keyframes == 0


def test_restarted_actors_count_what_a_dead_life_committed_after_its_last_report():
    at = "/stores/s.zarr"
    lives = _Lives("news")
    lives.update("a", StreamCounters("news", keyframes=0, stored=(at, 6, 10)))  # opened: 6 frames there
    lives.update("a", StreamCounters("news", keyframes=4, faces=9, latency_s=1.0, stored=(at, 10, 19)))
    # Life "a" died after committing 2 more frames (5 faces); "b" has not opened the stream yet.
    lives.update("b", StreamCounters("news"))
    assert (lives.total.keyframes, lives.total.faces) == (4, 9)
    lives.update("b", StreamCounters("news", keyframes=1, faces=1, latency_s=3.0, stored=(at, 13, 25)))
    assert (lives.total.keyframes, lives.total.faces) == (13 - 6, 25 - 10)
    assert lives.total.latency_s == pytest.approx((6 * 1.0 + 3.0) / 7)  # unreported ones at a's mean
    # "c" opens another rotation period's store: what "b" did after its report is unknown.
    lives.update("c", StreamCounters("news", keyframes=2, faces=3, stored=("/stores/next.zarr", 2, 3)))
    assert (lives.total.keyframes, lives.total.faces) == (7 + 2, 15 + 3)
    # Decoders never open the store: their lives add up.
    decoded = _Lives("news")
    for token, frames in (("a", 5), ("a", 9), ("b", 4)):
        decoded.update(token, StreamCounters("news", frames=frames))
    assert decoded.total.frames == 13


def test_a_full_stream_refuses_frames_until_inference_frees_a_slot(clip, model_home, tmp_path):  # noqa: F811
    kept = _kept_frames(clip, 8)[:3]
    job = _outside_ingest(clip, tmp_path / "s.zarr", in_flight=2)
    job.open_stream("news", live=True)
    # No inference running yet: two frames fill the stream's slots, a live stream drops the third.
    assert [job.offer("news", k) for k in kept] == ["kept", "kept", "full"]
    runner = threading.Thread(target=job.call, daemon=True)
    runner.start()
    assert job.offer("news", kept[2], wait=30.0) == "kept"  # a file waits for room instead
    job.end_stream("news")
    runner.join(timeout=60)
    assert len(stored_times(tmp_path / "s.zarr", "news")) == 3


def test_streams_are_dealt_round_robin():
    specs = [StreamSpec(f"s{i}", "x") for i in range(5)]
    assert [[s.name for s in g] for g in place_streams(specs, 2)] == [["s0", "s2", "s4"], ["s1", "s3"]]
    assert len(place_streams(specs, 9)) == 5
    with pytest.raises(ValueError, match="groups"):
        place_streams(specs, 0)


def test_one_inference_actor_per_gpu_or_per_node_without_gpus():
    specs = [StreamSpec(f"s{i}", "x") for i in range(5)]
    plan = plan_placement([("gpu-node", 8, 2), ("cpu-node", 4, 0)], specs)
    assert [(p.node_id, p.inference_gpus, [s.name for s in p.specs]) for p in plan] == [
        ("gpu-node", 1.0, ["s0", "s3"]), ("gpu-node", 1.0, ["s1", "s4"]), ("cpu-node", 0.0, ["s2"])]
    assert {(p.inference_cpus, p.decoder_cpus) for p in plan} == {(1.0, 0.25)}
    # More actors than GPUs share them; fewer streams than actors leave actors out.
    shared = plan_placement([("gpu-node", 8, 2)], specs, groups=3)
    assert [p.inference_gpus for p in shared] == [0.6666] * 3
    assert len(plan_placement([("a", 2, 0), ("b", 2, 0)], specs[:1])) == 1


def test_reservations_shrink_to_fit_a_small_node():
    specs = [StreamSpec(f"s{i}", "x") for i in range(2)]
    plan = plan_placement([("node", 2, 0)], specs, groups=2)  # asks 2 x 1 + 2 x 0.25 CPUs of 2
    assert [(p.inference_cpus, p.decoder_cpus) for p in plan] == [(0.8, 0.2)] * 2
    for bad, message in ((dict(groups=0), "groups"), (dict(decoder_cpus=-1), "decoder_cpus")):
        with pytest.raises(ValueError, match=message):
            plan_placement([("node", 2, 0)], specs, **bad)
    with pytest.raises(ValueError, match="no alive node"):
        plan_placement([("head", 0, 0)], specs)


@pytest.mark.slow
def test_cli_ingest_on_ray_stores_what_one_process_stores(pool, clip, model_home, tmp_path):  # noqa: F811
    hamilton = clip.parent.parent / "videos" / "hamilton_clip.mp4"
    if not hamilton.exists():
        pytest.skip(f"{hamilton} not found (shared data)")
    args = ["--source", f"news={clip}", "--source", f"hamilton={hamilton}", "--no-progress",
            "--index-threshold", "0.5"]
    runner = CliRunner()
    plain = runner.invoke(cli, ["ingest", *args, "--store", str(tmp_path / "plain.zarr")])
    assert plain.exit_code == 0, plain.output
    # The shared store as an fsspec URL, as a cluster's nodes would name one (s3://...).
    on_ray = runner.invoke(cli, ["ingest", *args, "--store", f"file://{tmp_path / 'ray.zarr'}", "--ray",
                                 "--ray-groups", "2"])
    assert on_ray.exit_code == 0, on_ray.output
    assert "2/2 streams ok" in on_ray.output
    for name in ("news", "hamilton"):
        a, b = FaceStore.open(tmp_path / "plain.zarr").stream(name), FaceStore.open(tmp_path / "ray.zarr").stream(name)
        assert np.array_equal(a.read_frames().time_us, b.read_frames().time_us)
        assert a.num_faces == b.num_faces > 0 and b.num_embedded == b.num_faces
        np.testing.assert_allclose(a.read_faces().box, b.read_faces().box, atol=0.5)
        # Online identification in the inference actors: every face has its live label.
        assert b.num_index_labelled == b.num_faces
        np.testing.assert_array_equal(a.read_labels(kind="index"), b.read_labels(kind="index"))


def test_ingest_on_ray_resumes_a_touched_file_and_keeps_a_truncated_files_frames(  # noqa: F811
        pool, clip, cut_clip, model_home, tmp_path):
    """As ``ingest`` in one process (test_newcomer.py): a file's content keeps the capture
    times first recorded for it, and a file cut short keeps what decoded and exits 4."""
    copy = tmp_path / "news.mp4"
    shutil.copyfile(clip, copy)
    store = tmp_path / "s.zarr"
    runner = CliRunner()
    first = runner.invoke(cli, ["ingest", "--source", f"news={copy}", "--store", str(store), "--no-progress"])
    assert first.exit_code == 0, first.output
    before = FaceStore.open(store).stream("news")
    frames, ids = before.num_frames, before.face_ids().tolist()
    later = time.time() + 86400  # a day later: the file's own clock moved
    os.utime(copy, (later, later))
    again = runner.invoke(cli, ["ingest", "--source", f"news={copy}", "--source", f"trunc={cut_clip}",
                                "--store", str(store), "--no-progress", "--ray"])
    assert again.exit_code == 4, again.output
    lines = again.output.strip().splitlines()
    assert next(line for line in lines if line.startswith("news: ")).startswith("news: 0 frames"), again.output
    assert next(line for line in lines if line.startswith("trunc: ")).endswith(
        "; truncated at 16.0 s of 55.0 s, what decoded is stored"), again.output
    after = FaceStore.open(store)
    assert (after.stream("news").num_frames, after.stream("news").face_ids().tolist()) == (frames, ids)
    assert after.stream("trunc").num_frames >= 6


@pytest.mark.slow
def test_a_stream_that_cannot_be_opened_fails_alone_on_ray(pool, clip, model_home, tmp_path):  # noqa: F811
    specs = [StreamSpec("news", str(clip)), StreamSpec("bad", "http://127.0.0.1:9/live.m3u8")]
    make = functools.partial(build_ingest, store=str(tmp_path / "s.zarr"),
                             options=ingest_options("--max-frames", "12", "--max-reconnects", "0"))
    summary = RayIngest(specs, make, pool=pool).call()
    assert [c.name for c in summary.failed] == ["bad"]
    assert "cannot open" in summary.failed[0].error
    news = summary.streams[0]
    assert news.frames == 12 and news.keyframes == len(stored_times(tmp_path / "s.zarr", "news")) > 0
    assert FaceStore.open(tmp_path / "s.zarr").streams == ["news"]  # no group for the bad source


@pytest.mark.slow
def test_stop_ends_every_stream_and_commits_what_was_sent(pool, clip, model_home, tmp_path):  # noqa: F811
    # Sampling 4 frames a second, not keyframes only: an idle machine decodes the clip's
    # keyframes before the first commit, and then stop() would have nothing left to end.
    specs = [StreamSpec(n, str(clip), {"sample_fps": 4.0}) for n in ("a", "b")]
    make = functools.partial(build_ingest, store=str(tmp_path / "s.zarr"), options=ingest_options())
    job = RayIngest(specs, make, pool=pool)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("summary", job.call(progress_interval=0.2)),
                              daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and min(c.keyframes for c in job.counters) < 2:
        time.sleep(0.1)
    job.stop()
    runner.join(timeout=60)
    assert not runner.is_alive(), "the ingest did not end after stop()"
    summary = result["summary"]
    assert not summary.failed, summary.lines()
    for counters in summary.streams:
        stored = stored_times(tmp_path / "s.zarr", counters.name)
        assert counters.keyframes == len(stored) >= 2
    whole = sum(1 for _ in VideoDecoder(str(clip), sample_fps=4.0))
    assert all(c.frames < whole for c in summary.streams), "stop() did not end the streams early"


@pytest.mark.slow
def test_a_killed_decoder_actor_restarts_and_resumes_without_duplicates(pool, clip, model_home,  # noqa: F811
                                                                       tmp_path):
    seen = {}

    def kill_decoder(job):
        # One decoder actor per stream, each in its own process, on the node of the one
        # inference actor that batches both streams.
        assert sorted(job.decoders) == ["live0", "live1"] and len(job.inference) == 1
        decoder_pids = {name: ray.get(actor.pid.remote()) for name, actor in job.decoders.items()}
        inference_pid = ray.get(job.inference[0].pid.remote())
        assert len({*decoder_pids.values(), inference_pid}) == 3
        node = ray.get(job.inference[0].node.remote())
        assert all(ray.get(actor.node.remote()) == node for actor in job.decoders.values())
        seen["killed_us"], killed = time.time() * 1e6, time.monotonic()
        ray.kill(job.decoders["live0"], no_restart=False)  # the process dies; Ray restarts the actor
        assert restarted(job.decoders["live0"], decoder_pids["live0"], within=60), \
            "Ray did not restart the killed decoder actor"
        seen["down_s"] = time.monotonic() - killed
        seen["inference_pid"] = (inference_pid, ray.get(job.inference[0].pid.remote()))
        seen["live1_pid"] = (decoder_pids["live1"], ray.get(job.decoders["live1"].pid.remote()))

    times, summary = live_ingest(pool, clip, tmp_path, None, kill_decoder)
    assert seen["inference_pid"][0] == seen["inference_pid"][1], "the inference actor restarted too"
    assert seen["live1_pid"][0] == seen["live1_pid"][1], "the other stream's decoder restarted too"
    assert np.sum(times["live0"] > seen["killed_us"]) >= 3, "live0 stored nothing after its restart"
    # live1 ran untouched; live0 lost at most what its source published while its decoder
    # was down (a live frame's capture time is its decoding time, so a frame published
    # then cannot be told from a stored one and is not fetched again), and 2 for the
    # keyframe selection starting afresh.
    live0, live1 = kept_counts(times, summary).values()
    published = live1 / ((times["live1"][-1] - times["live1"][0]) / 1e6) * seen["down_s"]
    assert live1 >= 15
    assert live0 >= live1 - 2 - published, (live0, live1, seen["down_s"])


@pytest.mark.slow
def test_a_killed_inference_actor_restarts_and_resumes_without_duplicates(pool, clip, model_home,  # noqa: F811
                                                                         tmp_path):
    seen = {}

    def kill_inference(job):
        # Two inference actors (--ray-groups 2), one per stream: live1's is left alone.
        assert len(job.inference) == 2 and [s.name for s in job.placements[0].specs] == ["live0"]
        before = ray.get(job.inference[0].pid.remote())
        seen["killed_us"] = time.time() * 1e6
        ray.kill(job.inference[0], no_restart=False)
        assert restarted(job.inference[0], before, within=60), "Ray did not restart the inference actor"

    times, summary = live_ingest(pool, clip, tmp_path, 2, kill_inference)
    assert np.sum(times["live0"] > seen["killed_us"]) >= 3, "live0 stored nothing after the restart"
    # live0 lost at most the frames its inference actor held when it died.
    live0, live1 = kept_counts(times, summary).values()
    assert live1 >= 15
    assert live0 >= live1 - 3, (live0, live1)


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
