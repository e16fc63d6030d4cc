"""Quality kernels (blur score, frame similarity, emptiness) against the seed's OpenCV code.

The reference functions below are the seed's semantics written with OpenCV
(SEED_NOTES §1-2). The contract is: blur within 1% (frames and aligned faces),
similarity within 1e-3, identical keep/drop decisions for emptiness. The kernels
are exact by construction, so the assertions are much tighter than the contract:
a drift in semantics shows up at once.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

cv2 = pytest.importorskip("cv2")

from streamface.kernels import _quality  # noqa: E402
from streamface.kernels.quality import (  # noqa: E402
    BLUR_RESIZE,
    SIMILARITY_SIZE,
    blur_score,
    emptiness,
    frame_similarity,
    gray,
    resize_nearest,
)

# The seed's keyframe thresholds (SEED_NOTES §1).
EMPTY_THRESHOLD = 0.95
BLUR_THRESHOLD = 50.0
SIMILARITY_THRESHOLD = 0.9


# --- the seed's scores, with OpenCV -------------------------------------------


def ref_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def ref_blur(image, resize=(1280, 720), crop=0.15) -> float:
    gray = ref_gray(image)
    if resize is not None:
        gray = cv2.resize(gray, resize, interpolation=cv2.INTER_NEAREST)
    if crop:
        h, w = gray.shape
        dy, dx = int(h * crop), int(w * crop)
        gray = gray[dy : h - dy, dx : w - dx]
    blurred = cv2.GaussianBlur(gray, (3, 3), 0.5)
    return float(cv2.Laplacian(blurred, cv2.CV_64F, ksize=11).var())


def ref_similarity(a, b, size=(1280, 720)) -> float:
    ga = cv2.resize(ref_gray(a), size, interpolation=cv2.INTER_NEAREST)
    gb = cv2.resize(ref_gray(b), size, interpolation=cv2.INTER_NEAREST)
    return 1.0 - float(cv2.matchTemplate(ga, gb, cv2.TM_SQDIFF_NORMED)[0, 0])


def ref_canny(image) -> np.ndarray:
    return cv2.Canny(ref_gray(image), 0, 25)


def ref_emptiness(image) -> float:
    edges = ref_canny(image)
    return float(np.count_nonzero(edges == 0)) / edges.size


def our_canny(image) -> np.ndarray:
    image = np.ascontiguousarray(image)
    return _quality.canny(image.reshape(image.shape[0], image.shape[1], -1), 0, 25)


def relative_error(ours: float, ref: float) -> float:
    return abs(ours - ref) / max(abs(ref), 1e-12)


# --- synthetic frames -----------------------------------------------------------


def synthetic_frames() -> dict[str, np.ndarray]:
    """Frames the emptiness test must decide like the seed (480x640 RGB)."""
    h, w = 480, 640
    rng = np.random.default_rng(7)
    frames = {
        "black": np.zeros((h, w, 3), np.uint8),
        "flat_colour": np.full((h, w, 3), (40, 120, 200), np.uint8),
        "uniform_noise": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "low_noise": (128 + rng.integers(-2, 3, (h, w, 3))).astype(np.uint8),
    }
    ramp = np.linspace(0, 255, w, dtype=np.float64)[None, :] + np.linspace(0, 60, h)[:, None]
    frames["smooth_gradient"] = np.repeat(np.clip(ramp, 0, 255).astype(np.uint8)[..., None], 3, 2)
    captions = np.zeros((h, w, 3), np.uint8)
    cv2.putText(captions, "BREAKING NEWS", (20, 400), cv2.FONT_HERSHEY_SIMPLEX, 1.5,
                (255, 255, 255), 3)
    cv2.putText(captions, "live", (20, 450), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    frames["captions_on_black"] = captions
    busy = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    frames["blocks"] = np.kron(busy, np.ones((8, 8, 1), np.uint8))
    return frames


def load_rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def aligned_faces(skynews):
    paths = sorted((skynews / "aligned_faces").glob("*.png"))
    if not paths:
        pytest.skip("no aligned faces in the skynews sample")
    return [(p.stem, load_rgb(p)) for p in paths]


# --- agreement with the seed on real data ---------------------------------------


def test_blur_score_matches_opencv_on_real_frames(skynews_frames):
    errors = [relative_error(blur_score(f), ref_blur(f)) for _, f in skynews_frames]
    assert len(errors) == 24
    assert max(errors) < 1e-6  # contract: 1%


def test_face_blur_score_matches_opencv_on_aligned_faces(aligned_faces):
    errors = [
        relative_error(blur_score(f, resize=None, crop=None), ref_blur(f, None, None))
        for _, f in aligned_faces
    ]
    assert len(errors) == 37
    assert max(errors) < 1e-6  # contract: 1%


def test_frame_similarity_matches_opencv_on_consecutive_frames(skynews_frames):
    frames = [f for _, f in skynews_frames]
    diffs = [abs(frame_similarity(a, b) - ref_similarity(a, b)) for a, b in zip(frames, frames[1:])]
    assert max(diffs) < 1e-4  # contract: 1e-3


def test_emptiness_equals_opencv_on_real_frames(skynews_frames):
    for name, frame in skynews_frames:
        ours, ref = emptiness(frame), ref_emptiness(frame)
        assert ours == ref, name
        assert (ours > EMPTY_THRESHOLD) == (ref > EMPTY_THRESHOLD), name


def test_edge_map_equals_opencv_canny_pixel_for_pixel(skynews_frames):
    for name, frame in skynews_frames[:4]:
        np.testing.assert_array_equal(our_canny(frame), ref_canny(frame), err_msg=name)


def test_scores_from_gray_and_resized_gray_equal_the_rgb_scores_on_real_frames(skynews_frames):
    # What the keyframe selector relies on: one gray image and one resized copy per
    # frame give every score exactly as the RGB frame does.
    assert BLUR_RESIZE == SIMILARITY_SIZE
    frames = [f for _, f in skynews_frames]
    smalls = []
    for (name, frame) in skynews_frames:
        g = gray(frame)
        np.testing.assert_array_equal(g, ref_gray(frame), err_msg=name)
        small = resize_nearest(g, SIMILARITY_SIZE)
        np.testing.assert_array_equal(
            small, cv2.resize(ref_gray(frame), SIMILARITY_SIZE, interpolation=cv2.INTER_NEAREST))
        assert emptiness(g) == emptiness(frame), name
        assert blur_score(small) == blur_score(frame), name
        smalls.append(small)
    for i in range(1, len(frames)):
        expected = frame_similarity(frames[i], frames[i - 1])
        assert frame_similarity(smalls[i], smalls[i - 1], size=None) == expected
        assert frame_similarity(frames[i], smalls[i - 1]) == expected


def select_keyframes(frames, empty_fn, blur_fn, similarity_fn) -> list[str]:
    """The seed's keyframe selection: a frame is dropped at the first failing test."""
    decisions, last_kept = [], None
    for frame in frames:
        if empty_fn(frame) > EMPTY_THRESHOLD:
            decisions.append("empty")
        elif blur_fn(frame) < BLUR_THRESHOLD:
            decisions.append("blurry")
        elif last_kept is not None and similarity_fn(frame, last_kept) > SIMILARITY_THRESHOLD:
            decisions.append("similar")
        else:
            decisions.append("keep")
            last_kept = frame
    return decisions


def test_keyframe_decisions_match_the_seed_on_a_mixed_sequence(skynews_frames):
    # The real frames were all kept by the seed; near-duplicates, black frames and
    # captions on black make the sequence exercise the drop branches too.
    rng = np.random.default_rng(13)
    black = np.zeros_like(skynews_frames[0][1])
    sequence = []
    for _, frame in skynews_frames[:8]:
        near_duplicate = np.clip(frame + rng.integers(-3, 4, frame.shape), 0, 255)
        sequence += [frame, near_duplicate.astype(np.uint8), black]
    ours = select_keyframes(sequence, emptiness, blur_score, frame_similarity)
    seed = select_keyframes(sequence, ref_emptiness, ref_blur, ref_similarity)
    assert ours == seed
    assert set(ours) == {"keep", "similar", "empty"}


# --- synthetic frames -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(synthetic_frames()))
def test_emptiness_decides_synthetic_frames_like_the_seed(name):
    frame = synthetic_frames()[name]
    ours, ref = emptiness(frame), ref_emptiness(frame)
    assert ours == ref
    assert (ours > EMPTY_THRESHOLD) == (ref > EMPTY_THRESHOLD)


def test_emptiness_of_edge_free_frames_is_one():
    assert emptiness(np.zeros((720, 1280, 3), np.uint8)) == 1.0
    assert emptiness(np.full((720, 1280), 77, np.uint8)) == 1.0


def test_captions_on_black_are_dropped_and_noise_is_kept():
    frames = synthetic_frames()
    assert emptiness(frames["captions_on_black"]) > EMPTY_THRESHOLD
    assert emptiness(frames["uniform_noise"]) < EMPTY_THRESHOLD


@pytest.mark.parametrize("name", ["captions_on_black", "uniform_noise", "smooth_gradient"])
def test_blur_and_similarity_match_opencv_on_synthetic_frames(name):
    frame = synthetic_frames()[name]
    other = np.roll(frame, 3, axis=1)
    assert relative_error(blur_score(frame), ref_blur(frame)) < 1e-6
    assert abs(frame_similarity(frame, other) - ref_similarity(frame, other)) < 1e-4


# --- definitions at the edges ---------------------------------------------------


def test_flat_frame_has_zero_blur_score():
    assert blur_score(np.full((1080, 1920, 3), 90, np.uint8)) == 0.0


def test_similarity_of_a_frame_with_itself_is_one():
    frame = np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert frame_similarity(frame, frame) == 1.0


def test_similarity_of_two_black_frames_is_one():
    black = np.zeros((1080, 1920, 3), np.uint8)
    assert frame_similarity(black, black) == 1.0


def test_similarity_of_black_against_content_is_zero():
    black = np.zeros((1080, 1920, 3), np.uint8)
    grey = np.full((1080, 1920, 3), 100, np.uint8)
    assert frame_similarity(black, grey) == 0.0
    assert frame_similarity(grey, black) == 0.0


def test_similarity_is_clipped_at_zero_like_opencv():
    bright = np.full((72, 128), 250, np.uint8)
    dark = np.full((72, 128), 10, np.uint8)
    assert frame_similarity(bright, dark) == 0.0
    assert ref_similarity(bright, dark) == 0.0


def test_frames_of_different_sizes_are_compared_after_resizing():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    b = cv2.resize(a, (1280, 720), interpolation=cv2.INTER_AREA)
    assert abs(frame_similarity(a, b) - ref_similarity(a, b)) < 1e-4


def test_similarity_without_resize_compares_pixels_directly():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (50, 70), dtype=np.uint8)
    ga, gb = ref_gray(a).astype(np.float64), b.astype(np.float64)
    expected = 1 - ((ga - gb) ** 2).sum() / np.sqrt((ga**2).sum() * (gb**2).sum())
    assert frame_similarity(a, b, size=None) == pytest.approx(max(expected, 0.0), abs=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (2, 3), (2, 3, 3), (1, 17), (17, 1, 3), (5, 5, 1)])
def test_tiny_images_agree_with_opencv(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    assert blur_score(image, resize=None, crop=None) == pytest.approx(
        ref_blur(image, None, None), rel=1e-9, abs=1e-9
    )
    assert blur_score(image) == pytest.approx(ref_blur(image), rel=1e-9, abs=1e-9)
    assert emptiness(image) == ref_emptiness(image)
    np.testing.assert_array_equal(our_canny(image), ref_canny(image))
    assert frame_similarity(image, image[::-1]) == pytest.approx(
        ref_similarity(image, np.ascontiguousarray(image[::-1])), abs=1e-6
    )


def test_resize_picks_the_same_source_pixels_as_opencv():
    rng = np.random.default_rng(6)
    for _ in range(60):
        src_h, src_w = (int(v) for v in rng.integers(1, 2500, 2))
        dst_h, dst_w = (int(v) for v in rng.integers(1, 1400, 2))
        image = rng.integers(1, 256, (src_h, src_w), dtype=np.uint8)
        resized = cv2.resize(image, (dst_w, dst_h), interpolation=cv2.INTER_NEAREST)
        # Identical samples <=> similarity exactly 1 against OpenCV's own resize.
        assert frame_similarity(image, resized, size=(dst_w, dst_h)) == 1.0, (
            (src_w, src_h), (dst_w, dst_h)
        )


def test_factored_laplacian_kernel_is_opencvs():
    # The kernel computes 2 * (S8 x S8) * D; OpenCV's ksize-11 Laplacian is
    # KS_y KD_x + KD_y KS_x with its Sobel kernels.
    s8, d = _quality.laplacian_factors()
    kd, ks = (k.ravel().astype(np.int64) for k in cv2.getDerivKernels(2, 0, 11))
    opencv = np.outer(ks, kd) + np.outer(kd, ks)
    s8_2d = np.outer(s8, s8)
    ours = np.zeros((11, 11), np.int64)
    for dy in range(3):
        for dx in range(3):
            ours[dy : dy + 9, dx : dx + 9] += 2 * d[dy][dx] * s8_2d
    np.testing.assert_array_equal(ours, opencv)


def test_gray_conversion_equals_opencvs_for_every_colour():
    codes = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=-1)
    rgb = rgb.astype(np.uint8).reshape(4096, 4096, 3)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    # Exactly 1.0 only if the sum of squared differences is 0 at every pixel.
    assert frame_similarity(rgb, gray, size=None) == 1.0


def test_gray_of_gray_input_is_a_view_and_of_rgb_a_new_image():
    g = np.random.default_rng(13).integers(0, 256, (5, 7), dtype=np.uint8)
    assert np.shares_memory(gray(g), g) and gray(g).shape == (5, 7)
    assert np.shares_memory(gray(g[:, :, None]), g)
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(gray(rgb), g)  # equal weights sum to one


def test_gray_does_not_depend_on_the_thread_count():
    rgb = np.random.default_rng(14).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gray(rgb, threads=1), gray(rgb, threads=2))
    np.testing.assert_array_equal(resize_nearest(rgb, (1280, 720), threads=1),
                                  resize_nearest(rgb, (1280, 720), threads=3))


def test_grayscale_layouts_give_the_same_scores():
    rgb = np.random.default_rng(8).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    gray = ref_gray(rgb)
    for layout in (gray, gray[:, :, None]):
        assert blur_score(layout) == blur_score(rgb)
        assert emptiness(layout) == emptiness(rgb)
        assert frame_similarity(layout, rgb) == 1.0


def test_non_contiguous_input_is_accepted():
    rgb = np.random.default_rng(9).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    view = rgb[10:250:2, 20:380:3]
    copy = np.ascontiguousarray(view)
    assert blur_score(view) == blur_score(copy)
    assert emptiness(view) == emptiness(copy)
    assert frame_similarity(view, rgb) == frame_similarity(copy, rgb)


def test_read_only_input_is_accepted():
    rgb = np.random.default_rng(10).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb.setflags(write=False)
    assert np.isfinite(blur_score(rgb)) and 0 <= emptiness(rgb) <= 1
    assert frame_similarity(rgb, rgb) == 1.0


# --- argument errors ------------------------------------------------------------

GOOD = np.zeros((8, 8, 3), np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8), np.uint16),
        np.zeros(8, np.uint8),
        np.zeros((2, 8, 8, 3), np.uint8),
        np.zeros((8, 8, 2), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((0, 8), np.uint8),
        np.zeros((8, 0, 3), np.uint8),
        [[0, 1], [2, 3]],
    ],
    ids=["float32", "uint16", "1d", "4d", "2ch", "4ch", "no_rows", "no_cols", "list"],
)
def test_bad_images_raise_value_error(image):
    with pytest.raises(ValueError):
        blur_score(image)
    with pytest.raises(ValueError):
        emptiness(image)
    with pytest.raises(ValueError):
        frame_similarity(image, GOOD)
    with pytest.raises(ValueError):
        frame_similarity(GOOD, image)
    with pytest.raises(ValueError):
        gray(image)
    with pytest.raises(ValueError):
        resize_nearest(image, (4, 4))


@pytest.mark.parametrize("resize", [(0, 720), (1280, -1), (1280,), "ab", 5])
def test_bad_sizes_raise_value_error(resize):
    with pytest.raises(ValueError, match="resize"):
        blur_score(GOOD, resize=resize)
    with pytest.raises(ValueError, match="size"):
        frame_similarity(GOOD, GOOD, size=resize)
    with pytest.raises(ValueError, match="size"):
        resize_nearest(GOOD, resize)


@pytest.mark.parametrize("crop", [-0.1, 0.5, 1.0, "a", float("nan")])
def test_bad_crop_raises_value_error(crop):
    with pytest.raises(ValueError, match="crop"):
        blur_score(GOOD, crop=crop)


def test_unresized_similarity_of_different_sizes_raises_value_error():
    with pytest.raises(ValueError, match="same height and width"):
        frame_similarity(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8), size=None)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_count_raises_value_error(bad):
    frame = np.zeros((8, 8), np.uint8)
    for kernel in (blur_score, emptiness, lambda f, threads: frame_similarity(f, f, threads=threads),
                   gray, lambda f, threads: resize_nearest(f, (4, 4), threads=threads)):
        with pytest.raises(ValueError, match="threads"):
            kernel(frame, threads=bad)


# --- threads and the GIL --------------------------------------------------------


def test_scores_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(11)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    frame[::7] = 0  # long weak edges that cross stripe boundaries
    other = np.roll(frame, 5, axis=0)
    results = []
    for n in (1, 2, 3):
        results.append((blur_score(frame, threads=n), emptiness(frame, threads=n),
                        frame_similarity(frame, other, threads=n)))
    assert results[0] == results[1] == results[2]


def test_concurrent_calls_from_a_thread_pool_are_correct():
    frames = list(synthetic_frames().values())
    expected = [(blur_score(f), emptiness(f), frame_similarity(f, frames[0])) for f in frames]

    def scores(frame):
        return blur_score(frame), emptiness(frame), frame_similarity(frame, frames[0])

    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(scores, frames * 2))
    assert got == expected * 2


@pytest.mark.parametrize(
    "kernel",
    [
        lambda f: blur_score(f, resize=None, crop=None),
        emptiness,
        lambda f: frame_similarity(f, f, size=None),
        gray,
        lambda f: resize_nearest(f, (1920, 1080)),
    ],
    ids=["blur_score", "emptiness", "frame_similarity", "gray", "resize_nearest"],
)
def test_kernels_release_the_gil(kernel):
    # With a huge switch interval CPython never takes the GIL away from a running
    # thread, so the main thread can only run while the worker waits, exits or
    # sits in a nogil section. It must get to run before the worker is done.
    frame = np.random.default_rng(12).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    started, stop = threading.Event(), threading.Event()
    calls = []

    def worker():
        started.set()
        while not stop.is_set() and len(calls) < 200:
            kernel(frame)
            calls.append(1)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        started.wait()
        stop.set()
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(calls) < 200


# --- properties on random small images -------------------------------------------


def images(max_side=24):
    shapes = st.tuples(
        st.integers(1, max_side), st.integers(1, max_side), st.sampled_from([0, 1, 3])
    ).map(lambda s: s[:2] if s[2] == 0 else s)
    return shapes.flatmap(
        lambda shape: st.builds(
            lambda seed, levels: _random_image(shape, seed, levels),
            st.integers(0, 2**32 - 1),
            st.sampled_from([256, 4, 2]),
        )
    )


def _random_image(shape, seed, levels):
    values = np.random.default_rng(seed).integers(0, levels, shape)
    return (values * (255 // max(levels - 1, 1))).astype(np.uint8)


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(images(), st.sampled_from([None, (1, 1), (7, 3), (32, 18)]),
       st.sampled_from([None, 0.0, 0.15, 0.49]))
def test_blur_score_is_finite_and_agrees_with_opencv(image, resize, crop):
    score = blur_score(image, resize=resize, crop=crop)
    assert np.isfinite(score) and score >= 0.0
    assert score == pytest.approx(ref_blur(image, resize, crop), rel=1e-9, abs=1e-9)


@PROPERTY
@given(images())
def test_emptiness_is_a_fraction_equal_to_opencvs(image):
    score = emptiness(image)
    assert 0.0 <= score <= 1.0
    assert score == ref_emptiness(image)


@PROPERTY
@given(images(), images(), st.sampled_from([None, (1, 1), (9, 5), (40, 30)]))
def test_frame_similarity_is_in_unit_range_and_agrees_with_opencv(a, b, size):
    if size is None and a.shape[:2] != b.shape[:2]:
        b = np.resize(b, a.shape[:2])
    score = frame_similarity(a, b, size=size)
    assert 0.0 <= score <= 1.0
    ref_size = size or (a.shape[1], a.shape[0])
    ga = cv2.resize(ref_gray(a), ref_size, interpolation=cv2.INTER_NEAREST)
    gb = cv2.resize(ref_gray(b), ref_size, interpolation=cv2.INTER_NEAREST)
    if ga.any() and gb.any():  # OpenCV's 0/0 for black frames is defined differently
        assert score == pytest.approx(ref_similarity(a, b, ref_size), abs=1e-4)


@PROPERTY
@given(images(), st.sampled_from([None, (1, 1), (9, 5), (40, 30)]))
def test_frame_similarity_of_a_frame_with_itself_is_one(a, size):
    assert frame_similarity(a, a, size=size) == 1.0


@PROPERTY
@given(images(), st.sampled_from([(1, 1), (7, 3), (24, 24), (50, 9)]))
def test_gray_and_resize_nearest_equal_opencvs(image, size):
    np.testing.assert_array_equal(gray(image), ref_gray(image))
    expected = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    if image.ndim == 3 and image.shape[2] == 1:
        expected = expected.reshape(size[1], size[0], 1)  # OpenCV drops a single channel
    np.testing.assert_array_equal(resize_nearest(image, size), expected)
