"""A live HLS server for tests: MPEG-TS segments cut from a clip, a sliding-window playlist.

:func:`cut_segments` remuxes a clip (no re-encoding) into MPEG-TS segments with PyAV's
``hls`` muxer; :class:`LiveHLS` publishes them on a clock running ``speed`` times
faster than real time, as a live playlist (``#EXT-X-MEDIA-SEQUENCE`` advancing, no
``#EXT-X-ENDLIST`` until the last segment is out); :class:`HLSServer` serves it from a
``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, and can be stopped and
restarted on the same port while the live clock keeps running.

For long runs (``benchmarks/soak.py``), :class:`LoopedLiveHLS` publishes the clip over
and over as one endless live stream, remuxing each loop with its timestamps shifted so
they keep increasing, and :class:`LiveFaults` makes the server stall or serve a
segment cut short.
"""

from __future__ import annotations

import io
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

    def _header(self, first: int) -> list[str]:
        target = max(1, math.ceil(max(s.duration for s in self.segments) / self.speed))
        return ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
                f"#EXT-X-MEDIA-SEQUENCE:{first}"]

    def playlist(self) -> str:
        n = self.published()
        first = max(0, n - self.window)
        lines = self._header(first)
        for seg in self.segments[first:n]:
            lines += [f"#EXTINF:{seg.duration / self.speed:.6f},", seg.name]
        if n == len(self.segments) and self.clock() >= self.total:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def segment_bytes(self, path: str) -> bytes | None:
        """The body of segment ``path`` (``/segNNN.ts``), or None when it is not published."""
        match = re.fullmatch(r"/(seg\d+\.ts)", path)
        names = {s.name: i for i, s in enumerate(self.segments)}
        if match is None or match.group(1) not in names or names[match.group(1)] >= self.published():
            return None
        return (self.folder / match.group(1)).read_bytes()

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
            faults = getattr(live, "faults", None)
            if faults is not None and faults.hang():
                # A stalled server: the request hung until the stall ended, and the
                # connection is then dropped without an answer.
                live.log(path, 0)
                self.close_connection = True
                return
            if path in ("/live.m3u8", "/live"):
                body, ctype = live.playlist().encode(), "application/vnd.apple.mpegurl"
            else:
                body, ctype = live.segment_bytes(path), "video/mp2t"
                if body is None:
                    live.log(path, 404)
                    self.send_error(404)
                    return
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


# ---- a looped live source with faults, for long runs (benchmarks/soak.py) -----------------------


class LiveFaults:
    """Faults a live server injects into its answers: stalls and truncated segments.

    A stall makes every request that arrives before its end hang until then; the
    connection is then dropped without an answer (a client whose read timeout is
    shorter sees a timeout). A truncated segment is served cut short, to ``fraction``
    of its bytes (with a matching ``Content-Length``, as a cache holding a short file
    would), on every fetch.
    """

    def __init__(self) -> None:
        self._stall_until = 0.0
        self._truncated: dict[int, float] = {}
        self._lock = threading.Lock()
        self.hung = 0                            # requests that hung in a stall
        self.truncated_served: list[int] = []    # global segment numbers served cut short

    def stall(self, seconds: float) -> None:
        """Hang every request from now for ``seconds`` (monotonic clock)."""
        self._stall_until = max(self._stall_until, time.monotonic() + seconds)

    def stalled(self) -> bool:
        return time.monotonic() < self._stall_until

    def hang(self) -> bool:
        """Hold the calling request until the stall is over; True when it was held."""
        if not self.stalled():
            return False
        with self._lock:
            self.hung += 1
        while (left := self._stall_until - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))
        return True

    def truncate(self, segment: int, fraction: float = 0.5) -> None:
        """Serve global segment ``segment`` cut to ``fraction`` (0 < fraction < 1) of its bytes."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
        self._truncated[int(segment)] = float(fraction)

    def cut(self, segment: int, body: bytes) -> bytes:
        fraction = self._truncated.get(segment)
        if fraction is None:
            return body
        with self._lock:
            self.truncated_served.append(segment)
        return body[:int(len(body) * fraction)]


def clip_ticks(folder, segments: list[Segment]) -> tuple[int, object]:
    """Length of the segmented clip in its video time base, and that time base.

    From the first packet's dts to the last packet's dts plus its duration: shifting a
    copy of the clip by this many ticks puts its first frame one frame after the last.
    """
    first = end = None
    for seg in segments:
        with av.open(str(Path(folder) / seg.name)) as container:
            stream = container.streams.video[0]
            time_base = stream.time_base
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue
                stop = packet.dts + (packet.duration or 0)
                first = packet.dts if first is None else min(first, packet.dts)
                end = stop if end is None else max(end, stop)
    if first is None:
        raise ValueError(f"{folder}: no video packet in the segments")
    return int(end - first), time_base


def shift_segment(data: bytes, ticks: int) -> bytes:
    """An MPEG-TS segment with every video packet's pts and dts moved ``ticks`` later (a remux)."""
    out_buf = io.BytesIO()
    with av.open(io.BytesIO(data), format="mpegts") as src:
        stream = src.streams.video[0]
        out = av.open(out_buf, "w", format="mpegts")
        try:
            ostream = out.add_stream_from_template(stream)
            for packet in src.demux(stream):
                if packet.dts is None:
                    continue
                packet.dts += ticks
                if packet.pts is not None:
                    packet.pts += ticks
                packet.stream = ostream
                out.mux(packet)
        finally:
            out.close()
    return out_buf.getvalue()


class LoopedLiveHLS(LiveHLS):
    """The clip published over and over as one live stream whose timestamps never go back.

    Global segment ``n`` is segment ``n % S`` of loop ``n // S`` (``S`` segments per
    loop), served as ``seg<n>.ts``: loop 0 as cut, later loops remuxed on first request
    (no re-encoding) with every pts/dts shifted by ``loop x`` :attr:`loop_ticks`, so the
    stream reads like a real live channel (no pts reset, no discontinuity). Publication
    follows :class:`LiveHLS`: a segment is out once the live clock reaches its start.

    Parameters
    ----------
    folder, segments
        As :func:`cut_segments` made them.
    speed : float, default 1.0
        Live clock vs wall clock.
    window : int, default 6
        Segments listed by the playlist.
    loops : int or None, default None
        Loops to publish before ``#EXT-X-ENDLIST`` (None: endless).
    faults : LiveFaults, optional
        Stalls and truncations to inject (a fresh, idle one by default).
    """

    def __init__(self, folder, segments: list[Segment], *, speed: float = 1.0, window: int = 6,
                 loops: int | None = None, faults: LiveFaults | None = None) -> None:
        super().__init__(folder, segments, speed=speed, window=window)
        if loops is not None and loops < 1:
            raise ValueError(f"loops must be >= 1 or None, got {loops!r}")
        self.loops = loops
        self.faults = faults if faults is not None else LiveFaults()
        self.loop_ticks, self.time_base = clip_ticks(folder, segments)
        self.loop_s = float(self.loop_ticks * self.time_base)
        self.first_pts = first_video_pts(self.folder / segments[0].name)
        self.total = math.inf if loops is None else loops * self.loop_s
        self.started_wall: float | None = None
        self._cache: dict[int, bytes] = {}
        self._cache_lock = threading.Lock()

    def start(self) -> None:
        super().start()
        self.started_wall = time.time()

    def segment_start(self, n: int) -> float:
        """Live-clock second at which global segment ``n`` is published."""
        loop, i = divmod(n, len(self.segments))
        return loop * self.loop_s + self.segments[i].start

    def published(self) -> int:
        loop, within = divmod(self.clock(), self.loop_s)
        n = int(loop) * len(self.segments) + sum(1 for s in self.segments if s.start <= within)
        if self.loops is not None:
            n = min(n, self.loops * len(self.segments))
        return max(1, n)

    def playlist(self) -> str:
        n = self.published()
        first = max(0, n - self.window)
        lines = self._header(first)
        for g in range(first, n):
            lines += [f"#EXTINF:{self.segments[g % len(self.segments)].duration / self.speed:.6f},",
                      f"seg{g:06d}.ts"]
        if self.loops is not None and n == self.loops * len(self.segments) and self.clock() >= self.total:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def segment_bytes(self, path: str) -> bytes | None:
        match = re.fullmatch(r"/seg(\d+)\.ts", path)
        if match is None or int(match.group(1)) >= self.published():
            return None
        n = int(match.group(1))
        return self.faults.cut(n, self._body(n))

    def _body(self, n: int) -> bytes:
        loop, i = divmod(n, len(self.segments))
        with self._cache_lock:
            if n in self._cache:
                return self._cache[n]
        data = (self.folder / self.segments[i].name).read_bytes()
        if loop:
            data = shift_segment(data, loop * self.loop_ticks)
        with self._cache_lock:
            # A client re-reads at most a playlist window after a reconnect; keep about two.
            while len(self._cache) >= 2 * self.window + 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[n] = data
        return data

    def position(self, pts: float) -> tuple[int, float]:
        """Loop number and seconds into the clip of a frame with presentation time ``pts``."""
        offset = pts - self.first_pts
        loop = int(math.floor((offset + 1e-3) / self.loop_s))
        return loop, offset - loop * self.loop_s

    def segment_of(self, seconds: float) -> int:
        """Index (within a loop) of the segment holding ``seconds`` into the clip."""
        i = sum(1 for s in self.segments if s.start <= seconds + 1e-6) - 1
        return min(max(i, 0), len(self.segments) - 1)
