"""``streamface run|capture|extract|analyze`` on the real clip, and bad input."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine_fixtures import engine_home  # noqa: F401
from pipeline_fixtures import clip, model_home  # noqa: F401

from streamface.cli import main
from streamface.store import FaceStore


@pytest.fixture(scope="module")
def ran(clip, model_home, tmp_path_factory):  # noqa: F811
    store = tmp_path_factory.mktemp("run") / "sky.zarr"
    result = CliRunner().invoke(main, ["run", str(clip), "--store", str(store), "--duration", "12"])
    return store, result


def test_run_captures_extracts_and_embeds_in_one_pass(ran):
    store, result = ran
    assert result.exit_code == 0, result.output
    stream = FaceStore.open(store).stream("skynews_sample")
    assert stream.read_frames().pts.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 11.0]
    assert stream.num_faces >= 5 and stream.num_embedded == stream.num_faces
    assert "pose" in stream.attribute_names


def test_run_ends_with_one_summary_line(ran):
    _, result = ran
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("skynews_sample: 7 frames, 6 keyframes, ") and "fps" in line


def test_run_again_continues_after_the_stored_frames(ran, clip):  # noqa: F811
    store, _ = ran
    result = CliRunner().invoke(main, ["run", str(clip), "--store", str(store), "--duration", "12"])
    assert result.exit_code == 0 and "0 keyframes" in result.output
    assert FaceStore.open(store).stream("skynews_sample").num_frames == 6


def _bad_source(folder, kind: str) -> str:
    contents = {"empty": b"", "text": b"not a video\n"}
    if kind in contents:
        path = folder / f"{kind}.mp4"
        path.write_bytes(contents[kind])
        return str(path)
    return {"missing": str(folder / "missing.mp4"), "scheme": "ftp://example.com/x.mp4",
            "dead-host": "http://127.0.0.1:9/live.m3u8"}[kind]


@pytest.mark.parametrize("kind, message", [
    ("missing", "no such file"),
    ("empty", "file is empty"),
    ("text", "not a video"),
    ("scheme", "unsupported URL scheme"),
    ("dead-host", "cannot open"),
])
def test_bad_input_is_one_line_nonzero_exit_store_intact(ran, tmp_path, kind, message):
    store, _ = ran
    before = FaceStore.open(store).stream("skynews_sample").num_frames
    result = CliRunner().invoke(main, ["run", _bad_source(tmp_path, kind), "--store", str(store),
                                       "--name", "skynews_sample"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and message in result.output
    assert FaceStore.open(store).stream("skynews_sample").num_frames == before


def test_capture_extract_analyze_run_the_stages_alone(clip, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    runner = CliRunner()
    result = runner.invoke(main, ["capture", str(clip), "--store", str(store), "--name", "s",
                                  "--max-frames", "4"])
    assert result.exit_code == 0 and "4 keyframes kept" in result.output, result.output
    result = runner.invoke(main, ["extract", str(store), "--export", str(tmp_path / "seed")])
    assert result.exit_code == 0 and "4 frames" in result.output, result.output
    assert (tmp_path / "seed" / "metadata" / "detections.csv").is_file()
    result = runner.invoke(main, ["analyze", str(store)])
    assert result.exit_code == 0, result.output
    stream = FaceStore.open(store).stream("s")
    assert stream.num_faces > 0 and stream.num_embedded == stream.num_faces


def test_run_help_lists_the_options_with_defaults():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--store", "--max-frames", "--duration", "--sample-fps", "--detection"):
        assert option in result.output
