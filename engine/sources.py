"""Where frames come from: local files, media URLs, streaming URLs and page URLs.

:func:`resolve_source` turns what the user typed into a :class:`Source` that PyAV can
open. Local paths are checked here (missing, empty, not a file) so the error names
the real problem; page URLs (YouTube and the like) are resolved through yt-dlp when
it is installed, without cookies and with a socket timeout; nothing is ever passed
to a shell.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from streamface.engine.errors import EngineError

__all__ = ["Source", "SourceError", "UnsupportedSourceError", "resolve_source"]

#: Schemes PyAV (FFmpeg) opens directly.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtp", "srt", "udp")
#: URL path suffixes that are media, not web pages: opened with PyAV without yt-dlp.
MEDIA_SUFFIXES = (".m3u8", ".m3u", ".mpd", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".ts",
                  ".flv", ".avi", ".mpg", ".mpeg")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class SourceError(EngineError):
    """A source cannot be opened or read: missing or empty file, not a video, dead host..."""


class UnsupportedSourceError(SourceError):
    """A URL scheme Streamface does not read (``file://``, ``ftp://``, ...)."""


@dataclass(frozen=True)
class Source:
    """A resolved source.

    Parameters
    ----------
    location : str
        What PyAV opens: a local path or a media URL.
    kind : {"file", "url", "stream", "page"}
        ``file`` local path; ``url`` http(s) media; ``stream`` rtsp/rtmp/...;
        ``page`` a web page resolved through yt-dlp.
    original : str
        What the user gave (for messages and the store's provenance).
    live : bool or None
        Whether the source is live (known for pages from yt-dlp; otherwise decided
        when it is opened: a URL without a duration is live).
    headers : dict
        HTTP headers yt-dlp says the media URL needs.
    """

    location: str
    kind: str
    original: str
    live: bool | None = None
    headers: dict = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.kind == "file"


def _check_file(path: Path, original: str) -> None:
    if not path.exists():
        raise SourceError(f"{original}: no such file")
    if not path.is_file():
        raise SourceError(f"{original}: not a file")
    if path.stat().st_size == 0:
        raise SourceError(f"{original}: file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{original}: file is not readable")


def resolve_source(source: str | os.PathLike, *, max_height: int = 1080,
                   socket_timeout: float = 15.0) -> Source:
    """Turn a path or URL into a :class:`Source`.

    Parameters
    ----------
    source : str or PathLike
        A local path, an http(s) media or HLS URL, an rtsp/rtmp URL, or a page URL
        (YouTube...) that yt-dlp resolves.
    max_height : int, default 1080
        Page URLs: the best video format up to this height.
    socket_timeout : float, default 15
        Page URLs: yt-dlp's socket timeout in seconds.

    Raises
    ------
    SourceError
        A local file is missing, empty or not a file; a page has no video; yt-dlp is
        needed but not installed.
    UnsupportedSourceError
        The URL scheme is not one we read.
    """
    text = os.fspath(source)
    if not isinstance(text, str) or not text.strip():
        raise SourceError("empty source: give a video file path or a URL")
    match = _SCHEME.match(text)
    if match is None:
        path = Path(text).expanduser()
        _check_file(path, text)
        return Source(str(path), "file", text, live=False)
    scheme = match.group(1).lower()
    if scheme in STREAM_SCHEMES:
        return Source(text, "stream", text)
    if scheme not in ("http", "https"):
        hint = " (pass a local path instead)" if scheme == "file" else ""
        raise UnsupportedSourceError(f"{text}: unsupported URL scheme {scheme!r}{hint}; "
                                     f"use a local path, http(s), {', '.join(STREAM_SCHEMES)}")
    suffix = Path(urlsplit(text).path).suffix.lower()
    if suffix in MEDIA_SUFFIXES:
        return Source(text, "url", text)
    return _resolve_page(text, max_height=max_height, socket_timeout=socket_timeout)


def _resolve_page(url: str, *, max_height: int, socket_timeout: float) -> Source:
    """A page URL's media URL through yt-dlp (library call: no shell, no cookies, no exec)."""
    try:
        import yt_dlp
    except ImportError:
        raise SourceError(f"{url}: looks like a web page, and resolving pages needs yt-dlp "
                          f"(pip install yt-dlp); or pass the media URL itself") from None
    options = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "skip_download": True,
        "socket_timeout": socket_timeout,
        "format": f"bestvideo[height<={max_height}]/best[height<={max_height}]/best",
        # No cookies from browsers or files, no post-processors, no caching on disk.
        "cookiefile": None,
        "cachedir": False,
        "postprocessors": [],
        "logger": _SilentLogger(),
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=False)
    except Exception as exc:  # yt-dlp raises DownloadError/ExtractorError with long text
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = re.sub(r"^ERROR:\s*", "", reason)
        raise SourceError(f"{url}: no video found ({reason})") from None
    if info is None:
        raise SourceError(f"{url}: no video found")
    if info.get("_type") == "playlist":
        entries = [e for e in (info.get("entries") or []) if e]
        if not entries:
            raise SourceError(f"{url}: no video found (empty playlist)")
        info = entries[0]
    formats = info.get("requested_formats") or [info]
    video = next((f for f in formats if f.get("vcodec") not in (None, "none") and f.get("url")), None)
    if video is None:
        video = next((f for f in formats if f.get("url")), None)
    if video is None:
        raise SourceError(f"{url}: no video found (no playable format)")
    return Source(video["url"], "page", url, live=bool(info.get("is_live")),
                  headers=dict(video.get("http_headers") or info.get("http_headers") or {}))


class _SilentLogger:
    """yt-dlp logger that keeps its output off the terminal (errors reach us as exceptions)."""

    def debug(self, msg):
        pass

    def info(self, msg):
        pass

    def warning(self, msg):
        pass

    def error(self, msg):
        pass
