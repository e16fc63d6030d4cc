"""The looped live source of the soak test: one endless live stream made of a clip, with faults.

A synthetic 4 s clip (25 fps, a keyframe every second) is cut into 1 s MPEG-TS
segments and published over and over by :class:`LoopedLiveHLS`: a real HLS client
(PyAV's demuxer) must read timestamps that keep increasing across loops, one frame
apart at every loop boundary (no pts reset); the playlist slides with global segment
numbers; a segment marked truncated is served cut short and reads short; a stall holds
requests past a client's read timeout, then the server answers again. The real sample
clip (55 s) loops with its first frame one frame after its last.
"""

from __future__ import annotations

import io
import socket
import time
import urllib.error
import urllib.request

import av
import numpy as np
import pytest

from hls_server import HLSServer, LiveFaults, LoopedLiveHLS, cut_segments, shift_segment
from pipeline_fixtures import clip  # noqa: F401

FPS = 25
SECONDS = 4


@pytest.fixture(scope="module")
def looped_segments(tmp_path_factory):
    """A synthetic clip cut into 1 s segments: (folder, segments, frames per clip)."""
    folder = tmp_path_factory.mktemp("loop")
    clip = folder / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"g": str(FPS), "keyint_min": str(FPS), "sc_threshold": "0"}
        for i in range(FPS * SECONDS):
            img = np.full((64, 64, 3), (i * 7) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    segments = cut_segments(clip, folder / "hls", seconds=1.0)
    return folder / "hls", segments, FPS * SECONDS


def _at(live: LoopedLiveHLS, clock: float) -> None:
    """Put the live clock at ``clock`` seconds of published clip."""
    live.started = time.monotonic() - clock / live.speed


def _packets(data: bytes) -> list:
    with av.open(io.BytesIO(data), format="mpegts") as container:
        return [p.dts for p in container.demux(container.streams.video[0]) if p.dts is not None]


def test_timestamps_keep_increasing_across_loops(looped_segments):
    folder, segments, frames = looped_segments
    live = LoopedLiveHLS(folder, segments, speed=8.0, window=12, loops=3)
    assert live.loop_s == pytest.approx(SECONDS)
    live.start()
    with HLSServer(live) as server:
        with av.open(server.url, options={"live_start_index": "0"}, timeout=(5, 5)) as container:
            stream = container.streams.video[0]
            packets = [(p.dts, p.pts) for p in container.demux(stream) if p.dts is not None]
            time_base = float(stream.time_base)
    dts = [d for d, _ in packets]
    # Every frame of the three loops once, one frame duration apart, boundaries included.
    assert len(dts) == 3 * frames
    assert set(np.diff(dts).tolist()) == {live.loop_ticks // frames}
    assert dts[frames] - dts[0] == live.loop_ticks
    # The client sees the server's own timestamps: each loop's first frame maps to its loop.
    firsts = [packets[k * frames][1] * time_base for k in range(3)]
    assert [live.position(t) for t in firsts] == [(k, pytest.approx(0, abs=1e-6)) for k in range(3)]


def test_playlist_slides_with_global_segment_numbers(looped_segments):
    folder, segments, _ = looped_segments
    live = LoopedLiveHLS(folder, segments, speed=1.0, window=3)
    per_loop = len(segments)
    _at(live, 0.5)
    assert "#EXT-X-MEDIA-SEQUENCE:0" in live.playlist() and live.published() == 1
    _at(live, 2.5 * SECONDS + 0.5)  # in the third loop
    text = live.playlist()
    n = live.published()
    assert n == 2 * per_loop + 3
    assert f"#EXT-X-MEDIA-SEQUENCE:{n - 3}" in text
    assert [line for line in text.splitlines() if line.endswith(".ts")] == \
        [f"seg{g:06d}.ts" for g in range(n - 3, n)]
    assert "#EXT-X-ENDLIST" not in text
    assert live.segment_bytes(f"/seg{n:06d}.ts") is None  # not out yet
    assert live.segment_start(n) == pytest.approx(2 * SECONDS + segments[3].start)


def test_a_truncated_segment_is_served_and_read_short(looped_segments):
    folder, segments, _ = looped_segments
    faults = LiveFaults()
    live = LoopedLiveHLS(folder, segments, speed=1.0, window=6, faults=faults)
    _at(live, 2 * SECONDS)
    target = len(segments) + 1  # a shifted (second loop) segment
    faults.truncate(target, 0.5)
    with HLSServer(live) as server:
        base = server.url.rsplit("/", 1)[0]
        whole = urllib.request.urlopen(f"{base}/seg{target - 1:06d}.ts", timeout=5).read()
        cut = urllib.request.urlopen(f"{base}/seg{target:06d}.ts", timeout=5).read()
    full = live._body(target)
    assert len(cut) == len(full) // 2 and full.startswith(cut)
    assert faults.truncated_served == [target]
    assert len(_packets(cut)) < len(_packets(full)) == len(_packets(whole))


def test_a_stall_outlasts_the_read_timeout_then_the_server_answers(looped_segments):
    folder, segments, _ = looped_segments
    faults = LiveFaults()
    live = LoopedLiveHLS(folder, segments, speed=1.0, window=6, faults=faults)
    live.start()
    with HLSServer(live) as server:
        faults.stall(1.5)
        with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
            urllib.request.urlopen(server.url, timeout=0.5).read()
        time.sleep(1.2)
        assert not faults.stalled()
        assert "#EXTM3U" in urllib.request.urlopen(server.url, timeout=5).read().decode()
    assert faults.hung >= 1


def test_the_sample_clip_loops_one_frame_after_its_last(clip, tmp_path):  # noqa: F811
    folder = tmp_path / "hls"
    segments = cut_segments(clip, folder, seconds=2.0)
    live = LoopedLiveHLS(folder, segments)
    assert live.loop_s == pytest.approx(55.0, abs=0.05)
    last = _packets((folder / segments[-1].name).read_bytes())
    again = _packets(shift_segment((folder / segments[0].name).read_bytes(), live.loop_ticks))
    step = live.loop_ticks // round(live.loop_s * 25)  # the clip is 25 fps
    assert again[0] == max(last) + step
