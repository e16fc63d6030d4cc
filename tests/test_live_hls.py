"""Live HLS for real: a sliding-window playlist on 127.0.0.1, the server stopped and restarted.

The sample clip is remuxed (no re-encoding: it has a keyframe at every scene, 1-3 s
apart) into MPEG-TS segments of about 2 s; a ``ThreadingHTTPServer`` publishes them 4x
faster than real time as a live playlist (``#EXT-X-MEDIA-SEQUENCE`` advancing, no
``#EXT-X-ENDLIST`` until the clip is out). :class:`StreamCapture` reads the ``.m3u8``
URL as a media URL (straight to PyAV's HLS demuxer) and, as a page URL without the
suffix, through yt-dlp (its generic extractor finds the live HLS manifest) and PyAV.
Mid-stream the server is shut down and started again on the same port after a pause:
capture must reconnect, pick up the segments published meanwhile, stop by itself at
the end of the stream, and store every scene of the clip exactly once.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hls_server import HLSServer, LiveHLS, cut_segments, first_video_pts
from pipeline_fixtures import clip, scene_starts  # noqa: F401

from streamface.engine.sources import resolve_source
from streamface.store import FaceStore
from streamface.ingest.capture import StreamCapture, store_path

SPEED = 4.0        # live clock vs wall clock
WINDOW = 12        # segments in the playlist (~24 s of clip, 6 s of wall time)
CUT_AT = 12        # stop the server once this segment has been fetched (~26 s into the clip)
PAUSE = 1.5        # seconds the server stays down
BOUND_S = 60.0     # capture's own wall-time bound, should the end of the stream be missed


@pytest.fixture(scope="session")
def hls_segments(clip, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("hls")
    segments = cut_segments(clip, folder, seconds=2.0)
    return folder, segments, first_video_pts(folder / segments[0].name)


@pytest.mark.slow  # ~15 s each: the 55 s clip served at 4x real time
@pytest.mark.parametrize("via", ["m3u8", "yt-dlp"])
def test_live_hls_capture_survives_a_server_restart(via, hls_segments, skynews, tmp_path):
    if via == "yt-dlp":
        pytest.importorskip("yt_dlp")
    folder, segments, offset = hls_segments
    assert len(segments) >= 20 and sum(s.duration for s in segments) == pytest.approx(55, abs=0.5)
    live = LiveHLS(folder, segments, speed=SPEED, window=WINDOW)
    server = HLSServer(live)
    outage: dict[str, float] = {}

    def cut() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(i >= CUT_AT for i in live.served_segments):
                break
            time.sleep(0.02)
        else:
            return
        outage["stopped_clock"] = live.clock()
        outage["stopped_requests"] = len(live.requests)
        server.stop()
        time.sleep(PAUSE)
        server.start()
        outage["restarted_clock"] = live.clock()

    live.start()
    server.start()
    port = server.port
    cutter = threading.Thread(target=cut, name="hls-outage", daemon=True)
    cutter.start()
    started = time.monotonic()
    try:
        url = server.url if via == "m3u8" else server.url.removesuffix(".m3u8")
        if via == "yt-dlp":  # the page URL really goes through yt-dlp, and comes back live
            source = resolve_source(url, socket_timeout=5)
            assert source.kind == "page" and source.live is True
        capture = StreamCapture("live", url, tmp_path, duration=BOUND_S)
        summary = capture.call()
    finally:
        cutter.join(timeout=10)
        server.stop()
    elapsed = time.monotonic() - started

    # The outage happened mid-stream, on the same port, and capture came back after it.
    assert server.port == port
    assert "restarted_clock" in outage, "the server was never stopped"
    assert outage["stopped_clock"] < live.total - 10
    after = [path for _, path, status in live.requests[outage["stopped_requests"]:] if status == 200]
    assert any(p.startswith("/live") for p in after) and any(p.endswith(".ts") for p in after)
    assert summary.reconnects >= 2  # the outage (tries while down included) and the ENDLIST
    # It ended by itself at #EXT-X-ENDLIST, not at the wall-time bound.
    assert elapsed < BOUND_S - 10 and live.clock() >= live.total

    frames = FaceStore.open(store_path(tmp_path)).stream("live").read_frames()
    time_us, pts = frames.time_us, frames.pts - offset
    # No frame stored twice: capture times and pts strictly increasing (so unique).
    assert (np.diff(time_us) > 0).all() and (np.diff(pts) > 0).all()
    assert len(np.unique(np.round(pts, 3))) == len(pts)
    # Every keyframe of the clip handed out once (31), and the kept ones are its 24 scenes.
    assert summary.decoded == 31
    assert np.round(pts, 2).tolist() == scene_starts(skynews)
    assert summary.kept == 24
