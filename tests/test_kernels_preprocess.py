"""Specification of ``preprocess_batch``: frames -> letterboxed, normalised NCHW batch.

References: ``cv2.resize`` (INTER_LINEAR) + border + normalisation for RGB
frames, and PyAV's ``to_ndarray(format="rgb24")`` before that same pipeline
for decoded YUV frames.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamface.kernels import Letterbox, preprocess_batch

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# RetinaFace's normalisation (MODELS.md): BGR minus (104, 117, 127).
RETINA = {"mean": (104.0, 117.0, 127.0), "scale": (1.0, 1.0, 1.0), "channel_order": "bgr"}


def reference(rgb, width, height, *, mean=(0, 0, 0), scale=(1, 1, 1), channel_order="rgb",
              pad_value=0.0, center=False):
    """OpenCV pipeline: resize keeping aspect, normalise, pad, HWC -> CHW."""
    h, w = rgb.shape[:2]
    ratio = min(width / w, height / h)
    out_w = min(width, max(1, int(w * ratio + 0.5)))
    out_h = min(height, max(1, int(h * ratio + 0.5)))
    resized = cv2.resize(rgb, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    if channel_order == "bgr":
        resized = resized[:, :, ::-1]
    values = (resized.astype(np.float32) - np.float32(mean)) * np.float32(scale)
    left, top = ((width - out_w) // 2, (height - out_h) // 2) if center else (0, 0)
    padded = cv2.copyMakeBorder(values, top, height - out_h - top, left, width - out_w - left,
                                cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return padded.transpose(2, 0, 1)


def grey_levels(a, b, scale=1.0) -> np.ndarray:
    """Absolute difference in 0..255 units."""
    return np.abs(a - b) / scale


@pytest.fixture(scope="module")
def decoded(skynews):
    """Three decoded yuv420p frames of the sample clip (first, 40th, 80th)."""
    with av.open(str(skynews / "skynews_sample.mp4")) as container:
        frames = [f for i, f in zip(range(81), container.decode(video=0)) if i % 40 == 0]
    assert [f.format.name for f in frames] == ["yuv420p"] * 3
    return frames


def decode_again(skynews):
    with av.open(str(skynews / "skynews_sample.mp4")) as container:
        return [next(container.decode(video=0))]


# --------------------------------------------------------------------------- RGB frames

@pytest.mark.parametrize("channel_order", ["rgb", "bgr"])
@pytest.mark.parametrize("center", [False, True], ids=["top-left", "centred"])
def test_rgb_frames_match_opencv(skynews_frames, channel_order, center):
    frames = [array for _, array in skynews_frames[:4]]
    options = {"mean": (104.0, 117.0, 127.0), "scale": (1 / 58.0, 1 / 57.0, 1 / 59.0),
               "channel_order": channel_order, "center": center, "pad_value": -1.5}
    out = np.empty((4, 3, 640, 640), np.float32)
    preprocess_batch(frames, out, **options)
    for i, frame in enumerate(frames):
        diff = grey_levels(out[i], reference(frame, 640, 640, **options), scale=1 / 59.0)
        # Identical arithmetic: anything above float rounding would be a bug.
        assert diff.max() <= 1e-3


def test_mixed_sizes_in_one_batch_match_opencv():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8)
              for shape in [(1080, 1920, 3), (333, 517, 3), (7, 3, 3), (1, 1, 3), (900, 100, 3)]]
    out = np.empty((5, 3, 256, 320), np.float32)
    preprocess_batch(frames, out, **RETINA, center=True)
    for i, frame in enumerate(frames):
        assert grey_levels(out[i], reference(frame, 320, 256, **RETINA, center=True)).max() <= 1e-3


def test_items_beyond_the_frames_are_left_untouched():
    out = np.full((3, 3, 32, 32), 7.0, np.float32)
    preprocess_batch([np.zeros((10, 20, 3), np.uint8)], out)
    assert (out[1:] == 7.0).all()


def test_padding_takes_pad_value_per_channel():
    out = np.empty((1, 3, 40, 40), np.float32)
    preprocess_batch([np.zeros((10, 20, 3), np.uint8)], out, pad_value=(1.0, 2.0, 3.0))
    assert (out[0, :, :20] == 0).all()
    assert [float(v) for v in out[0, :, 30, 5]] == [1.0, 2.0, 3.0]


def test_one_and_two_threads_give_the_same_batch(skynews_frames):
    frames = [array for _, array in skynews_frames[:2]]
    one, two = (np.empty((2, 3, 320, 320), np.float32) for _ in range(2))
    preprocess_batch(frames, one, threads=1)
    preprocess_batch(frames, two, threads=2)
    np.testing.assert_array_equal(one, two)


# --------------------------------------------------------------------------- YUV frames

@pytest.mark.parametrize("size", [(640, 640), (1920, 1080), (500, 700)])
def test_yuv_frames_match_pyav_rgb24_then_opencv(decoded, size):
    out = np.empty((3, 3, size[1], size[0]), np.float32)
    preprocess_batch(decoded, out, **RETINA)
    for i, frame in enumerate(decoded):
        expected = reference(frame.to_ndarray(format="rgb24"), *size, **RETINA)
        diff = grey_levels(out[i], expected)
        assert diff.max() <= 2 and diff.mean() <= 0.05


@pytest.mark.parametrize("tag", ["yuvj420p", "color_range", "bt709"])
def test_yuv_range_and_matrix_follow_the_frame_like_pyav(skynews, tag):
    (frame,) = decode_again(skynews)
    if tag == "yuvj420p":
        frame = frame.reformat(format="yuvj420p")
    elif tag == "color_range":
        frame.color_range = 2  # AVCOL_RANGE_JPEG: full range
    else:
        frame.colorspace = 1  # AVCOL_SPC_BT709
    out = np.empty((1, 3, 640, 640), np.float32)
    preprocess_batch([frame], out)
    diff = grey_levels(out[0], reference(frame.to_ndarray(format="rgb24"), 640, 640))
    assert diff.max() <= 2 and diff.mean() <= 0.05


def test_yuv_plane_tuple_with_row_padding_reads_like_the_frame(decoded):
    frame = decoded[0]
    planes = []
    for plane, (rows, cols) in zip(frame.planes, [(1080, 1920), (540, 960), (540, 960)]):
        padded = np.zeros((rows, cols + 64), np.uint8)  # stride wider than the row
        padded[:, :cols] = np.frombuffer(plane, np.uint8)[: rows * plane.line_size].reshape(
            rows, plane.line_size)[:, :cols]
        planes.append(padded[:, :cols])
    from_frame, from_tuple = (np.empty((1, 3, 320, 320), np.float32) for _ in range(2))
    preprocess_batch([frame], from_frame)
    preprocess_batch([tuple(planes)], from_tuple)
    np.testing.assert_array_equal(from_frame, from_tuple)


def test_yuv_range_option_overrides_the_frame(skynews):
    (frame,) = decode_again(skynews)
    out = np.empty((1, 3, 640, 640), np.float32)
    preprocess_batch([frame], out, yuv_range="full")
    frame.color_range = 2  # what PyAV needs to be told to convert it as full range
    diff = grey_levels(out[0], reference(frame.to_ndarray(format="rgb24"), 640, 640))
    assert diff.max() <= 2 and diff.mean() <= 0.05


# --------------------------------------------------------------------------- Letterbox

def test_letterbox_records_scale_and_offset():
    out = np.empty((2, 3, 640, 640), np.float32)
    frames = [np.zeros((1080, 1920, 3), np.uint8), np.zeros((640, 320, 3), np.uint8)]
    box = preprocess_batch(frames, out, center=True)
    assert isinstance(box, Letterbox) and len(box) == 2
    assert box.scale.dtype == np.float32 and box.offset.dtype == np.float32
    np.testing.assert_allclose(box.scale, [1 / 3, 1.0])
    np.testing.assert_array_equal(box.offset, [[0, 140], [160, 0]])
    assert box.input_size == (640, 640)


def test_letterbox_maps_points_and_boxes_back_to_frame_pixels():
    out = np.empty((1, 3, 300, 300), np.float32)
    box = preprocess_batch([np.zeros((333, 517, 3), np.uint8)], out, center=True)
    frame_points = np.array([[0.0, 0.0], [517.0, 333.0], [100.5, 20.25]])
    factor = box.resized[0] / box.frame_size[0]
    net_points = frame_points * factor + box.offset[0]
    np.testing.assert_allclose(box.points_to_frame(net_points, 0), frame_points, atol=1e-3)
    # The single-scale formula is good to half a network pixel.
    approx = (net_points - box.offset[0]) / box.scale[0]
    assert np.abs(approx - frame_points).max() <= 0.5 / box.scale[0]
    net_box = np.array([[*net_points[2], 30.0, 40.0]])
    np.testing.assert_allclose(box.boxes_to_frame(net_box, 0),
                               [[100.5, 20.25, 30 / factor[0], 40 / factor[1]]], rtol=1e-5)


def test_no_frames_give_an_empty_letterbox():
    out = np.full((2, 3, 8, 8), 5.0, np.float32)
    box = preprocess_batch([], out)
    assert len(box) == 0 and box.offset.shape == (0, 2) and (out == 5.0).all()


# --------------------------------------------------------------------------- errors

FRAME = np.zeros((10, 10, 3), np.uint8)


@pytest.mark.parametrize("frames, out, kwargs, match", [
    ([FRAME], np.empty((1, 3, 8, 8), np.float64), {}, "out must be a float32"),
    ([FRAME], np.empty((1, 4, 8, 8), np.float32), {}, r"out must have shape \(B, 3, H, W\)"),
    ([FRAME], np.empty((1, 3, 8, 16), np.float32)[..., ::2], {}, "C-contiguous"),
    ([FRAME] * 3, np.empty((2, 3, 8, 8), np.float32), {}, "out holds 2 frames, got 3"),
    ([np.zeros((0, 10, 3), np.uint8)], np.empty((1, 3, 8, 8), np.float32), {},
     "frames.0. is empty"),
    ([np.zeros((10, 10), np.uint8)], np.empty((1, 3, 8, 8), np.float32), {}, r"RGB \(h, w, 3\)"),
    ([FRAME.astype(np.float32)], np.empty((1, 3, 8, 8), np.float32), {}, "dtype uint8"),
    ([FRAME], np.empty((1, 3, 8, 8), np.float32), {"channel_order": "rbg"}, "channel_order"),
    ([FRAME], np.empty((1, 3, 8, 8), np.float32), {"yuv_range": "tv"}, "yuv_range"),
    ([FRAME], np.empty((1, 3, 8, 8), np.float32), {"mean": (1, 2)}, "mean"),
    ([(np.zeros((4, 4), np.uint8),) * 3], np.empty((1, 3, 8, 8), np.float32), {},
     r"u and v must have shape \(2, 2\)"),
    (["frame.png"], np.empty((1, 3, 8, 8), np.float32), {}, "must be an RGB uint8 array"),
    (FRAME, np.empty((1, 3, 8, 8), np.float32), {}, "wrap a single frame in a list"),
])
def test_bad_arguments_raise_value_error_naming_them(frames, out, kwargs, match):
    with pytest.raises(ValueError, match=match):
        preprocess_batch(frames, out, **kwargs)


def test_frames_in_other_pixel_formats_are_refused():
    frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
    with pytest.raises(ValueError, match="yuv420p or yuvj420p frames only"):
        preprocess_batch([frame], np.empty((1, 3, 8, 8), np.float32))


# --------------------------------------------------------------------------- properties

@PROPERTY
@given(frame_sizes=st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50)), min_size=1,
                            max_size=3),
       net=st.tuples(st.integers(1, 64), st.integers(1, 64)), center=st.booleans(),
       yuv=st.booleans(), bgr=st.booleans(), seed=st.integers(0, 2**16))
def test_any_frame_sizes_fill_the_batch_with_finite_values(frame_sizes, net, center, yuv, bgr,
                                                           seed):
    rng = np.random.default_rng(seed)
    frames = []
    for h, w in frame_sizes:
        if yuv:  # odd sizes included: chroma planes round up
            chroma = ((h + 1) // 2, (w + 1) // 2)
            shapes = [(h, w), chroma, chroma]
            frames.append(tuple(rng.integers(0, 256, s, dtype=np.uint8) for s in shapes))
        else:
            frames.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    out = np.full((len(frames) + 1, 3, net[1], net[0]), np.nan, np.float32)
    box = preprocess_batch(frames, out, center=center, channel_order="bgr" if bgr else "rgb",
                           pad_value=-1.0)
    assert np.isfinite(out[:-1]).all() and np.isnan(out[-1]).all()
    assert ((out[:-1] >= -1.0) & (out[:-1] <= 255.0)).all()
    for i in range(len(frames)):
        (x, y), (w, h) = box.offset[i].astype(int), box.resized[i]
        assert 0 <= x and x + w <= net[0] and 0 <= y and y + h <= net[1]
        assert (out[i, :, y:y + h, x:x + w] >= 0).all()
