"""Labelled sets for calibration: embedded faces with identity labels, and the readers of their folders.

Labelled sets (:func:`load_labelled_set` tells them apart):

- an identity folder ``<root>/<identity>/<images>``: each photo padded by half its size
  (the detector sees context), its most confident face aligned on its 5 landmarks and
  embedded; photos with no face are skipped and listed;
- a seed-layout folder (``frames/``, ``metadata/detections.csv``,
  ``metadata/annotations_manual.json``, e.g. ``data/skynews``): the seed's faces
  embedded from the frames with the seed's own landmarks, labels from the annotations;
- a face store stream (``<store>::<stream>``) with its embeddings and an
  ``annotations_manual.json`` (seed format);
- a folder of frames with named boxes (``frames/<frame>.jpg|png`` and ``labels.csv``
  with ``frame,x,y,w,h,identity``, e.g. ``tv/fotb``): the detector runs on each frame,
  each named box takes the detection of highest IoU (>= 0.5) and is embedded from it;
  ``unknown`` boxes are not scored. Faces of one frame are kept apart (cannot-link).

Faces a person labelled noise (``-1``) count as one label, as the seed's annotation
evaluation scores them (``evaluate_labels(noise="label")``).

The folder readers here (:func:`read_rgb`, :func:`padded_photo`, :func:`identity_photos`,
:func:`read_seed_detections`, :func:`read_named_boxes`, :func:`frame_file`) also give the
detector calibration (:mod:`streamface.evaluate.calibration.detector`) its true faces.
"""

from __future__ import annotations

import ast
import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from streamface.identify.annotations import read_annotations
from streamface.identify.features import labelled_embeddings, load_features, split_store_path

__all__ = ["BOX_IOU", "IMAGE_SUFFIXES", "LabelledSet", "default_annotations", "frame_file", "frames_folder_set",
           "identity_folder_set", "identity_photos", "is_frames_folder", "is_seed_folder", "load_labelled_set",
           "padded_photo", "read_named_boxes", "read_rgb", "read_seed_detections", "seed_folder_set", "store_set"]

#: Named boxes match a detection at this IoU or more (frames with ``labels.csv``).
BOX_IOU = 0.5

#: Photo files of an identity folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp")

_LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class LabelledSet:
    """Embedded faces with identity labels.

    Parameters
    ----------
    name : str
    embeddings : ndarray of float32, shape (n, D)
    labels : ndarray of int64, shape (n,)
    skipped : list of str
        Inputs left out (a photo with no face, an annotated face without features).
    frames : ndarray of int64, shape (n,), optional
        The frame of each face where the set knows it (faces of one frame are two people);
        None: every face its own frame (photos).
    """

    name: str
    embeddings: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)
    frames: np.ndarray | None = None

    @property
    def identities(self) -> int:
        return int(np.unique(self.labels).size)


def read_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as RGB uint8, shape (H, W, 3)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def padded_photo(path: Path) -> np.ndarray:
    """The photo at ``path`` (RGB) centred on a black canvas twice its size, so a detector sees context."""
    from streamface.ingest.photos import pad_onto_canvas  # lazy: ingest.photos loads the engine (~0.7 s)

    return pad_onto_canvas(read_rgb(path))[0]


def identity_photos(root) -> list[Path]:
    """The photos of ``root/<identity>/<photos>``, identities and photos in name order."""
    root = Path(root)
    return [path for person in sorted(p for p in root.iterdir() if p.is_dir())
            for path in sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)]


def identity_folder_set(root, detector, recognizer, *, name: str | None = None) -> LabelledSet:
    """Faces of ``root/<identity>/<photos>``, one per photo (the most confident), labelled by folder.

    Raises
    ------
    ValueError
        ``root`` has fewer than two identity folders with a face.
    """
    root = Path(root)
    people: dict[str, int] = {}
    embeddings, labels, skipped = [], [], []
    for path in identity_photos(root):
        k = people.setdefault(path.parent.name, len(people))
        pad = padded_photo(path)
        [found] = detector.detect([pad])
        if not len(found.scores):
            skipped.append(f"no face in {path}")
            continue
        j = int(np.argmax(found.scores))
        embeddings.append(recognizer.embed(pad, found.landmarks[j:j + 1])[0])
        labels.append(k)
    if len(set(labels)) < 2:
        raise ValueError(f"{root}: calibration needs at least two identities with a face "
                         f"(<identity>/<images> folders), found {len(set(labels))}")
    return LabelledSet(name or root.name, np.asarray(embeddings, np.float32), np.asarray(labels, np.int64),
                       skipped)


def read_seed_detections(path) -> list[dict]:
    """Rows of a seed ``detections.csv``: ``face`` (stem), ``frame`` (stem), ``box`` (x, y, w, h) and
    ``landmarks`` (5, 2) when the file has them.

    Raises
    ------
    ValueError
        A row without ``name`` or ``box``, or a value that is not a number list (names file and row).
    """
    rows = []
    with open(path, newline="") as fp:
        for i, row in enumerate(csv.DictReader(fp), start=2):
            try:
                face = row["name"].removesuffix(".png")
                out = {"face": face, "frame": face.rsplit("_face_", 1)[0],
                       "box": np.array(ast.literal_eval(row["box"]), np.float32).reshape(4)}
                if all(row.get(k) for k in _LANDMARKS):
                    out["landmarks"] = np.array([ast.literal_eval(row[k]) for k in _LANDMARKS], np.float32)
            except (KeyError, ValueError, SyntaxError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}, line {i}: expected seed detections columns name, box "
                                 f"'[x, y, w, h]' (and landmarks '(x, y)'), got {dict(row)!r} ({exc})") from None
            rows.append(out)
    return rows


def is_seed_folder(path) -> bool:
    """Whether ``path`` has the seed's layout with labels: ``frames/`` and the two metadata files."""
    path = Path(path)
    return ((path / "frames").is_dir() and (path / "metadata" / "detections.csv").is_file()
            and (path / "metadata" / "annotations_manual.json").is_file())


def seed_folder_set(root, recognizer, *, name: str | None = None) -> LabelledSet:
    """The seed's faces of a seed-layout folder, embedded with the seed's landmarks; human labels."""
    root = Path(root)
    truth = read_annotations(root / "metadata" / "annotations_manual.json").label_of()
    embeddings, labels, skipped = [], [], []
    frames: dict[str, np.ndarray] = {}
    for row in read_seed_detections(root / "metadata" / "detections.csv"):
        if row["face"] not in truth or "landmarks" not in row:
            skipped.append(f"{row['face']}: no label or no landmarks")
            continue
        if row["frame"] not in frames:
            frames[row["frame"]] = read_rgb(root / "frames" / f"{row['frame']}.png")
        embeddings.append(recognizer.embed(frames[row["frame"]], row["landmarks"][None])[0])
        labels.append(truth[row["face"]])
    if len(set(labels)) < 2:
        raise ValueError(f"{root}: calibration needs at least two labelled identities, found {len(set(labels))}")
    return LabelledSet(name or root.name, np.asarray(embeddings, np.float32), np.asarray(labels, np.int64), skipped)


def is_frames_folder(path) -> bool:
    """Whether ``path`` holds frames with named boxes: ``frames/`` and ``labels.csv``."""
    path = Path(path)
    return (path / "frames").is_dir() and (path / "labels.csv").is_file()


def read_named_boxes(path) -> dict[str, list[tuple[np.ndarray, str]]]:
    """Boxes of a ``labels.csv`` (``frame,x,y,w,h,identity``) by frame stem: ``[(box (4,), identity), ...]``.

    Raises
    ------
    ValueError
        A missing column or a value that is not a number (names the file and line).
    """
    out: dict[str, list[tuple[np.ndarray, str]]] = {}
    with open(path, newline="") as fp:
        for line, row in enumerate(csv.DictReader(fp), start=2):
            try:
                box = np.array([float(row[k]) for k in "xywh"], np.float32)
                frame, identity = row["frame"].strip(), row["identity"].strip()
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ValueError(f"{path}, line {line}: expected columns frame,x,y,w,h,identity with numbers "
                                 f"for x,y,w,h, got {dict(row)!r}") from None
            if not frame or not identity or not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
                raise ValueError(f"{path}, line {line}: expected a frame, a box of positive size and an "
                                 f"identity, got {dict(row)!r}")
            out.setdefault(frame, []).append((box, identity))
    return out


def frame_file(root: Path, stem: str) -> Path | None:
    """The image of frame ``stem`` in ``root/frames`` (``.jpg``, ``.jpeg`` or ``.png``, first found); None: none."""
    for suffix in (".jpg", ".jpeg", ".png"):
        if (root / "frames" / f"{stem}{suffix}").is_file():
            return root / "frames" / f"{stem}{suffix}"
    return None


def frames_folder_set(root, detector, recognizer, *, name: str | None = None,
                      unknown: str = "unknown") -> LabelledSet:
    """The named faces of a frames folder with ``labels.csv``, embedded from their best-matching detections.

    Each named box takes the detection of highest IoU (>= :data:`BOX_IOU`) in its frame
    (a detection serves one box); boxes named ``unknown`` are left out. A named box with
    no detection is skipped and listed.

    Raises
    ------
    ValueError
        A malformed ``labels.csv``, a frame it names missing, or fewer than two identities found.
    """
    from streamface.engine import box_iou  # lazy: streamface.engine loads onnx and PyAV (~0.9 s)

    root = Path(root)
    people: dict[str, int] = {}
    embeddings, labels, frames, skipped = [], [], [], []
    for k, (stem, boxes) in enumerate(sorted(read_named_boxes(root / "labels.csv").items())):
        named = [(box, who) for box, who in boxes if who != unknown]
        if not named:
            continue
        path = frame_file(root, stem)
        if path is None:
            raise ValueError(f"{root / 'labels.csv'}: frame {stem!r} has no image in {root / 'frames'}")
        img = read_rgb(path)
        [found] = detector.detect([img])
        iou = box_iou(np.stack([b for b, _ in named]), found.boxes) if len(found.scores) \
            else np.zeros((len(named), 0))
        used: set[int] = set()
        for i, (box, who) in enumerate(named):
            order = [j for j in np.argsort(-iou[i]).tolist() if iou[i, j] >= BOX_IOU and j not in used]
            if not order:
                skipped.append(f"{stem}: no detection at IoU >= {BOX_IOU:g} for {who}'s box {box.tolist()}")
                continue
            used.add(order[0])
            embeddings.append(recognizer.embed(img, found.landmarks[order[0]:order[0] + 1])[0])
            labels.append(people.setdefault(who, len(people)))
            frames.append(k)
    if len(set(labels)) < 2:
        raise ValueError(f"{root}: calibration needs at least two named identities with a detected face, "
                         f"found {len(set(labels))}")
    return LabelledSet(name or root.name, np.asarray(embeddings, np.float32), np.asarray(labels, np.int64),
                       skipped, np.asarray(frames, np.int64))


def default_annotations(store: str) -> Path:
    """Where a store's reviewed labels are looked for: ``<folder of the store>/metadata/annotations_manual.json``."""
    return Path(store).expanduser().resolve().parent / "metadata" / "annotations_manual.json"


def store_set(features_path: str, *, stream: str | None = None, annotations=None, model: str | None = None,
              name: str | None = None) -> LabelledSet:
    """The embedded faces of a store stream that ``annotations`` (seed ``annotations_manual.json``) labels.

    Raises
    ------
    ValueError
        No annotations file, no face in common, fewer than two identities, or embeddings of
        another model than ``model``.
    """

    store, _ = split_store_path(features_path)
    annotations = Path(annotations) if annotations is not None else default_annotations(store)
    if not annotations.is_file():
        raise ValueError(f"{features_path}: no labels for calibration: {annotations} does not exist "
                         f"(pass --annotations with the reviewed annotations_manual.json)")
    features = load_features(features_path, stream=stream)
    if model is not None and features.model is not None and features.model != model:
        raise ValueError(f"{features.source} holds {features.model!r} embeddings, not {model!r}: calibrate "
                         f"--model {features.model} or analyse the store with {model!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y, _ = labelled_embeddings(features, read_annotations(annotations))
    # Noise (-1) stays one label, as the seed's evaluation scores it (and as the skynews set).
    if np.unique(y).size < 2:
        raise ValueError(f"{annotations}: calibration needs at least two labelled identities among the faces of "
                         f"{features.source}, found {np.unique(y).size}")
    return LabelledSet(name or features.source, x.astype(np.float32), y.astype(np.int64),
                       [str(w.message) for w in caught])


def load_labelled_set(source: str, *, detector, recognizer, stream: str | None = None, annotations=None,
                      model: str | None = None) -> LabelledSet:
    """A labelled set from ``source``: a store (``<store>::<stream>``), a seed-layout folder, a frames
    folder with ``labels.csv`` or an identity folder.

    Raises
    ------
    ValueError
        ``source`` is none of these, or holds too little (one line naming it).
    """
    path, named = split_store_path(source)
    if named is not None or (Path(path) / "zarr.json").is_file():
        return store_set(source, stream=stream, annotations=annotations, model=model)
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{source}: not a folder or a face store")
    if is_seed_folder(root):
        return seed_folder_set(root, recognizer)
    if is_frames_folder(root):
        return frames_folder_set(root, detector, recognizer)
    if not any(p.is_dir() for p in root.iterdir()):
        raise ValueError(f"{source}: expected <identity>/<images> folders, a seed-layout folder (frames/, "
                         f"metadata/detections.csv, metadata/annotations_manual.json), frames/ with labels.csv "
                         f"or a face store; found none")
    return identity_folder_set(root, detector, recognizer)
