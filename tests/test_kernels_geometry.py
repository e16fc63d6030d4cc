"""Specification of the face geometry kernels: 5-point alignment and the seed's face crop.

References: OpenCV (``estimateAffinePartial2D`` + ``warpAffine``) for alignment,
the seed's own face PNGs and Pillow's ``thumbnail`` for crops.
"""

from __future__ import annotations

import ast
import csv

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from streamface.kernels import ARCFACE_TEMPLATE, align_faces, crop_faces
from streamface.kernels.geometry import similarity_transform

LANDMARK_COLUMNS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def seed_faces(skynews):
    """The seed's 37 detections with their frame (RGB) and saved face crop."""
    frames, faces = {}, []
    with open(skynews / "metadata" / "detections.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            stem = row["name"].rsplit("_face_", 1)[0]
            if stem not in frames:
                with Image.open(skynews / "frames" / f"{stem}.png") as im:
                    frames[stem] = np.asarray(im.convert("RGB"))
            with Image.open(skynews / "faces" / row["name"]) as im:
                seed_crop = np.asarray(im.convert("RGB"))
            faces.append({
                "frame": frames[stem],
                "box": ast.literal_eval(row["box"]),
                "landmarks": np.array([ast.literal_eval(row[c]) for c in LANDMARK_COLUMNS], float),
                "face_shape": ast.literal_eval(row["face"]),
                "seed_crop": seed_crop,
            })
    return faces


def random_image(rng, height, width, channels=3):
    shape = (height, width) if channels is None else (height, width, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def cv2_align(image, landmarks, template, size):
    """OpenCV reference: least-squares similarity, then a bilinear warp with black border.

    A huge reprojection threshold makes every point an inlier, so the fit is the
    plain least-squares one (the default RANSAC and LMEDS drop points).
    """
    matrix, _ = cv2.estimateAffinePartial2D(landmarks, template, ransacReprojThreshold=1e6)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def mean_abs_diff(a, b) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------- similarity_transform

def test_similarity_transform_recovers_a_known_similarity():
    angle, scale, shift = 0.3, 1.7, np.array([12.5, -4.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    matrix = similarity_transform(src, src @ rotation.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rotation, shift[:, None]]), atol=1e-9)


def test_similarity_transform_is_opencv_least_squares_fit():
    rng = np.random.default_rng(1)
    src = ARCFACE_TEMPLATE * 2.1 + [300, 200] + rng.normal(0, 4, (5, 2))
    reference, _ = cv2.estimateAffinePartial2D(src, ARCFACE_TEMPLATE, ransacReprojThreshold=1e6)
    np.testing.assert_allclose(similarity_transform(src, ARCFACE_TEMPLATE), reference, atol=1e-4)


def test_similarity_transform_never_reflects():
    mirrored = ARCFACE_TEMPLATE * [-1, 1]
    matrix = similarity_transform(mirrored, ARCFACE_TEMPLATE)
    assert np.linalg.det(matrix[:, :2]) >= 0


def test_similarity_transform_batches_over_leading_axis():
    src = np.stack([ARCFACE_TEMPLATE + 5, ARCFACE_TEMPLATE * 3])
    batch = similarity_transform(src, ARCFACE_TEMPLATE)
    assert batch.shape == (2, 2, 3)
    np.testing.assert_allclose(batch[1], similarity_transform(src[1], ARCFACE_TEMPLATE))


def test_similarity_transform_of_coincident_points_is_zero():
    assert not similarity_transform(np.full((5, 2), 7.0), ARCFACE_TEMPLATE).any()


# --------------------------------------------------------------------------- align_faces

def test_align_matches_opencv_on_the_seed_faces(seed_faces):
    diffs = [
        mean_abs_diff(align_faces(f["frame"], f["landmarks"][None])[0],
                      cv2_align(f["frame"], f["landmarks"], ARCFACE_TEMPLATE, 112))
        for f in seed_faces
    ]
    assert len(diffs) == 37
    assert np.mean(diffs) <= 0.05 and max(diffs) <= 1.0


def test_align_is_pixel_exact_for_the_same_matrix():
    rng = np.random.default_rng(2)
    image = random_image(rng, 240, 320)
    landmarks = ARCFACE_TEMPLATE * 1.4 + [60, 30] + rng.normal(0, 2, (5, 2))
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    reference = cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR)
    ours = align_faces(image, landmarks[None])[0]
    if int(cv2.__version__.split(".")[0]) >= 5:
        # OpenCV 5 interpolates in float, as the kernel does: the same pixels.
        assert mean_abs_diff(ours, reference) <= 0.01
    else:
        # OpenCV 4 (fiftyone, in the annotate extra, pins opencv<5) quantises the
        # bilinear weights to 1/32 pixel: within one grey level of the exact result.
        diff = np.abs(ours.astype(int) - reference.astype(int))
        assert diff.mean() <= 1.0 and np.percentile(diff, 99) <= 4


def test_align_matches_opencv_where_the_face_leaves_the_frame():
    rng = np.random.default_rng(3)
    image = random_image(rng, 120, 160)
    landmarks = ARCFACE_TEMPLATE * 1.5 + [-40, 60]  # left half and bottom outside
    reference = cv2_align(image, landmarks, ARCFACE_TEMPLATE, 112)
    assert mean_abs_diff(align_faces(image, landmarks[None])[0], reference) <= 1.0


def test_align_scales_the_template_with_size():
    rng = np.random.default_rng(4)
    image = random_image(rng, 400, 400)
    landmarks = ARCFACE_TEMPLATE * 2 + [80, 50]
    reference = cv2_align(image, landmarks, ARCFACE_TEMPLATE * 2, 224)
    assert mean_abs_diff(align_faces(image, landmarks[None], size=224)[0], reference) <= 1.0


def test_align_accepts_a_custom_template():
    # dlib-style chip used by the age/gender heads (MODELS.md).
    chip = (0.2 + np.array([[0.2273, 0.2214], [0.7528, 0.2212], [0.4901, 0.5156],
                            [0.2541, 0.7802], [0.7261, 0.7802]])) / 1.4 * 64
    rng = np.random.default_rng(5)
    image = random_image(rng, 200, 200)
    landmarks = ARCFACE_TEMPLATE + [40, 40]
    out = align_faces(image, landmarks[None], size=64, template=chip)
    assert mean_abs_diff(out[0], cv2_align(image, landmarks, chip, 64)) <= 1.0


def test_align_does_many_faces_in_one_call_like_one_at_a_time():
    rng = np.random.default_rng(6)
    image = random_image(rng, 300, 400)
    landmarks = np.stack([ARCFACE_TEMPLATE * s + o for s, o in [(1, 10), (2, 50), (0.5, 200)]])
    batch = align_faces(image, landmarks)
    for i in range(3):
        np.testing.assert_array_equal(batch[i], align_faces(image, landmarks[i:i + 1])[0])


def test_align_writes_into_a_preallocated_batch():
    rng = np.random.default_rng(7)
    image = random_image(rng, 200, 200)
    batch = np.zeros((8, 112, 112, 3), np.uint8)
    result = align_faces(image, np.stack([ARCFACE_TEMPLATE + 20] * 3), out=batch)
    assert result.shape == (3, 112, 112, 3) and np.shares_memory(result, batch)
    assert batch[:3].any() and not batch[3:].any()


def test_align_keeps_grayscale_two_dimensional():
    rng = np.random.default_rng(8)
    image = random_image(rng, 150, 150, channels=None)
    out = align_faces(image, (ARCFACE_TEMPLATE + 10)[None])
    assert out.shape == (1, 112, 112)
    reference = cv2_align(image, ARCFACE_TEMPLATE + 10, ARCFACE_TEMPLATE, 112)
    assert mean_abs_diff(out[0], reference) <= 1.0


def test_align_is_the_same_on_one_and_two_threads():
    rng = np.random.default_rng(9)
    image = random_image(rng, 300, 300)
    landmarks = np.stack([ARCFACE_TEMPLATE * 1.3 + 30] * 4)
    np.testing.assert_array_equal(align_faces(image, landmarks, threads=1),
                                  align_faces(image, landmarks, threads=2))


def test_align_without_faces_returns_an_empty_batch():
    out = align_faces(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 5, 2)))
    assert out.shape == (0, 112, 112, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("landmarks", [np.full((1, 5, 2), 50.0), np.full((1, 5, 2), np.nan)],
                         ids=["coincident", "nan"])
def test_align_of_undefined_landmarks_is_black(landmarks):
    image = np.full((100, 100, 3), 200, np.uint8)
    assert not align_faces(image, landmarks).any()


@pytest.mark.parametrize("image, landmarks, kwargs, match", [
    (np.zeros((10, 10, 3), np.float32), np.zeros((1, 5, 2)), {}, "image must have dtype uint8"),
    (np.zeros((10, 10, 4), np.uint8), np.zeros((1, 5, 2)), {}, "channels"),
    (np.zeros((0, 10, 3), np.uint8), np.zeros((1, 5, 2)), {}, "image is empty"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 4, 2)), {},
     r"landmarks must have shape \(N, 5, 2\)"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2)), {}, "landmarks must have shape"),
    (np.zeros((10, 10, 3), np.uint8), np.array([["a"] * 2] * 5)[None], {}, "real numbers"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 5, 2)), {"size": 0},
     "size must be a positive int"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 5, 2)),
     {"out": np.zeros((1, 112, 112, 3), np.float32)}, "out must be a numpy uint8 array"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((2, 5, 2)),
     {"out": np.zeros((1, 112, 112, 3), np.uint8)}, "out must have shape"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 5, 2)),
     {"out": np.zeros((2, 112, 224, 3), np.uint8)[:, :, ::2]}, "C-contiguous"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 5, 2)), {"threads": 0}, "threads"),
])
def test_align_rejects_bad_arguments_naming_them(image, landmarks, kwargs, match):
    with pytest.raises(ValueError, match=match):
        align_faces(image, landmarks, **kwargs)


coordinates = st.floats(-1e7, 1e7, allow_nan=False)


@PROPERTY
@given(height=st.integers(1, 40), width=st.integers(1, 40), gray=st.booleans(),
       size=st.integers(1, 48), faces=st.integers(0, 3),
       points=st.lists(st.tuples(coordinates, coordinates), min_size=5, max_size=5),
       coincident=st.booleans(), seed=st.integers(0, 2**16))
def test_align_never_fails_on_odd_input(height, width, gray, size, faces, points, coincident,
                                        seed):
    rng = np.random.default_rng(seed)
    image = random_image(rng, height, width, channels=None if gray else 3)
    landmarks = np.array([points[:1] * 5 if coincident else points] * faces, float)
    out = align_faces(image, landmarks.reshape(faces, 5, 2), size=size)
    assert out.shape == (faces, size, size) + (() if gray else (3,))
    assert out.dtype == np.uint8


# --------------------------------------------------------------------------- crop_faces

def test_crop_shapes_match_the_seed_detections(seed_faces):
    for face in seed_faces:
        (crop,) = crop_faces(face["frame"], [face["box"]])
        assert crop.shape == face["face_shape"]


def test_crops_match_the_seed_face_pngs(seed_faces):
    diffs = [mean_abs_diff(crop_faces(f["frame"], [f["box"]])[0], f["seed_crop"])
             for f in seed_faces]
    # Exact except the two crops over 1024 px, which Pillow box-reduced first.
    assert sum(d == 0 for d in diffs) >= 35
    assert np.mean(diffs) < 0.1 and max(diffs) < 1.0


def pillow_seed_crop(image, box, margin=1.0, padding=0.5, size=256):
    """The seed's recipe (numpy zero padding, slice, Pillow thumbnail with a single
    Lanczos pass), centred on the box itself where the seed first moved x, y < 0 to 0."""
    x, y, w, h = box
    py, px = int(padding * image.shape[0]), int(padding * image.shape[1])
    padded = np.pad(image, ((py, py), (px, px), (0, 0)))
    cx, cy = x + px + w // 2, y + py + h // 2
    half = int((1 + margin) * max(w, h) / 2)
    im = Image.fromarray(padded[max(0, cy - half):cy + half, max(0, cx - half):cx + half])
    im.thumbnail((size, size), resample=Image.LANCZOS, reducing_gap=None)
    return np.asarray(im)


@pytest.mark.parametrize("box", [(50, 40, 60, 80), (-30, -20, 70, 50), (150, 100, 60, 60),
                                 (20, 10, 200, 150), (5, 5, 3, 4)],
                         ids=["inside", "top-left-out", "bottom-right-out", "beyond-padding",
                              "tiny"])
def test_crop_equals_the_seed_recipe_with_pillow(box):
    rng = np.random.default_rng(10)
    image = random_image(rng, 160, 200)
    reference = pillow_seed_crop(image, box, size=48)
    (crop,) = crop_faces(image, [box], size=48)
    assert crop.shape == reference.shape
    assert mean_abs_diff(crop, reference) == 0


def test_crop_is_never_enlarged():
    (crop,) = crop_faces(np.full((100, 100, 3), 9, np.uint8), [(40, 40, 10, 12)])
    assert crop.shape == (24, 24, 3)


def test_crop_of_a_box_wholly_outside_is_black():
    (crop,) = crop_faces(np.full((100, 100, 3), 9, np.uint8), [(5000, -7000, 50, 50)])
    assert crop.shape == (100, 100, 3) and not crop.any()


def test_crop_keeps_grayscale_two_dimensional():
    crops = crop_faces(np.full((300, 300), 9, np.uint8), [(100, 100, 150, 150)])
    assert crops[0].shape == (256, 256)


def test_crop_without_boxes_returns_an_empty_list():
    assert crop_faces(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4))) == []


@pytest.mark.parametrize("boxes, kwargs, match", [
    (np.zeros((1, 3)), {}, r"boxes must have shape \(N, 4\)"),
    ([[0, 0, np.nan, 4]], {}, "boxes must be finite"),
    ([[0, 0, -5, 4]], {}, "non-negative width and height"),
    ([[0, 0, 5, 4]], {"margin": -1}, "margin"),
    ([[0, 0, 5, 4]], {"size": 0}, "size"),
])
def test_crop_rejects_bad_arguments_naming_them(boxes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        crop_faces(np.zeros((10, 10, 3), np.uint8), boxes, **kwargs)


@PROPERTY
@given(height=st.integers(1, 40), width=st.integers(1, 40), size=st.integers(1, 32),
       boxes=st.lists(st.tuples(st.integers(-200, 200), st.integers(-200, 200),
                                st.integers(0, 120), st.integers(0, 120)), max_size=3),
       seed=st.integers(0, 2**16))
def test_crop_never_fails_on_odd_boxes(height, width, size, boxes, seed):
    image = random_image(np.random.default_rng(seed), height, width)
    crops = crop_faces(image, np.array(boxes, float).reshape(-1, 4), size=size)
    assert len(crops) == len(boxes)
    for crop in crops:
        assert crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3
        assert min(crop.shape[:2]) >= 1 and max(crop.shape[:2]) <= size
