"""What a new user hit (issue 22): each defect, on real clips, through the commands they typed.

Path escapes through ``--name``; a file's identity tied to its modification time; a
file cut short; interrupted runs that looked finished; a one-frame stream costing a
whole chunk; errors missing from the stream's log; ``status`` states and exit codes;
``models verify`` on a fresh cache; thresholds outside their metric's range; the
cluster summary's wording.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine_fixtures import engine_home  # noqa: F401
from pipeline_fixtures import clip, cut_clip, model_home  # noqa: F401

from streamface.cli import main
from streamface.ops.live_status import read_status
from streamface.store import FaceStore

CUT_AT = "truncated at 16.0 s of 55.0 s"


@pytest.fixture(scope="module")
def hamilton(shared_data) -> Path:
    path = shared_data / "videos" / "hamilton_clip.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---- 1. a stream name is checked before anything touches the disk --------------------------------

@pytest.mark.parametrize("name", ["../evil", "../../PWN_TEST", "a/b", ".hidden", "a..b"])
def test_a_name_that_is_not_a_stream_name_is_refused_before_anything_is_written(hamilton, tmp_path, name):
    store = tmp_path / "one" / "two" / "s.zarr"
    result = _invoke("run", hamilton, "--store", store, "--name", name, "--no-progress")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]  # one line
    assert result.output.startswith(f"Error: invalid stream name {name!r}: ")
    assert _files_under(tmp_path) == [], "a file was written for a refused name"


def test_ingest_and_the_log_files_refuse_the_same_names(hamilton, tmp_path):
    from streamface.ops.structured_logs import LogConfig, configure_logging

    result = _invoke("ingest", "--source", f"../evil={hamilton}", "--store", tmp_path / "s.zarr", "--no-progress")
    assert result.exit_code == 1 and "invalid stream name '../evil'" in result.output
    with pytest.raises(ValueError, match="invalid stream name '../x'"):
        configure_logging(LogConfig(), default_dir=tmp_path / "logs", streams=["../x"])
    assert _files_under(tmp_path) == []


# ---- 2. the same content, touched or copied, resumes ----------------------------------------------

def test_the_same_file_after_a_touch_or_a_copy_resumes_instead_of_storing_everything_again(
        hamilton, model_home, tmp_path):  # noqa: F811
    first = tmp_path / "clip.mp4"
    shutil.copyfile(hamilton, first)
    store = tmp_path / "s.zarr"
    ran = _invoke("run", first, "--store", store, "--name", "clip", "--no-progress")
    assert ran.exit_code == 0, ran.output
    stream = FaceStore.open(store).stream("clip")
    frames, ids = stream.num_frames, stream.face_ids().tolist()
    assert frames > 0 and ids

    later = time.time() + 86400  # a day later: the file's own clock moved
    os.utime(first, (later, later))
    copy = tmp_path / "elsewhere" / "renamed.mp4"
    copy.parent.mkdir()
    shutil.copyfile(hamilton, copy)
    os.utime(copy, (later + 5, later + 5))
    for again in (first, copy):
        result = _invoke("run", again, "--store", store, "--name", "clip", "--no-progress")
        assert result.exit_code == 0, result.output
        assert result.output.startswith("clip: 0 frames, 0 keyframes, 0 faces"), result.output
    stream = FaceStore.open(store).stream("clip")
    assert (stream.num_frames, stream.face_ids().tolist()) == (frames, ids)


def test_a_stream_records_the_fingerprint_of_its_files_and_old_streams_read_without_it(hamilton, tmp_path):
    from streamface.ingest.file_source import content_fingerprint

    fingerprint = content_fingerprint(hamilton)
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(hamilton, copy)
    os.utime(copy, (1, 1))
    assert content_fingerprint(copy) == fingerprint and fingerprint.startswith("sha256:")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(hamilton.read_bytes()[:-1])
    assert content_fingerprint(cut) != fingerprint

    store = FaceStore.open(tmp_path / "s.zarr", mode="a")
    with store.writer("old", create=True) as writer:  # as a store written before fingerprints
        assert writer.source_start_time(fingerprint) is None
        writer.record_source(fingerprint, 1_700_000_000_000_000, file="hamilton_clip.mp4")
    reopened = FaceStore.open(tmp_path / "s.zarr").stream("old")
    assert reopened.source_start_time(fingerprint) == 1_700_000_000_000_000
    assert reopened.num_frames == 0


# ---- 3. a file cut short ---------------------------------------------------------------------------

@pytest.mark.parametrize("sampling", [[], ["--sample-fps", "5"]], ids=["keyframes", "sample-fps-5"])
def test_a_truncated_file_keeps_what_decoded_says_where_it_was_cut_and_exits_4(
        cut_clip, model_home, tmp_path, sampling):  # noqa: F811
    store = tmp_path / "s.zarr"
    result = _invoke("run", cut_clip, "--store", store, "--name", "trunc", "--no-progress", *sampling)
    assert result.exit_code == 4, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("trunc: ") and line.endswith(f"; {CUT_AT}, what decoded is stored"), line
    stream = FaceStore.open(store).stream("trunc")
    assert stream.num_frames >= 6 and stream.num_faces > 0 and stream.num_embedded == stream.num_faces
    assert max(stream.read_frames().pts) <= 16.0
    [report] = read_status(store)
    assert (report.state, report.snapshot["note"]) == ("truncated", CUT_AT)
    assert report.snapshot["counters"]["faces"] == stream.num_faces
    status = _invoke("status", store)
    row = status.output.splitlines()[-1]
    assert status.exit_code == 3 and row.split()[1] == "truncated" and row.endswith(CUT_AT), status.output
    assert CUT_AT in (tmp_path / "logs" / "trunc.log").read_text()


def test_capture_alone_exits_4_on_a_truncated_file_as_run_does(cut_clip, tmp_path):  # noqa: F811
    result = _invoke("capture", cut_clip, "--store", tmp_path / "s.zarr", "--name", "trunc", "--no-progress")
    assert result.exit_code == 4, result.output
    assert result.output.strip().endswith(f"; {CUT_AT}, what decoded is stored"), result.output
    assert FaceStore.open(tmp_path / "s.zarr").stream("trunc").num_frames >= 6


def test_a_file_cut_before_its_first_frame_leaves_no_empty_stream(cut_clip, model_home, tmp_path):  # noqa: F811
    tiny = tmp_path / "tiny.mp4"
    whole = (cut_clip.parent / "whole.mp4").read_bytes()
    tiny.write_bytes(whole[: len(whole) * 2 // 100])
    store = tmp_path / "s.zarr"
    result = _invoke("run", tiny, "--store", store, "--name", "tiny", "--no-progress")
    assert result.exit_code == 4, result.output
    assert "truncated at 0.0 s of 55.0 s" in result.output
    assert FaceStore.open(store).streams == []


def test_ingest_keeps_a_truncated_files_frames_and_exits_4(cut_clip, hamilton, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    result = _invoke("ingest", "--source", f"trunc={cut_clip}", "--source", f"ham={hamilton}",
                     "--store", store, "--no-progress")
    assert result.exit_code == 4, result.output
    lines = result.output.strip().splitlines()
    trunc = next(line for line in lines if line.startswith("trunc: "))
    assert trunc.endswith(f"; {CUT_AT}, what decoded is stored") and "FAILED" not in trunc
    assert lines[-1].startswith("1/2 streams ok, 1 truncated: ")
    assert FaceStore.open(store).stream("trunc").num_frames >= 6
    states = {r.stream: (r.state, r.snapshot.get("note")) for r in read_status(store)}
    assert states == {"trunc": ("truncated", CUT_AT), "ham": ("finished", "")}


# ---- 4. Ctrl-C says "interrupted" and exits 130 ----------------------------------------------------

def _interrupt(args, store, model_home, name):  # noqa: F811
    env = dict(os.environ, STREAMFACE_HOME=str(model_home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "streamface.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if FaceStore.open(store, mode="r").stream(name).num_frames >= 2:
                    break
            except Exception:  # not created yet
                pass
            assert proc.poll() is None, f"exited early ({proc.returncode}): {proc.communicate()}"
            assert time.monotonic() < deadline, "too slow to commit 2 frames"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def test_ctrl_c_on_run_says_interrupted_and_exits_130(clip, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    code, out, err = _interrupt(["run", clip, "--store", store, "--name", "sky", "--sample-fps", "10",
                                 "--batch-size", "1", "--no-progress"], store, model_home, "sky")
    assert code == 130, (out, err)
    assert out.strip().endswith("; interrupted: what was processed is stored, run again to continue"), out
    assert "interrupted by SIGINT: what was processed is stored" in err
    [report] = read_status(store)
    assert (report.state, report.snapshot["note"]) == ("interrupted", "interrupted by SIGINT")


def test_ctrl_c_on_ingest_says_interrupted_and_exits_130(clip, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    code, out, err = _interrupt(["ingest", "--source", f"a={clip}", "--source", f"b={clip}", "--store", store,
                                 "--sample-fps", "10", "--batch-size", "1", "--no-progress"],
                                store, model_home, "a")
    assert code == 130, (out, err)
    assert out.strip().splitlines()[-1].startswith("interrupted: what was processed is stored, "
                                                   "run again to continue; 2/2 streams ok: "), out
    assert {r.state for r in read_status(store)} == {"interrupted"}


# ---- 5. a one-frame stream costs what its data costs -----------------------------------------------

def test_a_one_frame_stream_costs_its_bytes_not_a_whole_chunk(hamilton, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    result = _invoke("run", hamilton, "--store", store, "--name", "one", "--max-frames", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    opened = FaceStore.open(store)
    [image] = opened.stream("one").read_frame_images()
    # The frame's JPEG plus its faces' crops, embeddings and metadata: well under a chunk of 4 MiB.
    assert opened.nbytes("one") - len(image) < 256 * 1024, opened.nbytes("one")


# ---- 6. errors reach the stream's log file ---------------------------------------------------------

def test_a_failure_is_written_to_the_streams_log_file(model_home, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video\n")
    run = _invoke("run", bad, "--store", tmp_path / "s.zarr", "--name", "bad", "--no-progress")
    assert run.exit_code == 1 and "not a video" in run.output
    assert "bad: failed: " in (tmp_path / "logs" / "bad.log").read_text()
    ingest = _invoke("ingest", "--source", f"worse={bad}", "--store", tmp_path / "s.zarr", "--no-progress")
    assert ingest.exit_code == 1
    assert "worse: failed: " in (tmp_path / "logs" / "worse.log").read_text()
    assert [r.state for r in read_status(tmp_path / "s.zarr")] == ["failed", "failed"]


# ---- 7. status: every run listed, the same "dropped", a final snapshot that is final ----------------

def test_status_lists_every_run_into_a_store_with_the_stored_counts_and_exits_0(clip, model_home,
                                                                                tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    bounds = ["--sample-fps", "2", "--duration", "12"]  # 24 frames: some empty, blurred or similar
    for name in ("a", "b", "c"):
        ran = _invoke("run", clip, "--store", store, "--name", name, *bounds, "--no-progress")
        assert ran.exit_code == 0, ran.output
    ingest = _invoke("ingest", "--source", f"d={clip}", "--store", store, *bounds, "--no-progress")
    assert ingest.exit_code == 0, ingest.output
    result = _invoke("status", store, "--json")
    assert result.exit_code == 0, result.output
    reports = {r["stream"]: r for r in json.loads(result.output)}
    assert sorted(reports) == ["a", "b", "c", "d"]
    opened = FaceStore.open(store)
    for name, report in reports.items():
        assert report["state"] == "finished" and report["outcome"] == "finished"
        assert report["counters"]["faces"] == opened.stream(name).num_faces > 0
        assert report["counters"]["keyframes"] == opened.stream(name).num_frames
    # The same clip through run (a, b, c) and ingest (d): the same reasons, the same counts.
    assert len({json.dumps(r["counters"]["dropped"], sort_keys=True) for r in reports.values()}) == 1
    assert sum(reports["d"]["counters"]["dropped"].values()) > 0
    table = _invoke("status", store).output.splitlines()
    dropped = table[1].split().index("dropped")
    assert {line.split()[dropped] for line in table[2:]} == {"0"}  # run and ingest count it alike


# ---- 8. models verify on a fresh cache -------------------------------------------------------------

def test_models_verify_on_a_fresh_cache_prepares_the_installed_models_first(tmp_path):
    result = _invoke("models", "--home", tmp_path / "home", "verify")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("yunet", "sface"):
        assert any(line.startswith(f"prepared {name}: ") for line in lines), result.output
        assert any(line.startswith(f"ok   {name}: sha256 ") for line in lines), result.output


# ---- 10. thresholds within the metric's range -------------------------------------------------------

@pytest.mark.parametrize("args, option", [
    (["cluster", "x.zarr", "--matching-threshold", "5"], "--matching-threshold"),
    (["cluster", "x.zarr", "--merging-threshold", "2.5"], "--merging-threshold"),
    (["match-clusters", "x.zarr", __file__, "--max-threshold", "3"], "--max-threshold"),
    (["run", "x.mp4", "--store", "x.zarr", "--index-threshold", "2.1"], "--index-threshold"),
    (["ingest", "--source", "a=x.mp4", "--store", "x.zarr", "--index-threshold", "4"], "--index-threshold"),
])
def test_a_cosine_threshold_outside_0_to_2_is_refused(tmp_path, args, option, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    value = args[args.index(option) + 1]
    assert f"Error: Invalid value for '{option}': {float(value):g} is outside the range of the cosine " \
           "distance, [0, 2]" in result.output
    assert _files_under(tmp_path) == []


# ---- 12. the cluster summary in words ------------------------------------------------------------

def test_the_cluster_summary_says_what_happened_in_words():
    from streamface.identify.cluster_summary import clustering_summary

    assert clustering_summary(11, 11, 11, 8, "hac") == (
        "11 faces -> 11 identities: hac grouped similar faces into 11 clusters; "
        "8 track links (the same face in nearby frames) joined none of them")
    assert clustering_summary(42, 9, 12, 8, "knn").endswith("8 track links (the same face in nearby frames) "
                                                            "joined 3 of them to others")
    assert clustering_summary(1, 1, 1, 0, "hac") == (
        "1 face -> 1 identity: hac grouped similar faces into 1 cluster; "
        "no track links (the same face in nearby frames) to join them")


def test_cluster_prints_the_summary_in_words(hamilton, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    assert _invoke("run", hamilton, "--store", store, "--name", "ham", "--no-progress").exit_code == 0
    faces = FaceStore.open(store).stream("ham").num_faces
    result = _invoke("cluster", f"{store}::ham", "--output-dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"{faces} faces -> "), line
    assert " identities: hac grouped similar faces into " in line or " identity: hac grouped " in line, line
    assert "(the same face in nearby frames)" in line and "before merging" not in line, line


# ---- 11. friction: progress with a total, one --batch-size text per command, the README -------------

def test_the_progress_bar_on_a_file_counts_its_seconds_to_a_total(hamilton, model_home, tmp_path):  # noqa: F811
    result = _invoke("run", hamilton, "--store", tmp_path / "s.zarr", "--progress")
    assert result.exit_code == 0, result.output
    bar = result.stderr.replace("\r", "\n").splitlines()
    assert any("10.0/10.0 [" in line and "100%" in line for line in bar), bar


def test_each_command_says_what_its_batch_size_batches_and_its_own_default():
    texts = {}
    for command in ("capture", "run", "ingest"):
        text = " ".join(_invoke(command, "--help").output.split())
        texts[command] = text.split("--batch-size INTEGER RANGE ")[1].split("[x>=1]")[0]
    assert "[default: 50]" in texts["capture"] and "[default: 8]" in texts["run"] + texts["ingest"]
    assert len(set(texts.values())) == 3 and not any("ingest:" in t or "capture:" in t for t in texts.values())


def test_the_readme_says_what_is_decoded_the_decisions_format_and_the_exit_codes():
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert "decode only a video's keyframes (I-frames)" in readme and "`--sample-fps N` decodes every frame" in readme
    assert '{"pair": "3,7", "decision": "merge"}' in readme
    for words in ("4 when a file was cut short", "130 on Ctrl-C", "`interrupted`", "`truncated`", "`failed`"):
        assert words in readme, words


def test_index_takes_the_store_as_an_argument_like_every_other_command(hamilton, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    assert _invoke("run", hamilton, "--store", store, "--name", "ham", "--no-progress").exit_code == 0
    built = _invoke("index", "build", store, "--threshold", "0.5")
    stream = FaceStore.open(store).stream("ham")
    assert built.exit_code == 0 and built.output.startswith(f"ham: {stream.num_faces} faces, "), built.output
    face = stream.face_ids()[0]
    for args in ([store], ["--store", store]):  # the option still works
        found = _invoke("index", "query", *args, "--face-id", face)
        assert found.exit_code == 0 and found.output.startswith("label "), found.output
    both = _invoke("index", "query", store, "--store", tmp_path, "--face-id", face)
    assert both.exit_code == 2 and "two stores given" in both.output
    none = _invoke("index", "build", "--threshold", "0.5")
    assert none.exit_code == 2 and "give the store: STORE (or --store STORE)" in none.output
