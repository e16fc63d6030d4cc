"""Folders of face photos: any format and name, close crops, bad files, known identities.

The real folders are ``identities/johns`` (55 JPEG face crops of 5 people, 150x150) and
``identities/orl`` (400 PGM photos of 40 people, 92x112), used as given: shuffled under
new names (so neighbours are not the same person) for the seed API and the CLI, nested
as given for ``--labels-from-folders``.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from engine_fixtures import engine_home  # noqa: F401
from pipeline_fixtures import model_home  # noqa: F401

from streamface.cli import main
from streamface.ingest.analysis import FaceAnalysis
from streamface.identify.face_clustering import FaceClustering
from streamface.ingest.extraction import FaceExtraction, FaceExtractor
from streamface.evaluate.known_identities import identity_annotations
from streamface.evaluate.metrics import bcubed
from streamface.ingest.photos import (
    FALLBACK_ATTR,
    IDENTITY_ATTR,
    PHOTO_ATTR,
    PhotoError,
    pad_onto_canvas,
    photo_face,
    photo_files,
    read_photo,
)
from streamface.store import FaceStore

# The benchmark's counting detector (bench_pipeline --photo-pass reports the same count).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_pipeline import CountingDetector  # noqa: E402


def _identities(shared_data, name):
    root = shared_data / "identities" / name
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    return root


def _shuffled(root, folder, seed=0):
    """Symlinks to every photo under ``root``, flat, in a random order under new names;
    returns ``{file name: person}``."""
    files = photo_files(root)
    folder.mkdir(parents=True)
    truth = {}
    for k, i in enumerate(np.random.default_rng(seed).permutation(len(files))):
        target = folder / f"img{k:04d}{files[i].suffix}"
        os.symlink(files[i], target)
        truth[target.name] = files[i].parent.name
    return truth


def _one_face_per_photo(stream):
    """``(file, face id)`` of the first face of each photo that has one."""
    files = stream.attribute_classes(PHOTO_ATTR)
    frames = stream.read_faces(columns=("frame",)).frame.tolist()
    first = {}
    for face_id, frame in zip(stream.face_ids().tolist(), frames):
        first.setdefault(frame, face_id)
    return [(files[f], fid) for f, fid in first.items()], len(files)


def _score(stream, truth, label_of):
    pairs, photos = _one_face_per_photo(stream)
    y_true = [truth[f] for f, _ in pairs]
    y_pred = [label_of[fid] for _, fid in pairs]
    return bcubed(y_true, y_pred)[2], (photos - len(pairs)) / photos


# ---- reading photos -------------------------------------------------------------------------


def test_pad_onto_canvas_is_the_calibrations_padding(shared_data):
    from streamface.evaluate.calibration import padded_photo

    path = _identities(shared_data, "orl") / "s1" / "1.pgm"
    rgb = read_photo(path)
    canvas, (x, y) = pad_onto_canvas(rgb)
    assert canvas.shape == (224, 184, 3) and (x, y) == (46, 56)
    np.testing.assert_array_equal(canvas[y:y + 112, x:x + 92], rgb)
    assert canvas.sum() == rgb.astype(np.int64).sum()  # black around the photo
    np.testing.assert_array_equal(padded_photo(path), canvas)


def test_reads_any_format_including_16_bit_pgm(shared_data, tmp_path):
    path = _identities(shared_data, "orl") / "s1" / "1.pgm"
    rgb = read_photo(path)
    gray = rgb[:, :, 0].astype(np.uint16) * 257  # the same photo on 16 bits
    pgm16 = tmp_path / "deep.pgm"
    Image.fromarray(gray).save(pgm16)
    assert Image.open(pgm16).mode.startswith("I")
    np.testing.assert_array_equal(read_photo(pgm16), rgb)
    for fmt in ("PNG", "WEBP", "BMP", "TIFF", "PPM"):
        out = tmp_path / f"same.{fmt.lower()}"
        Image.fromarray(rgb).save(out, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        np.testing.assert_array_equal(read_photo(out), rgb, err_msg=fmt)


def test_photo_files_walks_nested_folders_and_skips_hidden(tmp_path):
    for rel in ("b/x.JPG", "a/y.pgm", "a/deeper/z.webp", ".hidden/w.png", "a/.v.png", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    names = [p.relative_to(tmp_path).as_posix() for p in photo_files(tmp_path)]
    assert names == ["a/deeper/z.webp", "a/y.pgm", "b/x.JPG"]


def _bad_files(folder, good):
    """A truncated JPEG, a text file named .png, a 1x1 image and a zero-byte file."""
    blob = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(blob[: len(blob) * 3 // 10])
    (folder / "notes.png").write_text("not an image\n")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    (folder / "empty.jpg").write_bytes(b"")
    return {"truncated.jpg": "broken image", "notes.png": "not an image", "dot.png": "too small",
            "empty.jpg": "empty file"}


def test_bad_files_each_give_one_clear_error(shared_data, tmp_path):
    good = _identities(shared_data, "johns") / "John_Simm" / "000288_00470387.jpg"
    expected = _bad_files(tmp_path, good)
    for name, why in expected.items():
        with pytest.raises(PhotoError) as info:
            read_photo(tmp_path / name)
        message = str(info.value)
        assert message.startswith(str(tmp_path / name)) and why in message and "\n" not in message


# ---- close crops ----------------------------------------------------------------------------


def test_close_crops_are_found_on_the_padded_photo(shared_data, model_home):  # noqa: F811
    from streamface.engine import load_detector

    detector = load_detector()
    paths = photo_files(_identities(shared_data, "johns"))
    as_is = [len(detector.detect([read_photo(p)])[0]) > 0 for p in paths]
    found = [photo_face(detector, read_photo(p)) for p in paths]
    assert sum(as_is) <= 5  # YuNet finds 3 of the 55 crops as they are
    assert all(len(f.detections) for f in found) and sum(f.padded for f in found) == 55 - sum(as_is)
    for f, path in zip(found, paths):  # boxes are moved back onto the photo: the face is on it
        x, y, w, h = f.detections.boxes[0]
        assert -0.25 * 150 < x + w / 2 < 1.25 * 150 and 0 < y + h / 2 < 150, path


def test_no_second_pass_where_the_first_found_faces(skynews_frames, shared_data, model_home):  # noqa: F811
    from streamface.engine import load_detector

    detector = CountingDetector(load_detector())
    frames = [f for _, f in skynews_frames if len(detector.detector.detect([f])[0])][:6]
    video = FaceExtractor(detector).process(frames, 0)
    assert detector.calls == 1 and detector.frames == 6 and len(video) > 0
    # Photos: the frames where the batched pass found faces are not detected again.
    detector.calls = detector.frames = 0
    faces, whole = FaceExtractor(detector).process_photos(frames, 0)
    assert detector.calls == 1 and detector.frames == 6 and len(faces) == len(video) and not whole.any()
    # A close crop among them costs one more detection, of that photo only.
    crop = read_photo(_identities(shared_data, "johns") / "John_Simm" / "000288_00470387.jpg")
    detector.calls = detector.frames = 0
    faces, _ = FaceExtractor(detector).process_photos(frames[:2] + [crop], 0)
    assert detector.calls == 2 and detector.frames == 4 and (faces.frame == 2).sum() == 1


def test_crops_take_the_whole_photo_as_a_recorded_fallback(shared_data, tmp_path, model_home):  # noqa: F811
    # ORL s2/6.pgm: YuNet finds no face in it, as it is or padded.
    src = tmp_path / "photos"
    src.mkdir()
    orl = _identities(shared_data, "orl")
    for name in ("s2/6.pgm", "s2/1.pgm"):
        shutil.copy(orl / name, src / name.replace("/", "_"))
    plain = FaceExtraction(src, tmp_path / "plain", export=False).call()
    assert plain.no_face == ["s2_6.pgm"] and plain.fallback == 0 and plain.faces == 1
    summary = FaceExtraction(src, tmp_path / "crops", crops=True, export=False).call()
    assert summary.no_face == [] and summary.fallback == 1 and summary.faces == 2
    assert "1 taken whole as the face" in summary.line() and "0 without a face" in summary.line()
    stream = FaceStore.open(tmp_path / "crops" / "streamface.zarr").stream("photos")
    faces = stream.read_faces(columns=("frame", "box", "landmarks", "aligned"))
    files = stream.attribute_classes(PHOTO_ATTR)
    flags = stream.read_attribute(FALLBACK_ATTR)
    assert files == ["s2_1.pgm", "s2_6.pgm"] and flags.tolist() == [0.0, 1.0]
    assert faces.box[1].tolist() == [0, 0, 92, 112]
    eyes = faces.landmarks[1, :2]
    assert (eyes[:, 0] > 0).all() and (eyes[:, 0] < 92).all() and eyes[0, 0] < eyes[1, 0]
    assert faces.aligned[1].std() > 20  # a face, not a black square
    # The same through the CLI.
    out = CliRunner().invoke(main, ["extract", str(src), "--store", str(tmp_path / "cli.zarr"), "--crops"])
    assert out.exit_code == 0 and "0 without a face, 0 found padded, 1 taken whole as the face" in out.output
    cli = FaceStore.open(tmp_path / "cli.zarr").stream("photos")
    assert cli.read_attribute(FALLBACK_ATTR).tolist() == [0.0, 1.0]


# ---- the seed API and the CLI on the real folders ---------------------------------------------


@pytest.mark.parametrize("name", ["johns", "orl"])
def test_seed_api_on_the_folders_as_given(shared_data, tmp_path, model_home, name):  # noqa: F811
    truth = _shuffled(_identities(shared_data, name), tmp_path / "photos")
    summary = FaceExtraction(tmp_path / "photos", tmp_path, export=False).call()
    assert summary.photos == len(truth) and summary.unreadable == []
    FaceAnalysis(tmp_path, tmp_path).call()
    store = tmp_path / "streamface.zarr"
    result = FaceClustering(f"{store}::photos", output_dir=str(tmp_path / "clusters"), verbose=False).call()
    stream = FaceStore.open(store).stream("photos")
    f, missing = _score(stream, truth, dict(zip(result.names, result.labels.tolist())))
    print(f"{name}: {summary.line()}; BCubed F {f:.3f}, {missing:.2%} of photos without a face")
    assert len(summary.no_face) == round(missing * len(truth))
    assert f >= 0.98 and missing <= 0.01


@pytest.mark.parametrize("name", ["johns", "orl"])
def test_cli_extract_analyze_cluster_on_the_folders_as_given(shared_data, tmp_path, model_home, name):  # noqa: F811
    truth = _shuffled(_identities(shared_data, name), tmp_path / "photos", seed=1)
    store = tmp_path / "faces.zarr"
    runner = CliRunner()
    extract = runner.invoke(main, ["extract", str(tmp_path / "photos"), "--store", str(store)])
    assert extract.exit_code == 0, extract.output
    assert f"photos: {len(truth)}," in extract.output
    analyze = runner.invoke(main, ["analyze", str(store)])
    assert analyze.exit_code == 0, analyze.output
    cluster = runner.invoke(main, ["cluster", f"{store}::photos", "--output-dir", str(tmp_path / "out")])
    assert cluster.exit_code == 0, cluster.output
    stream = FaceStore.open(store).stream("photos")
    f, missing = _score(stream, truth, dict(zip(stream.face_ids().tolist(), stream.read_labels().tolist())))
    print(f"{name} CLI: {extract.output.strip().splitlines()[-1]}; BCubed F {f:.3f}, {missing:.2%} without a face")
    assert f >= 0.98 and missing <= 0.01


def test_labels_from_folders_are_ground_truth_for_evaluate_clusters(shared_data, tmp_path, model_home):  # noqa: F811
    root = _identities(shared_data, "johns")
    store = tmp_path / "faces.zarr"
    runner = CliRunner()
    out = runner.invoke(main, ["extract", str(root), "--store", str(store), "--labels-from-folders"])
    assert out.exit_code == 0, out.output
    stream = FaceStore.open(store).stream("johns")
    truth = identity_annotations(stream)
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert stream.attribute_classes(IDENTITY_ATTR) == people and len(truth.names) == 55
    files = stream.attribute_classes(PHOTO_ATTR)
    frames = stream.read_faces(columns=("frame",)).frame
    for face_id, label, frame in zip(truth.names.tolist(), truth.labels.tolist(), frames.tolist()):
        assert files[frame].split("/")[0] == people[label]
    assert runner.invoke(main, ["analyze", str(store)]).exit_code == 0
    before = runner.invoke(main, ["evaluate-clusters", f"{store}::johns", "--scores",
                                  str(tmp_path / "scores.json"), "--plots", str(tmp_path)])
    assert before.exit_code == 0, before.output
    assert "55 faces of 5 known identities" in before.output and "no cluster labels yet" in before.output
    assert (tmp_path / "known_identities.json").is_file()
    assert runner.invoke(main, ["cluster", f"{store}::johns", "--output-dir", str(tmp_path / "out")]).exit_code == 0
    after = runner.invoke(main, ["evaluate-clusters", f"{store}::johns", "--scores",
                                 str(tmp_path / "scores.json"), "--plots", str(tmp_path)])
    assert after.exit_code == 0, after.output
    f = float(after.output.split("BCubed precision")[1].split("F ")[1].split()[0].rstrip(";"))
    assert f >= 0.98, after.output


def test_evaluate_clusters_without_annotations_needs_identities(skynews, tmp_path, model_home):  # noqa: F811
    store = tmp_path / "faces.zarr"
    runner = CliRunner()
    src = tmp_path / "photos"
    src.mkdir()
    face = photo_files(skynews / "faces")[0]
    shutil.copy(face, src / f"a{face.suffix}")
    assert runner.invoke(main, ["extract", str(src), "--store", str(store)]).exit_code == 0
    out = runner.invoke(main, ["evaluate-clusters", f"{store}::photos"])
    assert out.exit_code == 1 and "--labels-from-folders" in out.output


def test_bad_files_one_line_each_the_rest_stored(shared_data, tmp_path, model_home):  # noqa: F811
    johns = _identities(shared_data, "johns") / "John_Simm"
    src = tmp_path / "photos"
    (src / "more").mkdir(parents=True)
    good = sorted(johns.glob("*.jpg"))[:3]
    for path in good:
        shutil.copy(path, src / "more" / path.name)
    expected = _bad_files(src, good[0])
    gray = np.asarray(Image.open(good[1]).convert("L")).astype(np.uint16) * 257
    Image.fromarray(gray).save(src / "deep16.pgm")  # 16-bit: read, not refused
    store = tmp_path / "faces.zarr"
    result = CliRunner().invoke(main, ["extract", str(src), "--store", str(store)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    for name, why in expected.items():
        mine = [line for line in lines if name in line]
        assert len(mine) == 1 and why in mine[0], (name, lines)
    assert "4 files could not be read" in lines[-1]
    assert "photos: 4, 0 without a face" in result.output and "4 unreadable files" in result.output
    stream = FaceStore.open(store).stream("photos")
    assert stream.num_frames == 4 and stream.num_faces == 4
    assert sorted(stream.attribute_classes(PHOTO_ATTR)) == sorted(["deep16.pgm"] + [f"more/{p.name}" for p in good])
    # The 16-bit photo is stored as 8-bit PNG, the JPEG bytes as they were.
    images = stream.read_frame_images()
    files = stream.attribute_classes(PHOTO_ATTR)
    assert Image.open(io.BytesIO(images[files.index("deep16.pgm")])).format == "PNG"
    assert images[files.index(f"more/{good[0].name}")] == good[0].read_bytes()
    # A second run imports nothing again (the bad files are still named, the exit still 1).
    again = CliRunner().invoke(main, ["extract", str(src), "--store", str(store)])
    assert again.exit_code == 1 and FaceStore.open(store).stream("photos").num_frames == 4


def test_extract_of_a_folder_without_store_says_what_to_give(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    result = CliRunner().invoke(main, ["extract", str(tmp_path)])
    assert result.exit_code == 1 and "--store" in result.output


def test_a_frames_folder_with_other_names_is_a_photo_folder(skynews, tmp_path, model_home):  # noqa: F811
    # Issue 22, item 9: a user's own frames/ folder whose files are not <name>_frame_<time>.
    (tmp_path / "frames").mkdir()
    for i, png in enumerate(sorted((skynews / "frames").glob("*.png"))[:3]):
        shutil.copy(png, tmp_path / "frames" / f"shot {i}.png")
    summary = FaceExtraction(tmp_path, tmp_path, export=False).call()
    stream = FaceStore.open(tmp_path / "streamface.zarr").stream(tmp_path.name.strip("._") or "photos")
    assert summary.photos == 3 and stream.attribute_classes(PHOTO_ATTR) == ["shot 0.png", "shot 1.png",
                                                                              "shot 2.png"]
    assert summary.faces > 0


# ---- index query on a face crop -----------------------------------------------------------------


def test_index_query_takes_a_face_crop(shared_data, tmp_path, model_home):  # noqa: F811
    root = _identities(shared_data, "johns")
    src, held = tmp_path / "gallery", {}
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        held[person.name] = photos[0]
        (src / person.name).mkdir(parents=True)
        for path in photos[1:]:
            shutil.copy(path, src / person.name / path.name)
    store = tmp_path / "faces.zarr"
    runner = CliRunner()
    for args in (["extract", str(src), "--store", str(store), "--labels-from-folders"], ["analyze", str(store)],
                 ["index", "build", "--store", str(store), "--threshold", "0.6"]):
        out = runner.invoke(main, args)
        assert out.exit_code == 0, out.output
    stream = FaceStore.open(store).stream("gallery")
    person_of = {fid: stream.attribute_classes(IDENTITY_ATTR)[int(k)]
                 for fid, k in zip(stream.face_ids().tolist(), stream.read_attribute(IDENTITY_ATTR).tolist())}
    for person, photo in held.items():
        for extra in ([], ["--crop"]):
            out = CliRunner().invoke(main, ["index", "query", "--store", str(store), "--image", str(photo)] + extra)
            assert out.exit_code == 0, out.output
            nearest = out.output.split("\n  ")[1].split("\t")[0]
            assert person_of[nearest] == person, (person, extra, out.output)
    # An image where nothing is found even padded is taken whole, and said so.
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 100, 3), 128, np.uint8)).save(blank)
    out = CliRunner().invoke(main, ["index", "query", "--store", str(store), "--image", str(blank)])
    assert out.exit_code == 0 and "took the whole image as the face" in out.output


def test_a_second_run_imports_neither_old_photos_nor_its_own_export(shared_data, tmp_path, model_home):  # noqa: F811
    src = tmp_path / "photos"
    src.mkdir()
    for path in sorted((_identities(shared_data, "johns") / "John_Simm").glob("*.jpg"))[:3]:
        shutil.copy(path, src / path.name)
    out = src / "out"  # the export (frames/, faces/, aligned_faces/) and the store inside the photo folder
    first = FaceExtraction(src, out).call()
    assert first.photos == 3 and len(list((out / "faces").iterdir())) == 3
    shutil.copy(src / sorted(os.listdir(src))[0], src / "new.jpg")
    again = FaceExtraction(src, out).call()
    stream = FaceStore.open(out / "streamface.zarr").stream("photos")
    assert again.photos == 1 and stream.num_frames == 4 and stream.attribute_classes(PHOTO_ATTR)[-1] == "new.jpg"
