"""Kept frames' JPEG encoding (``stream_capture.encode_frame``) on the real 1080p frames.

The encoder moved from Pillow to simplejpeg (libjpeg-turbo from the array): the bytes
differ, the image must not. Each frame is checked against its source and against
Pillow's JPEG at the same quality, which is what stores written before hold.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from streamface.ingest import capture as stream_capture
from streamface.ingest.capture import encode_frame


def decoded(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        assert im.format in ("JPEG", "PNG")
        return np.asarray(im.convert("RGB")).astype(np.int16)


def pillow_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_simplejpeg_is_the_encoder():
    # A dependency: without it encode_frame falls back to Pillow, silently slower.
    assert stream_capture.simplejpeg is not None


@pytest.mark.parametrize("quality", [95, 80])
def test_jpeg_matches_pillow_quality_on_real_frames(skynews_frames, quality):
    for name, rgb in skynews_frames[::4]:
        ours, pillows = encode_frame(rgb, "jpeg", quality), pillow_jpeg(rgb, quality)
        with Image.open(io.BytesIO(ours)) as im:
            assert (im.format, im.size, im.mode) == ("JPEG", (rgb.shape[1], rgb.shape[0]), "RGB"), name
        ours_px, pillow_px, source = decoded(ours), decoded(pillows), rgb.astype(np.int16)
        err_ours = np.abs(ours_px - source).mean()
        err_pillow = np.abs(pillow_px - source).mean()
        # The same codec and quality tables; only the colour conversion differs.
        assert err_ours < 1.15 * err_pillow + 0.05, (name, err_ours, err_pillow)
        assert np.abs(ours_px - pillow_px).mean() < 1.0, name
        assert 0.9 < len(ours) / len(pillows) < 1.1, name


def test_jpeg_quality_orders_size_and_error(skynews_frames):
    rgb = skynews_frames[0][1]
    high, low = encode_frame(rgb, "jpeg", 95), encode_frame(rgb, "jpeg", 60)
    assert len(low) < len(high)
    source = rgb.astype(np.int16)
    assert np.abs(decoded(low) - source).mean() > np.abs(decoded(high) - source).mean()


def test_non_contiguous_frame_encodes_like_its_copy(skynews_frames):
    rgb = skynews_frames[1][1]
    view = rgb[::2, ::2]
    assert not view.flags.c_contiguous
    assert encode_frame(view, "jpeg", 95) == encode_frame(np.ascontiguousarray(view), "jpeg", 95)


def test_png_stays_lossless(skynews_frames):
    rgb = skynews_frames[2][1]
    assert np.array_equal(decoded(encode_frame(rgb, "png")), rgb)
