"""Folders of photos: reading any image file, and finding the face of a close crop.

A user's folder of face photos (a labelled dataset, an export from another tool, a
gallery) differs from video keyframes in two ways this module handles:

- files of any format Pillow reads (JPEG, PNG, PGM/PPM including 16-bit, WebP, BMP,
  TIFF, GIF), with any name, in nested folders (:func:`photo_files`, :func:`read_photo`);
- tight face crops, where a detector trained on scenes finds nothing because the face
  fills the image: the photo padded onto a larger black canvas gives it the context it
  expects (:func:`pad_onto_canvas`), and a photo the user says is a crop is taken whole
  as the face when even that finds nothing (:func:`photo_face`).

>>> rgb = np.zeros((112, 92, 3), np.uint8)
>>> canvas, offset = pad_onto_canvas(rgb)
>>> canvas.shape, offset
((224, 184, 3), (46, 56))
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from streamface.engine import Detections
from streamface.kernels import ARCFACE_TEMPLATE

__all__ = ["FALLBACK_ATTR", "IDENTITY_ATTR", "PHOTO_ATTR", "PHOTO_SUFFIXES", "PhotoError", "PhotoFace", "photo_embedding",
           "pad_onto_canvas", "photo_face", "photo_files", "query_photo_face", "read_photo",
           "stored_photo_bytes", "whole_photo_face"]

#: File name endings read as photos (case-insensitive).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pnm", ".pbm", ".webp", ".bmp",
                  ".tif", ".tiff", ".gif")
#: Face attributes of a photo stream (see ``docs/photos.md``): the imported files (the
#: classes, in frame order; a face's value is its frame), whether a face is the whole
#: photo (1) or was detected (0), and the identity sub-folder (``labels_from_folders``).
PHOTO_ATTR, FALLBACK_ATTR, IDENTITY_ATTR = "photo", "fallback", "identity"
#: Smallest side a photo may have: below it no detector or aligner has anything to work on.
MIN_SIDE = 8
#: Score floor of the landmark search on a crop the detector did not find a face in:
#: low enough that a candidate exists on nearly every face crop, and the candidate is
#: only used for its landmarks (the photo is the face by the user's word).
LANDMARK_FLOOR = 0.05


class PhotoError(ValueError):
    """A file that is not a usable photo; the message names the file and why."""


def photo_files(root: str | os.PathLike, skip=()) -> list[Path]:
    """The photo files under ``root`` (nested folders included), in path order.

    Hidden files and folders (a leading ``.``) are skipped, and so are Zarr stores
    (``*.zarr``) and the folders in ``skip``.

    Parameters
    ----------
    root : path
    skip : iterable of path, default ()
        Folders not to look into (e.g. what an export wrote beside the photos).

    Raises
    ------
    FileNotFoundError
        ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of photos")
    skipped = {Path(p).resolve() for p in skip}
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(".zarr")
                         and (Path(folder) / d).resolve() not in skipped)
        found += [Path(folder) / f for f in files
                  if not f.startswith(".") and f.lower().endswith(PHOTO_SUFFIXES)]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """RGB uint8 of any Pillow mode; 16-bit and 32-bit gray are scaled, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Pillow's convert("RGB") clips these at 255 (a white photo); scale the
        # 16-bit range onto 8 bits instead.
        gray = np.asarray(im, dtype=np.uint32 if im.mode == "I" else None).astype(np.float64)
        top = 65535.0 if gray.max() <= 65535 else float(gray.max())
        gray = np.clip(np.rint(gray * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if im.mode == "F":
        gray = np.asarray(im, np.float64)
        span = float(gray.max() - gray.min()) or 1.0
        gray = np.rint((gray - gray.min()) * (255.0 / span)).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def read_photo(source: str | os.PathLike | bytes) -> np.ndarray:
    """A photo file (or its bytes) as RGB uint8, upright (EXIF orientation applied).

    Parameters
    ----------
    source : path or bytes

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)

    Raises
    ------
    PhotoError
        Empty, unreadable, truncated or smaller than :data:`MIN_SIDE` pixels a side;
        the message names the file.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        blob = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    except OSError as exc:
        raise PhotoError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if not blob:
        raise PhotoError(f"{name}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(blob)) as im:
            im.load()  # decodes now: a truncated file fails here, not later
            rgb = _to_rgb8(ImageOps.exif_transpose(im) or im)
    except UnidentifiedImageError:
        raise PhotoError(f"{name}: not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise PhotoError(f"{name}: refused, too many pixels ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types on damaged files
        raise PhotoError(f"{name}: broken image ({exc or type(exc).__name__})") from None
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise PhotoError(f"{name}: {w}x{h} pixels is too small for a face (at least "
                         f"{MIN_SIDE}x{MIN_SIDE})")
    return rgb


def stored_photo_bytes(path: str | os.PathLike, rgb: np.ndarray) -> bytes:
    """The bytes to keep for a photo: the file itself when it is an 8-bit JPEG or PNG
    that decodes to ``rgb`` as it is, else ``rgb`` as PNG (lossless), so the store
    keeps only what every reader of frames decodes the same way."""
    blob = Path(path).read_bytes()
    with Image.open(io.BytesIO(blob)) as im:
        keep = (im.format in ("JPEG", "PNG") and im.mode in ("RGB", "L", "P", "RGBA", "LA")
                and im.getexif().get(0x0112, 1) == 1)
    if keep:
        return blob
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def pad_onto_canvas(rgb: np.ndarray, scale: float = 2.0) -> tuple[np.ndarray, tuple[int, int]]:
    """``rgb`` centred on a black canvas ``scale`` times its size.

    A detector trained on scenes expects a face to have surroundings; on a tight crop
    it finds nothing until the crop is shown smaller within a larger image.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    scale : float, default 2.0
        Canvas side over photo side, >= 1.

    Returns
    -------
    canvas : ndarray of uint8, shape (round(scale * H), round(scale * W), 3)
    offset : (int, int)
        ``(x, y)`` of the photo's top-left corner on the canvas: subtract it from
        canvas coordinates to get photo coordinates.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale!r}")
    h, w = rgb.shape[:2]
    ch, cw = int(round(scale * h)), int(round(scale * w))
    y, x = (ch - h) // 2, (cw - w) // 2
    canvas = np.zeros((ch, cw) + rgb.shape[2:], rgb.dtype)
    canvas[y:y + h, x:x + w] = rgb
    return canvas, (x, y)


def _shifted(det: Detections, offset: tuple[int, int]) -> Detections:
    """Detections on a canvas moved to the photo's coordinates."""
    x, y = offset
    boxes = det.boxes.copy()
    boxes[:, :2] -= (x, y)
    return Detections(boxes, det.landmarks - np.array([x, y], np.float32), det.scores)


@contextmanager
def _score_floor(detector, floor: float):
    """The detector with its score threshold lowered to ``floor`` for the block."""
    kept = detector.conf_threshold
    detector.conf_threshold = min(float(floor), kept)
    try:
        yield detector
    finally:
        detector.conf_threshold = kept


@dataclass
class PhotoFace:
    """What :func:`photo_face` found for one photo.

    Parameters
    ----------
    detections : Detections
        In the photo's pixels (from the photo, or from the padded photo moved back).
    padded : bool
        Found on the padded photo (the photo alone gave nothing).
    fallback : bool
        Nothing found: ``detections`` holds one face, the whole photo (box ``0, 0, W, H``),
        its landmarks from the best low-score candidate on the padded photo, else the
        ArcFace template stretched over the photo; its score is that candidate's (0 for
        the template).
    """

    detections: Detections
    padded: bool = False
    fallback: bool = False


def whole_photo_face(detector, rgb: np.ndarray, scale: float = 2.0) -> Detections:
    """The whole photo as one face, with landmarks predicted on the padded photo.

    The best candidate above :data:`LANDMARK_FLOOR` whose nose lies within the photo
    gives the landmarks; without one, the ArcFace template stretched over the photo.
    """
    h, w = rgb.shape[:2]
    canvas, offset = pad_onto_canvas(rgb, scale)
    with _score_floor(detector, LANDMARK_FLOOR):
        [weak] = detector.detect([canvas])
    weak = _shifted(weak, offset)
    nose = weak.landmarks[:, 2] if len(weak) else np.zeros((0, 2), np.float32)
    inside = (nose[:, 0] >= 0) & (nose[:, 0] < w) & (nose[:, 1] >= 0) & (nose[:, 1] < h)
    box = np.array([[0, 0, w, h]], np.float32)
    if inside.any() and np.isfinite(weak.landmarks[inside]).all():
        best = np.flatnonzero(inside)[int(np.argmax(weak.scores[inside]))]
        return Detections(box, weak.landmarks[best:best + 1].astype(np.float32),
                          weak.scores[best:best + 1].astype(np.float32))
    template = (ARCFACE_TEMPLATE * np.array([w / 112.0, h / 112.0]))[None].astype(np.float32)
    return Detections(box, template, np.zeros(1, np.float32))


def photo_face(detector, rgb: np.ndarray, *, crops: bool = False, found: Detections | None = None,
               scale: float = 2.0) -> PhotoFace:
    """The faces of one photo: as it is, else padded, else (``crops``) the whole photo.

    Parameters
    ----------
    detector : a loaded detector (``streamface.engine.load_detector``)
    rgb : ndarray of uint8, shape (H, W, 3)
    crops : bool, default False
        The photo is a face crop: when nothing is found, take it whole as the face.
    found : Detections, optional
        The detector's result on ``rgb`` when the caller has it (a batched first pass);
        the photo is then not detected again.
    scale : float, default 2.0
        Canvas of the second pass, as for :func:`pad_onto_canvas`.

    Returns
    -------
    PhotoFace
    """
    if found is None:
        [found] = detector.detect([rgb])
    if len(found):
        return PhotoFace(found)
    canvas, offset = pad_onto_canvas(rgb, scale)
    [padded] = detector.detect([canvas])
    if len(padded):
        return PhotoFace(_shifted(padded, offset), padded=True)
    if not crops:
        return PhotoFace(padded, padded=True)
    return PhotoFace(whole_photo_face(detector, rgb, scale), padded=True, fallback=True)


def query_photo_face(detector, rgb: np.ndarray, *, crop: bool = False) -> PhotoFace:
    """The one face of a query photo: its most confident, or the whole photo.

    Parameters
    ----------
    detector : a loaded detector
    rgb : ndarray of uint8, shape (H, W, 3)
    crop : bool, default False
        The photo is a face crop: take it whole (landmarks as :func:`whole_photo_face`
        predicts them) without looking for a face first.

    Returns
    -------
    PhotoFace
        With exactly one face in ``detections``; ``fallback`` when it is the whole photo
        (``crop``, or nothing found as it is nor padded).
    """
    if crop:
        return PhotoFace(whole_photo_face(detector, rgb), fallback=True)
    found = photo_face(detector, rgb, crops=True)
    best = int(np.argmax(found.detections.scores))
    return PhotoFace(found.detections.select(slice(best, best + 1)), found.padded, found.fallback)


def photo_embedding(path, model: str, *, crop: bool = False) -> tuple[np.ndarray, bool]:
    """The embedding of a query photo's one face (:func:`query_photo_face` with YuNet).

    Parameters
    ----------
    path : path
        The photo.
    model : str
        The embedding model (a stream's ``embedding_model``: queries are embedded as it was).
    crop : bool, default False
        The photo is a face crop: embed it whole.

    Returns
    -------
    (ndarray of float32, shape (D,), bool)
        The embedding, and whether the whole photo was taken as the face.
    """
    from streamface.engine import load_detector, load_recognizer

    rgb = read_photo(path)
    face = query_photo_face(load_detector(), rgb, crop=crop)
    return load_recognizer(model).embed(rgb, face.detections.landmarks[:1])[0], face.fallback
