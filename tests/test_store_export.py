"""Export of a stream in the seed's layout: the seed's own files come back out unchanged."""

from __future__ import annotations

import ast
import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from streamface.cli import main as cli
from streamface.store import FaceRecords, FaceStore, FrameRecords, parse_face_id
from streamface.store.export import export_seed_layout, match_pairs


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def store_from_seed(seed, path) -> FaceStore:
    """A store holding the seed's 37 detections, crops and aligned crops (stream ``skynews``)."""
    with open(seed / "metadata" / "detections.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [parse_face_id(r["name"]) for r in rows]
    times = sorted({i.time_us for i in ids})
    frame_of = {t: k for k, t in enumerate(times)}
    shapes = {i.time_us: ast.literal_eval(r["image"]) for i, r in zip(ids, rows)}
    frames = FrameRecords(time_us=np.array(times), height=np.array([shapes[t][0] for t in times]),
                          width=np.array([shapes[t][1] for t in times]))
    crops, sizes = FaceRecords.pack_crops([_rgb(seed / "faces" / r["name"]) for r in rows], 256)
    faces = FaceRecords(
        frame=np.array([frame_of[i.time_us] for i in ids]),
        face=np.array([i.face for i in ids]),
        score=np.array([float(r["confidence"]) for r in rows]),
        box=np.array([json.loads(r["box"]) for r in rows]),
        landmarks=np.array([[ast.literal_eval(r[k]) for k in ("left_eye", "right_eye", "nose", "mouth_left",
                                                             "mouth_right")] for r in rows]),
        crop=crops, crop_size=sizes,
        aligned=np.stack([_rgb(seed / "aligned_faces" / r["name"]) for r in rows]),
    )
    store = FaceStore.create(path)
    with store.writer("skynews", create=True, crop_size=256, aligned_size=128) as w:
        w.append(frames, faces)
    return store


@pytest.fixture(scope="module")
def exported(skynews, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    store = store_from_seed(skynews, tmp / "skynews.zarr")
    result = export_seed_layout(store.stream("skynews"), tmp / "out", progress=False)
    return skynews, tmp / "out", result


def test_detections_csv_is_the_seeds_text_line_by_line(exported):
    seed, out, result = exported
    want = (seed / "metadata" / "detections.csv").read_text().splitlines()
    got = (out / "metadata" / "detections.csv").read_text().splitlines()
    assert result.faces == len(want) - 1 == 37
    for line_no, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"line {line_no + 1}"
    assert len(got) == len(want)


def test_matches_csv_is_the_seeds_text(exported):
    seed, out, _ = exported
    assert (out / "metadata" / "matches.csv").read_bytes() == (seed / "metadata" / "matches.csv").read_bytes()


def test_face_and_aligned_pngs_have_the_seeds_pixels_and_sizes(exported):
    seed, out, _ = exported
    names = sorted(p.name for p in (seed / "faces").glob("*.png"))
    assert sorted(p.name for p in (out / "faces").glob("*.png")) == names
    assert sorted(p.name for p in (out / "aligned_faces").glob("*.png")) == names
    for name in names:
        for folder in ("faces", "aligned_faces"):
            np.testing.assert_array_equal(_rgb(out / folder / name), _rgb(seed / folder / name), err_msg=name)
    assert _rgb(out / "faces" / "skynews_frame_20230525100138412614_face_0.png").shape == (252, 252, 3)


def test_export_leaves_no_temporary_files(exported):
    _, out, _ = exported
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_match_ids_become_pairs_of_consecutive_faces():
    match = np.array([5, -1, 5, 7, 7, 5])
    assert match_pairs(match) == [(0, 2), (3, 4), (2, 5)]
    assert match_pairs(np.full(3, -1)) == []


def _tiny_store(path, match=None, images=None):
    store = FaceStore.create(path)
    n = 4
    frames = FrameRecords(time_us=1_684_998_098_412_614 + np.arange(2) * 1000, width=[64, 64], height=[48, 48],
                          images=images)
    faces = FaceRecords(frame=[0, 0, 1, 1], face=[0, 1, 0, 1], score=np.full(n, 0.5), box=np.zeros((n, 4)),
                        landmarks=np.zeros((n, 5, 2)), crop=np.zeros((n, 8, 8, 3), np.uint8),
                        aligned=np.zeros((n, 8, 8, 3), np.uint8), match=match)
    with store.writer("cam", create=True, crop_size=8, aligned_size=8) as w:
        w.append(frames, faces)
    return store


def test_matches_csv_lists_face_file_names(tmp_path):
    store = _tiny_store(tmp_path / "s.zarr", match=[0, 1, 0, 1])
    result = export_seed_layout(store.stream("cam"), tmp_path / "out", progress=False)
    assert result.matches == 2
    assert (tmp_path / "out" / "metadata" / "matches.csv").read_text() == (
        "Face 1,Face 2\n"
        "cam_frame_20230525070138412614_face_0.png,cam_frame_20230525070138413614_face_0.png\n"
        "cam_frame_20230525070138412614_face_1.png,cam_frame_20230525070138413614_face_1.png\n")


def test_kept_frames_are_exported_with_their_seed_names(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (64, 48)).save(png, format="PNG")
    store = _tiny_store(tmp_path / "s.zarr", images=[png.getvalue(), png.getvalue()])
    result = export_seed_layout(store.stream("cam"), tmp_path / "out", progress=False)
    assert result.frames == 2
    assert sorted(p.name for p in (tmp_path / "out" / "frames").iterdir()) == [
        "cam_frame_20230525070138412614.png", "cam_frame_20230525070138413614.png"]


def test_export_command_writes_the_layout_and_fails_in_one_line(tmp_path):
    _tiny_store(tmp_path / "s.zarr")
    runner = CliRunner()
    ok = runner.invoke(cli, ["export", str(tmp_path / "s.zarr"), "cam", str(tmp_path / "out"), "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert "exported 4 faces" in ok.output
    assert len(list((tmp_path / "out" / "faces").glob("*.png"))) == 4
    bad = runner.invoke(cli, ["export", str(tmp_path / "s.zarr"), "../etc", str(tmp_path / "out2")])
    assert bad.exit_code != 0 and "invalid stream name" in bad.stderr and "Traceback" not in bad.stderr
