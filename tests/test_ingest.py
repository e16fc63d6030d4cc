"""``streamface ingest``: several real streams in one process, against ``run`` on each alone.

The sample clip and the two hard clips (different sizes: 1080p, 360p) go through one
ingest, sampled at 2 fps for 20 s; each stream must hold exactly what ``run`` stores
for it alone (frame times, boxes, track ids, embeddings). Bad streams among good
ones, bad configs, a live HLS stream beside a file, SIGINT and resume.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from engine_fixtures import engine_home  # noqa: F401
from pipeline_fixtures import clip, ingest_options, model_home, scene_starts  # noqa: F401

from streamface.cli import main
from streamface.store import FaceStore

VIDEOS = Path("/work/shared/data/videos")
COMMON = ["--sample-fps", "2", "--duration", "20"]


def _ingest(*args):
    return CliRunner().invoke(main, ["ingest", *map(str, args)])


def _contents(store, name):
    """Frame times, faces (frame, face, box, match) and embeddings of a stream."""
    stream = FaceStore.open(store, mode="r").stream(name)
    return (stream.read_frames().time_us, stream.read_faces(columns=("frame", "face", "box", "match")),
            stream.read_embeddings())


@pytest.fixture(scope="module")
def sources(clip):  # noqa: F811
    found = {"sky": clip}
    for name, file in (("ham", "hamilton_clip.mp4"), ("crowd", "crowd_1080p.mp4")):
        if (VIDEOS / file).is_file():
            found[name] = VIDEOS / file
    return found


@pytest.fixture(scope="module")
def ingested(sources, model_home, tmp_path_factory):  # noqa: F811
    store = tmp_path_factory.mktemp("ingest") / "all.zarr"
    args = [a for name, path in sources.items() for a in ("--source", f"{name}={path}")]
    return store, _ingest(*args, "--store", store, *COMMON)


def test_each_stream_holds_what_run_stores_for_it_alone(sources, ingested, tmp_path):
    store, result = ingested
    assert result.exit_code == 0, result.output
    for name, path in sources.items():
        alone = tmp_path / f"{name}.zarr"
        ran = CliRunner().invoke(main, ["run", str(path), "--store", str(alone), "--name", name, *COMMON])
        assert ran.exit_code == 0, ran.output
        times, faces, emb = _contents(store, name)
        ref_times, ref_faces, ref_emb = _contents(alone, name)
        assert len(times) > 0 and times.tolist() == ref_times.tolist(), name
        assert len(faces) == len(ref_faces) > 0, name
        assert faces.frame.tolist() == ref_faces.frame.tolist() and faces.face.tolist() == ref_faces.face.tolist()
        assert faces.match.tolist() == ref_faces.match.tolist(), f"{name}: track ids differ"
        np.testing.assert_allclose(faces.box, ref_faces.box, atol=0.5, err_msg=name)
        cos = (emb * ref_emb).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref_emb, axis=1))
        assert cos.min() > 0.999, name


def test_summary_is_one_line_per_stream_and_a_total(sources, ingested):
    _, result = ingested
    lines = result.output.strip().splitlines()
    assert len(lines) == len(sources) + 1
    for name, line in zip(sources, lines):
        assert line.startswith(f"{name}: ") and " keyframes, " in line and " dropped" in line
    assert lines[-1].startswith(f"{len(sources)}/{len(sources)} streams ok")


def test_a_config_file_gives_streams_their_own_options(clip, model_home, tmp_path):  # noqa: F811
    config = tmp_path / "streams.toml"
    config.write_text(f'[[stream]]\nname = "a"\nurl = "{clip}"\nmax_frames = 3\n\n'
                      f'[[stream]]\nname = "b"\nurl = "{clip}"\nduration = 6.5\n')
    store = tmp_path / "s.zarr"
    result = _ingest("--config", config, "--store", store)
    assert result.exit_code == 0, result.output
    stored = FaceStore.open(store, mode="r")
    # Keyframes of the clip are 0, 2, 4, 6 s...: 3 decoded frames vs 6.5 s of source.
    assert stored.stream("a").read_frames().pts.tolist() == [0.0, 2.0, 4.0]
    assert stored.stream("b").read_frames().pts.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert stored.stream("b").num_embedded == stored.stream("b").num_faces > 0


def test_bad_streams_fail_alone_with_one_line_each(clip, model_home, tmp_path):  # noqa: F811
    text = tmp_path / "text.mp4"
    text.write_bytes(b"not a video\n")
    store = tmp_path / "s.zarr"
    assert _ingest("--source", f"good={clip}", "--store", store, "--max-frames", "3").exit_code == 0
    before = _contents(store, "good")
    result = _ingest("--source", f"missing={tmp_path / 'missing.mp4'}", "--source", f"good={clip}",
                     "--source", f"text={text}", "--source", "dead=http://127.0.0.1:9/live.m3u8",
                     "--source", f"more={clip}", "--store", store, "--max-frames", "5")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    for name, reason in (("missing", "no such file"), ("text", "not a video"), ("dead", "cannot open")):
        mine = [line for line in lines if line.startswith(f"{name}: ")]
        assert len(mine) == 1 and "FAILED" in mine[0] and reason in mine[0], lines
    assert lines[-1] == "Error: 3 of 5 streams failed: missing, text, dead"
    stored = FaceStore.open(store, mode="r")
    assert sorted(stored.streams) == ["good", "more"]  # a bad source leaves no group behind
    assert stored.stream("more").num_frames == 5
    # The good stream continued after its 3 stored frames; what was there is unchanged.
    times, faces, _ = _contents(store, "good")
    assert len(times) > 3 and times[:3].tolist() == before[0].tolist()
    assert stored.stream("good").num_embedded == stored.stream("good").num_faces


@pytest.mark.parametrize("config, message", [
    (None, "config file not found"),
    ('[[stream]]\nname = "a"\nurl = ', "not valid TOML"),
    ('[[stream]]\nname = "a"\nurl = "x.mp4"\n[[stream]]\nname = "a"\nurl = "y.mp4"\n',
     "stream name 'a' given twice"),
    ('[[stream]]\nname = "a b"\nurl = "x.mp4"\n', "stream 1 ('a b')"),
    ('[[stream]]\nname = "a"\nurl = "x.mp4"\nfps = 2\n', "unknown key 'fps'"),
    ('[[stream]]\nname = "a"\n', "missing key 'url'"),
    ('[[stream]]\nname = "a"\nurl = "x.mp4"\nmax_frames = 0\n', "max_frames must be an integer >= 1"),
    ("title = 'x'\n", "unknown top-level key 'title'"),
])
def test_bad_config_is_one_line_and_exit_1(tmp_path, config, message):
    path = tmp_path / "streams.toml"
    if config is not None:
        path.write_text(config)
    result = _ingest("--config", path, "--store", tmp_path / "s.zarr")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert message in result.output and str(path) in result.output
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("args, message", [
    (["--source", "nameless.mp4"], "expected NAME=URL"),
    (["--source", "a=x.mp4", "--source", "a=y.mp4"], "stream name 'a' given twice"),
    ([], "no stream to ingest"),
])
def test_bad_sources_are_one_line_and_exit_1(tmp_path, args, message):
    result = _ingest(*args, "--store", tmp_path / "s.zarr")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and message in result.output


def test_sigint_commits_then_ingest_again_resumes_without_duplicates(clip, model_home, tmp_path):  # noqa: F811
    # Detector batches (and commits) of one frame, so that the stop lands mid-stream.
    args = ["--source", f"a={clip}", "--source", f"b={clip}", "--sample-fps", "2", "--duration", "20",
            "--batch-size", "1"]
    reference = tmp_path / "ref.zarr"
    assert _ingest(*args, "--store", reference).exit_code == 0
    store = tmp_path / "s.zarr"
    env = dict(os.environ, STREAMFACE_HOME=str(model_home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "streamface.cli", "ingest", *args, "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 60
    total = FaceStore.open(reference, mode="r").stream("a").num_frames
    while _frames(store, "a") < 3:
        assert proc.poll() is None, f"ingest exited early: {proc.communicate()}"
        assert time.monotonic() < deadline, "ingest too slow to commit 3 frames"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # 128 + SIGINT: interrupted, not finished
    assert len(out.strip().splitlines()) == 3 and out.strip().splitlines()[-1].startswith("interrupted: ")
    stopped = FaceStore.open(store, mode="r")
    for name in ("a", "b"):
        stream = stopped.stream(name)
        assert stream.num_frames < total, "stopped after the end: nothing to resume"
        assert stream.num_embedded == stream.num_faces  # all that was decoded was committed

    assert _ingest(*args, "--store", store).exit_code == 0
    for name in ("a", "b"):
        times, faces, emb = _contents(store, name)
        ref_times, ref_faces, _ = _contents(reference, name)
        assert (np.diff(times) > 0).all(), "a frame stored twice or out of order"
        # At most the frame the keyframe selector held at the stop differs.
        # At most the frames around the stop differ: the selector's memory of the last
        # kept frame (and of the one it held back) is lost with the process.
        assert len(set(times.tolist()) ^ set(ref_times.tolist())) <= 2
        assert len(emb) == len(faces) and abs(len(faces) - len(ref_faces)) <= 4


def _frames(store, name) -> int:
    try:
        return FaceStore.open(store, mode="r").stream(name).num_frames
    except Exception:  # not created yet: poll again
        return 0


@pytest.mark.slow  # ~10 s: the 55 s clip served live at 8x real time
def test_a_live_hls_stream_beside_a_file(clip, model_home, tmp_path, tmp_path_factory):  # noqa: F811
    from hls_server import HLSServer, LiveHLS, cut_segments

    folder = tmp_path_factory.mktemp("hls")
    segments = cut_segments(clip, folder, seconds=2.0)
    live = LiveHLS(folder, segments, speed=8.0, window=12)
    server = HLSServer(live)
    live.start()
    server.start()
    try:
        store = tmp_path / "s.zarr"
        result = _ingest("--source", f"live={server.url}", "--source", f"file={clip}",
                         "--store", store, "--duration", "45")
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    stored = FaceStore.open(store, mode="r")
    live_line = result.output.splitlines()[0]
    assert live_line.startswith("live: 31 frames, "), live_line
    frames = stored.stream("live").read_frames()
    assert (np.diff(frames.time_us) > 0).all() and (np.diff(frames.pts) > 0).all()
    dropped = int(live_line.split(" reconnects, ")[1].split(" dropped")[0])
    assert len(frames) + dropped == 24  # the clip's scenes, each stored once unless dropped
    # The file is bounded by --duration too (source time): its scenes before 45 s.
    assert stored.stream("file").num_frames == sum(t < 45 for t in scene_starts(clip.parent))
    assert stored.stream("live").num_embedded == stored.stream("live").num_faces > 0


def test_stop_from_another_thread_commits_every_stream(clip, model_home, tmp_path):  # noqa: F811
    from streamface.ingest.analysis import FaceAnalysis
    from streamface.ingest.extraction import FaceExtraction
    from streamface.ingest.multi_stream import Ingest
    from streamface.ingest.capture import StreamCapture

    store = tmp_path / "s.zarr"
    captures = [StreamCapture(n, str(clip), tmp_path, sample_fps=4) for n in ("a", "b")]
    job = Ingest(captures, FaceExtraction(None, None), FaceAnalysis(None, None), store=store)
    timer = threading.Timer(2.0, job.stop)
    timer.start()
    summary = job.call()
    timer.cancel()
    stored = FaceStore.open(store, mode="r")
    for counters in summary.streams:
        stream = stored.stream(counters.name)
        assert counters.error is None and 0 < stream.num_frames == counters.keyframes
        assert stream.num_faces == counters.faces == stream.num_embedded


# ---- the commit queue and group commits, on a real store ---------------------------------------


def _frames_batch(times):
    from streamface.store import FrameRecords

    n = len(times)
    return FrameRecords(time_us=np.asarray(times, np.int64), width=np.full(n, 4, np.int32),
                        height=np.full(n, 4, np.int32))


class _Append:
    """A commit job appending frames with the given capture times (mergeable)."""

    def __init__(self, times, gate=None):
        self.times, self.gate = list(times), gate

    def merge(self, later):
        return _Append(self.times + later.times, self.gate) if isinstance(later, _Append) else None

    def __call__(self, writer):
        if self.gate is not None:
            self.gate.wait(10)
        writer.append(_frames_batch(self.times))
        writer.flush()


def _writer(tmp_path):
    from streamface.store import FaceStore

    return FaceStore.open(tmp_path / "q.zarr", mode="a").writer("s", create=True, flush_rows=0)


def test_commit_queue_commits_in_order_and_merges_what_waits(tmp_path):
    from streamface.ingest.commit_queue import CommitQueue

    gate = threading.Event()
    commits = CommitQueue(_writer(tmp_path), max_jobs=8)
    commits.submit(lambda w: gate.wait(10))  # holds the thread while the rest queue up
    for t in range(1, 7):
        commits.submit(_Append([t * 10, t * 10 + 1]))
    gate.set()
    commits.close()
    stream = FaceStore.open(tmp_path / "q.zarr").stream("s")
    assert stream.read_frames().time_us.tolist() == [t * 10 + i for t in range(1, 7) for i in (0, 1)]
    assert commits.merged == 5  # the six waiting batches went in as one commit


def test_commit_queue_hands_a_failed_job_error_to_the_producer(tmp_path):
    from streamface.ingest.commit_queue import CommitQueue

    commits = CommitQueue(_writer(tmp_path), max_jobs=2)
    commits.submit(lambda w: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        for t in range(100):  # the error surfaces at a later submit (or at close)
            commits.submit(_Append([t + 1]))
        commits.close()
    commits.close()
    assert FaceStore.open(tmp_path / "q.zarr").stream("s").num_frames == 0  # nothing after it ran


def test_merged_commit_jobs_store_what_separate_ones_do(clip, model_home, tmp_path):  # noqa: F811
    from streamface.ingest.analysis import FaceAnalysis
    from streamface.ingest.extraction import FaceExtraction
    from streamface.engine.decode import VideoDecoder
    from streamface.ingest.batch_commit import BatchCommit
    from streamface.ingest.multi_stream import FrameTiming
    from streamface.ingest.keyframes import KeyframeSelector

    extractor, analyzer = FaceExtraction(None, None).make_extractor(), FaceAnalysis(None, None).make_analyzer()
    selector = KeyframeSelector()
    kept = []
    with VideoDecoder(str(clip), max_frames=8) as decoder:
        for frame in decoder:
            kept += selector.offer(FrameTiming(frame.time_us, frame.pts, frame.index, 0.0), frame.rgb())
    assert len(kept) >= 4
    capture = type("Capture", (), {"image_format": "jpeg", "jpeg_quality": 95})()
    jobs, row = [], 0
    for part in (kept[:1], kept[1:3], kept[3:]):
        images = [c.rgb for c in part]
        faces = extractor.process(images, row)
        emb = analyzer.embed(faces.aligned)
        attrs = analyzer.describe(faces.landmarks, faces.frame, dict(enumerate(images))) if len(faces) else {}
        jobs.append(BatchCommit(analyzer, capture, part, faces, row, emb, attrs))
        row += len(faces)
    def store(run):
        s = FaceStore.open(tmp_path / f"{len(run)}.zarr", mode="a")
        with s.writer("s", create=True, aligned_size=128, flush_rows=0) as w:
            for job in run:
                job(w)
        return s.stream("s")

    apart = store(jobs)
    merged = jobs[0].merge(jobs[1]).merge(jobs[2])
    together = store([merged])
    assert together.read_frames().time_us.tolist() == apart.read_frames().time_us.tolist()
    a, b = apart.read_faces(), together.read_faces()
    assert len(a) == len(b) > 0 and a.frame.tolist() == b.frame.tolist() and a.match.tolist() == b.match.tolist()
    np.testing.assert_array_equal(a.box, b.box)
    np.testing.assert_array_equal(a.crop, b.crop)
    np.testing.assert_array_equal(apart.read_embeddings(), together.read_embeddings())
    np.testing.assert_array_equal(apart.read_attribute("pose"), together.read_attribute("pose"))


@pytest.mark.slow  # ~6 s: a live server that goes away for good
def test_a_live_stream_whose_server_dies_fails_alone_after_its_reconnects(clip, model_home, tmp_path,  # noqa: F811
                                                                        tmp_path_factory):
    from hls_server import HLSServer, LiveHLS, cut_segments

    folder = tmp_path_factory.mktemp("hls-dead")
    live = LiveHLS(folder, cut_segments(clip, folder, seconds=2.0), speed=4.0, window=12)
    server = HLSServer(live)
    live.start()
    server.start()
    killer = threading.Timer(2.5, server.stop)  # mid-stream, and never back
    killer.start()
    config = tmp_path / "streams.toml"
    config.write_text(f'[[stream]]\nname = "live"\nurl = "{server.url}"\nmax_reconnects = 1\n\n'
                      f'[[stream]]\nname = "file"\nurl = "{clip}"\nmax_frames = 12\n')
    try:
        result = _ingest("--config", config, "--store", tmp_path / "s.zarr")
    finally:
        killer.cancel()
        server.stop()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("live: FAILED: ") and "gave up after 1 reconnects" in lines[0], lines
    assert lines[-1] == "Error: 1 of 2 streams failed: live"
    stored = FaceStore.open(tmp_path / "s.zarr", mode="r")
    assert stored.stream("file").num_frames > 0
    # What the live stream delivered before the server died is committed, each frame once.
    frames = stored.stream("live").read_frames()
    assert len(frames) > 0 and (np.diff(frames.time_us) > 0).all()
    assert stored.stream("live").num_embedded == stored.stream("live").num_faces


# ---- store rotation ---------------------------------------------------------------------------------


class _SteppingClock:
    """Seconds since the epoch: 2026-11-28 10:59:59 UTC for the first ``calls`` reads, an hour on after."""

    def __init__(self, calls: int) -> None:
        self.calls, self.reads = calls, 0

    def __call__(self) -> float:
        self.reads += 1
        return 1795863599.0 + (3600.0 if self.reads > self.calls else 0.0)


def test_rotation_splits_a_stream_over_two_stores_with_nothing_lost_or_twice(clip, model_home, tmp_path):  # noqa: F811
    from streamface.ingest.options import build_ingest
    from streamface.ingest.config import StreamSpec
    from streamface.store.rotation import StoreRotation, rotated_stores

    o = ingest_options("--batch-size", "2")
    specs = [StreamSpec("news", str(clip))]
    plain = build_ingest(specs, str(tmp_path / "plain.zarr"), o).call()
    job = build_ingest(specs, str(tmp_path / "news.zarr"), o)
    job.rotation = StoreRotation(tmp_path / "news.zarr", "hour", clock=_SteppingClock(calls=8))
    summary = job.call()
    assert not summary.failed and not plain.failed
    stores = rotated_stores(tmp_path / "news.zarr")
    assert [Path(s).name for s in stores] == ["news-2026-11-28T10.zarr", "news-2026-11-28T11.zarr"]
    parts = [FaceStore.open(s).stream("news") for s in stores]
    assert all(p.num_frames > 0 for p in parts)
    times = np.concatenate([p.read_frames().time_us for p in parts])
    reference = FaceStore.open(tmp_path / "plain.zarr").stream("news")
    np.testing.assert_array_equal(times, reference.read_frames().time_us)  # each frame once, in order
    assert sum(p.num_faces for p in parts) == reference.num_faces
    for part in parts:  # rows and track matches stay inside their store
        faces = part.read_faces()
        assert part.num_embedded == part.num_faces
        assert np.all(faces.frame < part.num_frames)
        assert np.all((faces.match < part.num_faces))
    # The info command sums the rotated stores given their base name.
    result = CliRunner().invoke(main, ["info", str(tmp_path / "news.zarr"), "--json"])
    assert result.exit_code == 0, result.output


def test_rotation_gives_each_store_its_own_online_index(clip, model_home, tmp_path):  # noqa: F811
    from streamface.ingest.options import build_ingest
    from streamface.identify.hri import HierarchicalRetrievalIndex, index_path_for_store
    from streamface.ingest.config import StreamSpec
    from streamface.store.rotation import StoreRotation, rotated_stores

    o = ingest_options("--batch-size", "2", "--index-threshold", "0.5")
    job = build_ingest([StreamSpec("news", str(clip))], str(tmp_path / "news.zarr"), o)
    job.rotation = StoreRotation(tmp_path / "news.zarr", "hour", clock=_SteppingClock(calls=8))
    assert not job.call().failed
    stores = rotated_stores(tmp_path / "news.zarr")
    assert len(stores) == 2
    for location in stores:
        part = FaceStore.open(location).stream("news")
        assert part.num_faces > 0 and part.num_index_labelled == part.num_faces
        # Labels start afresh in each period's store: its own tree over its own faces.
        offline = HierarchicalRetrievalIndex(0.5, "cosine").insert(part.read_embeddings())
        np.testing.assert_array_equal(part.read_labels(kind="index"), offline)
        assert HierarchicalRetrievalIndex.load(index_path_for_store(location, "news")).size == part.num_faces
