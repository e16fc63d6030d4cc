"""FaceExtraction on the seed's 24 real frames: the seed's faces are found, filters hold."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine_fixtures import engine_home  # noqa: F401
from pipeline_fixtures import extracted, extracted_copy, model_home, seed_boxes  # noqa: F401

from streamface import kernels
from streamface.engine import box_iou
from streamface.engine.models.yunet import YuNet
from streamface.ingest.extraction import FaceExtraction
from streamface.store import FaceStore, StoreError
from streamface.store.export import DETECTION_COLUMNS
from streamface.ingest.capture import store_path


def _stream(out):
    return FaceStore.open(store_path(out)).stream("skynews")


def test_finds_at_least_90_percent_of_the_seeds_faces(extracted, skynews):  # noqa: F811
    out, _ = extracted
    seed = seed_boxes(skynews / "metadata" / "detections.csv")
    ours = seed_boxes(out / "metadata" / "detections.csv")
    total = sum(len(b) for b in seed.values())
    found = sum(int((box_iou(boxes, ours[frame]).max(axis=1) >= 0.5).sum())
                for frame, boxes in seed.items() if frame in ours)
    assert total == 37 and found / total >= 0.9


def test_every_stored_aligned_face_passes_the_blur_rule(extracted):  # noqa: F811
    out, _ = extracted
    faces = _stream(out).read_faces(columns=("aligned", "blur"))
    scores = [kernels.blur_score(a, resize=None, crop=None) for a in faces.aligned]
    assert len(scores) > 30 and min(scores) > 25
    np.testing.assert_allclose(faces.blur, scores, rtol=1e-6)


def test_faces_pass_the_confidence_and_size_filters(extracted):  # noqa: F811
    out, _ = extracted
    stream = _stream(out)
    faces = stream.read_faces(columns=("frame", "score", "box", "crop", "aligned"))
    frames = stream.read_frames()
    area = (frames.width * frames.height).astype(float)[faces.frame]
    assert (faces.score >= YuNet.DEFAULT_CONF_THRESHOLD).all()  # the out-of-the-box detector's own default
    assert (faces.box[:, 2] * faces.box[:, 3] / area > FaceExtraction(".", ".").size_threshold).all()
    assert faces.aligned.shape[1:] == (128, 128, 3)
    assert (faces.crop_size <= 256).all() and (faces.crop_size.max(axis=1) == 256).sum() > 20


def test_writes_the_seeds_metadata_and_face_files(extracted, skynews):  # noqa: F811
    out, _ = extracted
    with open(out / "metadata" / "detections.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == DETECTION_COLUMNS
    frame_stems = {p.stem for p in (skynews / "frames").glob("*.png")}
    for row in rows[1:]:
        assert row[0].rsplit("_face_", 1)[0] in frame_stems
        assert (out / "faces" / row[0]).is_file() and (out / "aligned_faces" / row[0]).is_file()
        assert row[-1] == "(128, 128, 3)" and row[-3] == "(1080, 1920, 3)"
    assert (out / "metadata" / "matches.csv").read_text().startswith("Face 1,Face 2")


def test_resume_adds_no_face_twice(extracted_copy, skynews, model_home):  # noqa: F811
    before = _stream(extracted_copy).num_faces
    summary = FaceExtraction(skynews, extracted_copy).call()
    assert summary.frames == 0 and _stream(extracted_copy).num_faces == before


def test_resume_false_refuses_a_stream_with_faces(extracted_copy, skynews, model_home):  # noqa: F811
    with pytest.raises(StoreError, match="already has"):
        FaceExtraction(skynews, extracted_copy, resume=False, export=False).call()


def test_faces_of_consecutive_similar_frames_share_a_track(model_home):  # noqa: F811
    from streamface.ingest.extraction import FaceExtractor

    class Fixed:
        def detect(self, frames):
            from streamface.engine import Detections
            box = np.array([[100, 100, 80, 100]], np.float32)
            lm = np.array([[[120, 130], [160, 130], [140, 150], [125, 175], [155, 175]]], np.float32)
            return [Detections(box, lm, np.array([0.9], np.float32)) for _ in frames]

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (360, 640, 3), np.uint8)
    extractor = FaceExtractor(Fixed(), blur_threshold=0)
    faces = extractor.process([frame, frame.copy()], first_row=10)
    assert faces.match.tolist() == [10, 10]
    other = extractor.process([rng.integers(0, 255, (360, 640, 3), np.uint8)], first_row=12)
    assert other.match.tolist() == [12]


def test_track_matching_on_real_frames_follows_the_seeds_rule(skynews_frames, model_home):  # noqa: F811
    # The extractor compares small gray images it keeps instead of the frames: the
    # decisions must be those of the seed's rule on the RGB frames.
    from streamface.engine import Detections
    from streamface.ingest.extraction import FaceExtractor, similarity_image

    class OneFace:
        def detect(self, frames):
            box = np.array([[800, 300, 200, 260]], np.float32)
            lm = np.array([[[850, 400], [950, 400], [900, 450], [860, 500], [940, 500]]], np.float32)
            return [Detections(box, lm, np.array([0.9], np.float32)) for _ in frames]

    frames = [f for _, f in skynews_frames[:6]]
    rng = np.random.default_rng(1)
    sequence = []
    for frame in frames:
        noisy = np.clip(frame.astype(np.int16) + rng.integers(-20, 21, frame.shape), 0, 255)
        sequence += [frame, noisy.astype(np.uint8)]
    expected, previous = [], []
    for row, rgb in enumerate(sequence):
        track = row
        for earlier_rgb, earlier_track in reversed(previous):
            if kernels.frame_similarity(rgb, earlier_rgb) > 0.75:
                track = earlier_track
                break
        expected.append(track)
        previous = (previous + [(rgb, track)])[-2:]
    # The images made here, or handed in (as keyframe selection does, some missing).
    given = [similarity_image(f) if i % 3 else None for i, f in enumerate(sequence)]
    for similarity_images in (None, given):
        extractor = FaceExtractor(OneFace(), blur_threshold=0)
        got = []
        for start in range(0, len(sequence), 3):  # batches: matching carries across calls
            part = None if similarity_images is None else similarity_images[start:start + 3]
            got += extractor.process(sequence[start:start + 3], start, part).match.tolist()
        assert got == expected
    assert len(set(got)) < len(got) and len(set(got)) > 1  # some matched, some not
    # Handed-in images are what is compared: identical ones make every frame match.
    black = [np.zeros_like(given[1])] * len(sequence)
    matched = FaceExtractor(OneFace(), blur_threshold=0).process(sequence, 0, black).match
    assert matched.tolist() == [0] * len(sequence)


def test_seed_usage_capture_then_extract_in_the_same_folder(skynews, model_home, tmp_path):  # noqa: F811
    from streamface.ingest.capture import StreamCapture

    clip = skynews / "skynews_sample.mp4"
    StreamCapture("sky", str(clip), tmp_path, max_frames=8).call()
    first = FaceExtraction(tmp_path, tmp_path).call()
    assert first.frames == 6 and first.faces > 0
    assert len(list((tmp_path / "frames").glob("sky_frame_*.jpg"))) == 6  # exported by the stage
    again = FaceExtraction(tmp_path, tmp_path).call()  # the exported frames/ are not imported twice
    stream = FaceStore.open(store_path(tmp_path)).stream("sky")
    assert again.frames == 0 and stream.num_frames == 6 and stream.num_faces == first.faces
