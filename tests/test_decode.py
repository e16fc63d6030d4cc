"""Decoding and sources: keyframes, sampling, bounds, capture clock, reconnects, bad input."""

from __future__ import annotations

import pytest

from pipeline_fixtures import clip  # noqa: F401

from streamface.engine import SourceError, UnsupportedSourceError, VideoDecoder, resolve_source


@pytest.fixture(scope="module")
def keyframes(clip):  # noqa: F811
    with VideoDecoder(clip) as decoder:
        return [(f.pts, f.time_us, f.key, f.width, f.height) for f in decoder], decoder


def test_keyframes_only_are_the_clips_keyframes_every_one_to_two_seconds(keyframes):
    frames, decoder = keyframes
    assert len(frames) == 31
    assert all(key for _, _, key, _, _ in frames)
    assert [w for *_, w, h in frames][:1] == [1920] and frames[0][4] == 1080
    assert frames[0][0] == 0.0 and frames[-1][0] == 53.0
    assert decoder.stats.decoded == 31 and decoder.live is False


def test_file_capture_clock_is_start_plus_pts_and_reproducible(keyframes, clip):  # noqa: F811
    frames, decoder = keyframes
    times = [t for _, t, *_ in frames]
    assert times == sorted(set(times))
    assert all(t - decoder.start_time_us == round(p * 1e6) for p, t, *_ in frames)
    with VideoDecoder(clip, max_frames=3) as again:
        assert [f.time_us for f in again] == times[:3]


def test_sample_fps_hands_out_frames_at_that_rate(clip):  # noqa: F811
    with VideoDecoder(clip, sample_fps=2, max_frames=6) as decoder:
        pts = [f.pts for f in decoder]
    assert len(pts) == 6
    assert all(0.45 <= b - a <= 0.55 for a, b in zip(pts, pts[1:]))


def test_duration_and_max_frames_bound_the_frames(clip):  # noqa: F811
    with VideoDecoder(clip, duration=10) as decoder:
        assert [f.pts for f in decoder] == [0.0, 2.0, 4.0, 6.0, 8.0]
    with VideoDecoder(clip, max_frames=4) as decoder:
        assert len(list(decoder)) == 4


def test_after_time_skips_frames_already_stored(keyframes, clip):  # noqa: F811
    frames, _ = keyframes
    with VideoDecoder(clip, after_time_us=frames[9][1]) as decoder:
        assert [f.time_us for f in decoder] == [t for _, t, *_ in frames[10:]]


def test_reconnect_never_hands_out_a_frame_twice(clip):  # noqa: F811
    decoder = VideoDecoder(clip, reconnect=True, max_reconnects=2, backoff=(0.01, 0.02))
    seen = []
    with pytest.raises(SourceError, match="gave up after 2 reconnects"):
        for f in decoder:
            seen.append(f.pts)
    assert len(seen) == 31 and len(set(seen)) == 31
    assert decoder.stats.reconnects == 2 and decoder.stats.skipped_repeats == 62


def test_rgb_is_converted_once(clip):  # noqa: F811
    with VideoDecoder(clip, max_frames=1) as decoder:
        frame = next(iter(decoder))
        assert frame.rgb() is frame.rgb() and frame.rgb().shape == (1080, 1920, 3)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "file is empty"),
    (b"hello, not a video\n", "not a video"),
])
def test_bad_local_files_give_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as info:
        VideoDecoder(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_mp4_is_not_a_video(clip, tmp_path):  # noqa: F811
    path = tmp_path / "truncated.mp4"
    path.write_bytes(clip.read_bytes()[:300_000])
    with pytest.raises(SourceError, match="not a video"):
        VideoDecoder(path)


@pytest.mark.parametrize("url", ["ftp://example.com/x.mp4", "file:///etc/passwd", "gopher://x/y"])
def test_unsupported_schemes_are_refused(url):
    with pytest.raises(UnsupportedSourceError, match="unsupported URL scheme"):
        resolve_source(url)


def test_dead_host_fails_fast_with_one_line():
    with pytest.raises(SourceError, match="cannot open") as info:
        VideoDecoder("http://127.0.0.1:9/live.m3u8", open_timeout=3, read_timeout=3)
    assert "\n" not in str(info.value)


def test_media_and_stream_urls_go_to_pyav_directly():
    assert resolve_source("https://example.com/live/index.m3u8").kind == "url"
    assert resolve_source("rtsp://camera.local/stream").kind == "stream"
    assert resolve_source("rtmp://server/app/key").kind == "stream"


@pytest.fixture(scope="module")
def local_site(tmp_path_factory):
    """A web server on 127.0.0.1 with a page without video and a page with a <video> tag."""
    import functools
    import http.server
    import threading

    root = tmp_path_factory.mktemp("site")
    (root / "text.html").write_text("<html><body><p>no video here</p></body></html>")
    (root / "video.html").write_text('<html><body><video src="clip.mp4"></video></body></html>')
    (root / "clip.mp4").write_bytes(b"\0" * 16)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)


def test_page_without_video_is_one_clear_line(local_site):
    pytest.importorskip("yt_dlp")
    with pytest.raises(SourceError, match="no video found") as info:
        resolve_source(f"{local_site}/text.html", socket_timeout=5)
    assert "\n" not in str(info.value)


def test_page_urls_resolve_to_their_media_through_yt_dlp(local_site):
    pytest.importorskip("yt_dlp")
    source = resolve_source(f"{local_site}/video.html", socket_timeout=5)
    assert source.kind == "page" and source.location == f"{local_site}/clip.mp4"
    assert source.original == f"{local_site}/video.html" and source.live is False
