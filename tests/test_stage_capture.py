"""StreamCapture on the real sample clip: the kept keyframes are its 24 scenes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline_fixtures import captured, clip, scene_starts  # noqa: F401

from streamface import kernels
from streamface.engine import SourceError
from streamface.store import FaceStore
from streamface.ingest.capture import StreamCapture, store_path


def _stream(out):
    return FaceStore.open(store_path(out)).stream("skynews")


def test_kept_keyframes_are_the_24_scenes(captured, skynews):  # noqa: F811
    out, summary = captured
    pts = _stream(out).read_frames().pts.tolist()
    assert pts == scene_starts(skynews)
    assert summary.decoded == 31 and summary.kept == 24


def test_no_empty_or_blurred_second_is_kept(captured, skynews):  # noqa: F811
    out, summary = captured
    pts = set(_stream(out).read_frames().pts.tolist())
    assert not pts & set(scene_starts(skynews, "empty"))
    assert not pts & set(scene_starts(skynews, "blurred"))
    assert summary.empty == 4


def test_seed_selection_keeps_blurred_transitions_over_their_sharp_scene(clip, skynews, tmp_path):  # noqa: F811
    # Measured: blurred transition keyframes score 2e9-6e9 against the threshold of 50
    # (sharp frames 1e11-4e12), so the seed's rules keep them and drop the sharp
    # keyframe that follows as a near-duplicate (similarity 0.92-0.97).
    summary = StreamCapture("skynews", str(clip), tmp_path, prefer_sharper=False).call()
    frames = _stream(tmp_path).read_frames()
    kept = set(frames.pts.tolist())
    assert summary.kept == 24
    assert kept & set(scene_starts(skynews, "blurred")) == {10.0, 22.0, 46.0}
    assert (frames.blur > 50).all() and frames.blur.min() < 1e10


def test_kept_frames_are_stored_as_jpeg_with_their_scores(captured):  # noqa: F811
    out, _ = captured
    stream = _stream(out)
    frames = stream.read_frames(0, 2, images=True)
    image = np.asarray(Image.open(io.BytesIO(frames.images[1])).convert("RGB"))
    assert frames.images[1][:2] == b"\xff\xd8" and image.shape == (1080, 1920, 3)
    assert frames.width.tolist() == [1920, 1920] and frames.height.tolist() == [1080, 1080]
    assert frames.blur[1] == pytest.approx(kernels.blur_score(image), rel=0.2)
    assert np.isnan(frames.similarity[0]) and frames.similarity[1] <= 0.9
    assert (frames.emptiness <= 0.95).all()


def test_a_second_call_continues_after_the_last_stored_frame(captured, clip):  # noqa: F811
    out, _ = captured
    before = _stream(out).num_frames
    summary = StreamCapture("skynews", str(clip), out).call()
    assert summary.kept == 0 and _stream(out).num_frames == before


def test_max_frames_bounds_a_capture(clip, tmp_path):  # noqa: F811
    summary = StreamCapture("clip", str(clip), tmp_path, max_frames=5).call()
    assert summary.decoded == 5 and _stream_named(tmp_path, "clip").num_frames == 5


def _stream_named(out, name):
    return FaceStore.open(store_path(out)).stream(name)


def test_bad_source_leaves_no_store(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        StreamCapture("x", str(tmp_path / "missing.mp4"), tmp_path / "out").call()
    assert not store_path(tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_unsafe_stream_names_are_refused(tmp_path, clip, name):  # noqa: F811
    with pytest.raises(ValueError):
        StreamCapture(name, str(clip), tmp_path).call()


def test_stop_ends_the_capture_after_the_current_frame_and_commits(clip, tmp_path):  # noqa: F811
    capture = StreamCapture("clip", str(clip), tmp_path, batch_size=50)

    def on_frame(stats, counts):
        if stats.yielded == 6:
            capture.stop()  # what the SIGINT/SIGTERM handler of `streamface run` calls

    summary = capture.call(on_frame=on_frame)
    assert summary.decoded == 6
    assert _stream_named(tmp_path, "clip").read_frames().pts.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
