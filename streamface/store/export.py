"""Export a stream in the seed's folder layout.

::

    <outdir>/faces/<face id>.png            face crops at their true size (e.g. 252x252)
    <outdir>/aligned_faces/<face id>.png    aligned crops (aligned_size square)
    <outdir>/frames/<frame name>.<png|jpg>  kept frame images, when the stream kept them
    <outdir>/metadata/detections.csv        name,confidence,box,left_eye,right_eye,nose,
                                            mouth_left,mouth_right,image,face,crop
    <outdir>/metadata/matches.csv           Face 1,Face 2

The CSVs reproduce the seed's text exactly: confidences as the shortest float32
repr (``0.9998043``), boxes as ``"[936, 388, 92, 126]"``, landmarks as
``"(962, 437)"`` and shapes as ``"(1080, 1920, 3)"`` (coordinates rounded to the
nearest pixel). PNGs are written with Pillow's default compression, which is
what the seed used (same bytes for the same pixels). Every file is written to a
temporary name in its folder and renamed into place, so a reader of the folder
never sees half a file.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from streamface.atomic_write import atomic_write
from streamface.store.names import frame_name
from streamface.store.schema import NO_MATCH
from streamface.store.stream import Stream

DETECTION_COLUMNS = ("name", "confidence", "box", "left_eye", "right_eye", "nose",
                     "mouth_left", "mouth_right", "image", "face", "crop")
MATCH_COLUMNS = ("Face 1", "Face 2")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Parameters
    ----------
    outdir : Path
    faces : int
        Faces written (one PNG in ``faces/`` and one in ``aligned_faces/`` each).
    frames : int
        Frame images written to ``frames/``.
    matches : int
        Rows of ``metadata/matches.csv``.
    """

    outdir: Path
    faces: int
    frames: int
    matches: int


def png_bytes(image: np.ndarray, compress_level: int = 6) -> bytes:
    """Encode an RGB uint8 ``(h, w, 3)`` image as PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _point(xy) -> str:
    return f"({xy[0]}, {xy[1]})"


def detection_rows(names, scores, boxes, landmarks, frame_hw, crop_hw, aligned_size: int) -> list[list[str]]:
    """Seed-formatted rows of ``detections.csv``.

    Parameters
    ----------
    names : sequence of str, length n
        Face file names (``<face id>.png``).
    scores : ndarray of float32, shape (n,)
    boxes : ndarray of float32, shape (n, 4)
        ``x, y, w, h``.
    landmarks : ndarray of float32, shape (n, 5, 2)
    frame_hw : ndarray of int, shape (n, 2)
        Height and width of each face's frame.
    crop_hw : ndarray of int, shape (n, 2)
        True height and width of each face crop.
    aligned_size : int

    Returns
    -------
    list of list of str
    """
    box_i = np.rint(np.asarray(boxes, np.float64)).astype(np.int64).tolist()
    lm_i = np.rint(np.asarray(landmarks, np.float64)).astype(np.int64).tolist()
    rows = []
    for name, score, box, lm, (fh, fw), (ch, cw) in zip(
            names, np.asarray(scores, np.float32), box_i, lm_i,
            np.asarray(frame_hw).tolist(), np.asarray(crop_hw).tolist()):
        rows.append([name, str(score), f"[{box[0]}, {box[1]}, {box[2]}, {box[3]}]",
                     *(_point(p) for p in lm),
                     f"({fh}, {fw}, 3)", f"({ch}, {cw}, 3)", f"({aligned_size}, {aligned_size}, 3)"])
    return rows


def match_pairs(match: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive faces sharing a match id.

    Parameters
    ----------
    match : ndarray of int64, shape (n,)
        Match (track) id per face row; :data:`~streamface.store.schema.NO_MATCH` for none.

    Returns
    -------
    list of (int, int)
        ``(earlier row, later row)`` for each face and the previous face of its
        track, ordered by the later row.
    """
    match = np.asarray(match, np.int64)
    rows = np.flatnonzero(match != NO_MATCH)
    order = rows[np.argsort(match[rows], kind="stable")]
    same = match[order[1:]] == match[order[:-1]]
    pairs = np.stack([order[:-1][same], order[1:][same]], axis=1)
    return [tuple(p) for p in pairs[np.argsort(pairs[:, 1], kind="stable")].tolist()]


def _csv_text(header, rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _image_suffix(blob: bytes) -> str:
    if blob.startswith(b"\x89PNG"):
        return ".png"
    if blob.startswith(b"\xff\xd8"):
        return ".jpg"
    return ".bin"


def export_seed_layout(stream: Stream, outdir: str | os.PathLike, *, progress: bool | None = None,
                       batch_rows: int = 256, compress_level: int = 6) -> ExportResult:
    """Write a stream's committed faces in the seed's layout (see the module docstring).

    Parameters
    ----------
    stream : Stream
        From :meth:`FaceStore.stream`; its snapshot of committed rows is exported.
    outdir : path
        Created if missing; files of the same names are replaced.
    progress : bool, optional
        Show a tqdm bar on stderr; default: only when stderr is a terminal.
    batch_rows : int, default 256
        Faces read from the store at a time.
    compress_level : int, default 6
        PNG compression (Pillow's default, the seed's); 1 is ~3x faster, ~10% bigger.

    Returns
    -------
    ExportResult
    """
    out = Path(outdir)
    dirs = {d: out / d for d in ("faces", "aligned_faces", "metadata")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    n = stream.num_faces
    ids = stream.face_ids()
    names = [f"{i}.png" for i in ids.tolist()]
    rows: list[list[str]] = []
    frames_written = 0
    with tqdm(total=n, desc=f"export {stream.name}", unit="face", disable=not progress) as bar:
        if stream.has_images:
            frames_written = _export_frames(stream, out / "frames")
        for start in range(0, n, batch_rows):
            stop = min(n, start + batch_rows)
            faces = stream.read_faces(start, stop, columns=("frame", "score", "box", "landmarks", "crop", "aligned"))
            lo, hi = int(faces.frame.min()), int(faces.frame.max()) + 1
            frames = stream.read_frames(lo, hi)
            frame_hw = np.stack([frames.height, frames.width], axis=1)[faces.frame - lo]
            rows += detection_rows(names[start:stop], faces.score, faces.box, faces.landmarks,
                                   frame_hw, faces.crop_size, stream.config.aligned_size)
            for name, crop, aligned in zip(names[start:stop], faces.crop_images(), faces.aligned):
                atomic_write(dirs["faces"] / name, png_bytes(crop, compress_level), fsync=False)
                atomic_write(dirs["aligned_faces"] / name, png_bytes(aligned, compress_level), fsync=False)
            bar.update(stop - start)
    pairs = match_pairs(stream.read_faces(columns=("match",)).match) if n else []
    atomic_write(dirs["metadata"] / "detections.csv", _csv_text(DETECTION_COLUMNS, rows))
    atomic_write(dirs["metadata"] / "matches.csv",
                 _csv_text(MATCH_COLUMNS, [(names[a], names[b]) for a, b in pairs]))
    return ExportResult(out, n, frames_written, len(pairs))


def _export_frames(stream: Stream, folder: Path, batch_rows: int = 64) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for start in range(0, stream.num_frames, batch_rows):
        stop = min(stream.num_frames, start + batch_rows)
        times = stream.read_frames(start, stop).time_us.tolist()
        for t, blob in zip(times, stream.read_frame_images(start, stop)):
            if blob:
                atomic_write(folder / (frame_name(stream.name, t) + _image_suffix(blob)), blob, fsync=False)
                written += 1
    return written
