"""Facts about a local video file that its decoding alone does not give.

* :func:`content_fingerprint` names the file's content, whatever its name, folder or
  modification time: a stream records the fingerprint of every file captured into it
  with the capture time given to that file's pts 0, so that the same content run again
  (after a ``touch``, a copy, a move) gets the same capture times, and resumes instead
  of being stored a second time under new face ids.
* :func:`video_data_end` finds where a file's video data really ends, so that a file
  cut short (an interrupted download or copy, whose index still announces the whole
  length) is told apart from one read to its end.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import av

__all__ = ["SAMPLE_BYTES", "content_fingerprint", "declared_duration", "video_data_end"]

#: Bytes hashed at the start, the middle and the end of a file.
SAMPLE_BYTES = 1 << 20


def content_fingerprint(path: str | os.PathLike) -> str:
    """A content fingerprint of a file: ``"sha256:<hex>"`` of its size and sampled bytes.

    Hashes the size and :data:`SAMPLE_BYTES` at the start, the middle and the end (the
    whole file when it is smaller than three samples), so a video of gigabytes is
    fingerprinted in milliseconds. A container's start and end hold its headers and
    sample index (durations, offsets, sizes of every frame), which differ between any
    two videos of the same size; a file cut short has another size.

    Parameters
    ----------
    path : path
        A local file.

    Returns
    -------
    str
        ``"sha256:"`` and 64 hex digits; the same for a copy, a renamed or a touched file.
    """
    size = os.path.getsize(path)
    digest = hashlib.sha256(f"size={size};".encode())
    with open(path, "rb") as f:
        if size <= 3 * SAMPLE_BYTES:
            digest.update(f.read())
        else:
            for offset in (0, (size - SAMPLE_BYTES) // 2, size - SAMPLE_BYTES):
                f.seek(offset)
                digest.update(f.read(SAMPLE_BYTES))
    return f"sha256:{digest.hexdigest()}"


def declared_duration(path: str | os.PathLike) -> float | None:
    """Seconds of video the file's header announces (its video stream's, else the
    container's duration); None when it announces none."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6 if container.duration is not None else None


def video_data_end(path: str | os.PathLike, from_seconds: float = 0.0) -> float:
    """Where the video data of a file ends: the largest ``pts + duration`` (seconds) of
    the video packets that can be read, demuxing (not decoding) from the keyframe at or
    before ``from_seconds``.

    Reading from the last frame decoded costs at most a group of pictures: a complete
    file gives about its declared duration, a file cut short the time its data stops.

    Parameters
    ----------
    path : path
        A local video file.
    from_seconds : float, default 0
        Start demuxing here (the last pts the decoder handed out).

    Returns
    -------
    float
        Seconds; ``from_seconds`` when no packet can be read past it.
    """
    end = float(from_seconds)
    with av.open(os.fspath(Path(path))) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        if from_seconds > 0 and base:
            try:
                container.seek(int(from_seconds / base), stream=stream, backward=True)
            except av.error.FFmpegError:
                container.seek(0, stream=stream)
        try:
            for packet in container.demux(stream):
                if packet.pts is None or not base:
                    continue  # the flushing packet at the end
                end = max(end, float((packet.pts + (packet.duration or 0)) * base))
        except av.error.FFmpegError:
            pass  # the data stops in the middle of a packet: what came before is the end
    return end
