"""A live HLS server for tests: MPEG-TS segments cut from a clip, a sliding-window playlist.

:func:`cut_segments` remuxes a clip (no re-encoding) into MPEG-TS segments with PyAV's
``hls`` muxer; :class:`LiveHLS` publishes them on a clock running ``speed`` times
faster than real time, as a live playlist (``#EXT-X-MEDIA-SEQUENCE`` advancing, no
``#EXT-X-ENDLIST`` until the last segment is out); :class:`HLSServer` serves it from a
``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, and can be stopped and
restarted on the same port while the live clock keeps running.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av


@dataclass(frozen=True)
class Segment:
    name: str
    start: float     # seconds from the start of the clip
    duration: float  # seconds


def cut_segments(clip, folder, seconds: float = 2.0) -> list[Segment]:
    """Remux ``clip``'s video into MPEG-TS segments of about ``seconds`` each, cut at keyframes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        out = av.open(str(folder / "vod.m3u8"), "w", format="hls",
                      options={"hls_time": str(seconds), "hls_list_size": "0",
                               "hls_segment_filename": str(folder / "seg%03d.ts")})
        try:
            ostream = out.add_stream_from_template(stream)
            for packet in src.demux(stream):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                packet.stream = ostream
                out.mux(packet)
        finally:
            out.close()
    text = (folder / "vod.m3u8").read_text()
    segments, start = [], 0.0
    for duration, name in re.findall(r"#EXTINF:([0-9.]+),\s*\n(\S+)", text):
        segments.append(Segment(name, start, float(duration)))
        start += float(duration)
    return segments


def first_video_pts(path) -> float:
    """Presentation time (s) of the first video packet of a media file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None:
                return float(packet.pts * packet.time_base)
    raise ValueError(f"{path}: no video packet")


class LiveHLS:
    """The live state: which segments are out at a given moment, and the playlist then.

    A segment is published once the live clock (``speed`` x wall time since :meth:`start`)
    reaches its start; the playlist lists the last ``window`` published segments and gets
    ``#EXT-X-ENDLIST`` once the clock has passed the end of the clip. ``#EXTINF`` values
    are divided by ``speed`` so that a player reloads the playlist at the served pace.
    """

    def __init__(self, folder, segments: list[Segment], *, speed: float = 1.0, window: int = 6):
        self.folder = Path(folder)
        self.segments = segments
        self.speed = speed
        self.window = window
        self.total = sum(s.duration for s in segments)
        self.started: float | None = None
        self.requests: list[tuple[float, str, int]] = []  # (elapsed, path, status)
        self.served_segments: list[int] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self.started = time.monotonic()

    def clock(self) -> float:
        """Seconds of the clip published so far."""
        return 0.0 if self.started is None else (time.monotonic() - self.started) * self.speed

    def published(self) -> int:
        now = self.clock()
        return max(1, sum(1 for s in self.segments if s.start <= now))

    def playlist(self) -> str:
        n = self.published()
        first = max(0, n - self.window)
        target = max(1, math.ceil(max(s.duration for s in self.segments) / self.speed))
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
                 f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for seg in self.segments[first:n]:
            lines += [f"#EXTINF:{seg.duration / self.speed:.6f},", seg.name]
        if n == len(self.segments) and self.clock() >= self.total:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def log(self, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((time.monotonic() - (self.started or 0.0), path, status))
            match = re.fullmatch(r"/seg(\d+)\.ts", path)
            if match and status == 200:
                self.served_segments.append(int(match.group(1)))


def _handler(live: LiveHLS):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path in ("/live.m3u8", "/live"):
                body, ctype = live.playlist().encode(), "application/vnd.apple.mpegurl"
            else:
                match = re.fullmatch(r"/(seg\d+\.ts)", path)
                names = {s.name: i for i, s in enumerate(live.segments)}
                if (match is None or match.group(1) not in names
                        or names[match.group(1)] >= live.published()):
                    live.log(path, 404)
                    self.send_error(404)
                    return
                body, ctype = (live.folder / match.group(1)).read_bytes(), "video/mp2t"
            live.log(path, 200)
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):  # keep the test output quiet
            pass

    return Handler


class HLSServer:
    """Serve a :class:`LiveHLS` on 127.0.0.1 (port 0: any free one, kept across restarts)."""

    def __init__(self, live: LiveHLS, port: int = 0):
        self.live = live
        self.port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.m3u8"

    def start(self) -> None:
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self.live))
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hls-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> HLSServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
