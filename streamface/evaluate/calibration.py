"""Calibrate a recognizer's clustering thresholds and a detector's score threshold on labelled data.

Clustering (``calibrate_clustering``): each labelled set's faces are embedded with the
recognizer and clustered as the face clustering stage does by default (``batched_hac``
with average linkage, and no cluster holding two faces of one frame where the set knows
its frames) at every cut of a grid (default cosine distance 0.3..0.7, step 0.025),
scored with BCubed and pairwise F against the identities. The chosen values
(:func:`choose`, the rule the registry's shipped SFace values come from):

- ``matching_threshold``: the cut maximising the *worst* set's BCubed F (a default must
  hold on every kind of data, not on average), and where neighbouring cuts score as well
  (within :data:`PLATEAU_TOLERANCE`), the middle of that plateau rather than its edge
  (an edge is where the next data set falls off; even plateaus: the lower middle);
- ``merging_threshold``: matching + 0.1 (joins only track-matched clusters, on their mean
  member distance, so it may be looser than the cut);
- cluster matching ``min_threshold`` = matching + 0.05, ``max_threshold`` = matching + 0.15
  (suggestions for review just beyond the cut, as the seed's 0.35/0.5 around its 0.3).

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

Detector (``calibrate_detector``, rule :func:`detector_threshold`, the rule the shipped
detector thresholds come from). The detector runs at a low score floor (0.05) on every
public set of true faces it is given:

- frames with true boxes (a seed-layout folder's ``detections.csv``, or a store's frames
  and a boxes CSV of that format): each true box takes the best unused detection at
  IoU >= 0.5 (greedy, highest IoU first); recall = matched boxes / true boxes;
- identity folders (``<identity>/<photos>``, each photo holding exactly one face), read as
  for clustering (:func:`padded_photo`): a photo counts as found at threshold ``t`` when
  its best detection scores >= ``t`` (the face clustering embeds); recall = photos found /
  photos.

The threshold is the highest 0.01 step keeping recall >= the target (default 0.95) on
every set. A set that cannot reach the target at any threshold (its recall at the floor is
lower, e.g. MTCNN on skynews) keeps instead its best reachable recall, the highest 0.01
step losing none of what the floor finds there; the summary and the JSON say so.

The public data the shipped clustering values come from: ``identities/johns``,
``identities/orl``, ``skynews`` and ``tv/fotb`` under ``../shared/data`` (see
``benchmarks/calibrate_clustering.py``); the detector thresholds: the first three.
"""

from __future__ import annotations

import ast
import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["BoxTruth", "ClusteringCalibration", "DetectorCalibration", "DetectorSetResult", "LabelledSet",
           "PhotoTruth", "DEFAULT_CUTS", "calibrate_clustering", "calibrate_detector", "choose", "cut_grid",
           "PLATEAU_TOLERANCE", "detector_threshold", "detector_truths", "frames_folder_set", "identity_folder_set",
           "identity_photos", "is_frames_folder", "load_labelled_set", "plateau", "read_named_boxes",
           "plot_calibration", "seed_folder_set", "store_set", "sweep", "write_report"]

#: The default grid of linkage cuts: cosine distance 0.3..0.7, step 0.025 (what the shipped values used).
DEFAULT_CUTS = (0.3, 0.7, 0.025)

#: Cuts whose worst-set BCubed F is within this of the best form the plateau :func:`choose` takes the middle of.
PLATEAU_TOLERANCE = 0.001

#: The linkage the sweep clusters with: the face clustering stage's default.
SWEEP_LINKAGE = "average"

#: Named boxes match a detection at this IoU or more (frames with ``labels.csv``).
BOX_IOU = 0.5

#: Photo files of an identity folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp")

#: Columns of a sweep: BCubed precision, recall, F, then pairwise precision, recall, F.
SWEEP_COLUMNS = ("bcubed_precision", "bcubed_recall", "bcubed_f", "pairwise_precision", "pairwise_recall",
                 "pairwise_f")

_LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def cut_grid(start: float = DEFAULT_CUTS[0], stop: float = DEFAULT_CUTS[1],
             step: float = DEFAULT_CUTS[2]) -> np.ndarray:
    """Linkage cuts ``start, start + step, ..., stop`` (inclusive), rounded to 1e-4.

    Raises
    ------
    ValueError
        ``start`` < 0, ``stop`` < ``start`` or ``step`` <= 0.
    """
    if not (math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)):
        raise ValueError(f"cut grid: expected finite numbers, got {start}..{stop} step {step}")
    if start < 0 or stop < start or step <= 0:
        raise ValueError(f"cut grid: expected 0 <= start <= stop and step > 0, got {start}..{stop} step {step}")
    return np.round(np.arange(start, stop + step * 1e-6, step), 4)


# ---- labelled sets ------------------------------------------------------------------------------------


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


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def padded_photo(path: Path) -> np.ndarray:
    """The photo at ``path`` (RGB) centred on a black canvas twice its size, so a detector sees context."""
    from streamface.ingest.photos import pad_onto_canvas

    return pad_onto_canvas(_read_rgb(path))[0]


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
    from streamface.identify.annotations import read_annotations

    root = Path(root)
    truth = read_annotations(root / "metadata" / "annotations_manual.json").label_of()
    embeddings, labels, skipped = [], [], []
    frames: dict[str, np.ndarray] = {}
    for row in read_seed_detections(root / "metadata" / "detections.csv"):
        if row["face"] not in truth or "landmarks" not in row:
            skipped.append(f"{row['face']}: no label or no landmarks")
            continue
        if row["frame"] not in frames:
            frames[row["frame"]] = _read_rgb(root / "frames" / f"{row['frame']}.png")
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


def _frame_file(root: Path, stem: str) -> Path | None:
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
    from streamface.engine import box_iou

    root = Path(root)
    people: dict[str, int] = {}
    embeddings, labels, frames, skipped = [], [], [], []
    for k, (stem, boxes) in enumerate(sorted(read_named_boxes(root / "labels.csv").items())):
        named = [(box, who) for box, who in boxes if who != unknown]
        if not named:
            continue
        path = _frame_file(root, stem)
        if path is None:
            raise ValueError(f"{root / 'labels.csv'}: frame {stem!r} has no image in {root / 'frames'}")
        img = _read_rgb(path)
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
    import warnings

    from streamface.identify.annotations import read_annotations
    from streamface.identify.features import labelled_embeddings, load_features, split_store_path

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
    from streamface.identify.features import split_store_path

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


# ---- clustering ----------------------------------------------------------------------------------------


def sweep(x: np.ndarray, y: np.ndarray, cuts, *, frames: np.ndarray | None = None,
          linkage: str = SWEEP_LINKAGE) -> np.ndarray:
    """Scores of the stage's clustering (``batched_hac``, ``linkage``) at each cut.

    Parameters
    ----------
    x : ndarray, shape (n, D)
    y : ndarray of int, shape (n,)
    cuts : array-like of float
    frames : ndarray of int, shape (n,), optional
        Frame of each face: faces of one frame never share a cluster (as in the stage).
    linkage : str, default :data:`SWEEP_LINKAGE`

    Returns
    -------
    ndarray of float64, shape (len(cuts), 6)
        Columns :data:`SWEEP_COLUMNS` (BCubed P, R, F; pairwise P, R, F).
    """
    from streamface.identify.clustering import Links, batched_hac, order_by_size
    from streamface.evaluate.metrics import evaluate_labels

    links = None if frames is None else Links.of_faces(frames)
    out = []
    for t in np.asarray(cuts, float):
        scores = evaluate_labels(y, order_by_size(batched_hac(x, float(t), linkage=linkage, links=links)))
        out.append(tuple(scores.bcubed) + tuple(scores.pairwise))
    return np.array(out, np.float64).reshape(len(out), len(SWEEP_COLUMNS))


def plateau(worst_f: np.ndarray, tolerance: float = PLATEAU_TOLERANCE) -> tuple[int, int]:
    """The widest run of consecutive cuts scoring within ``tolerance`` of the best: ``(first, last)`` indices.

    Runs of equal width: the one of smaller cuts (precision first).
    """
    f = np.asarray(worst_f, float)
    top = f >= f.max() - tolerance
    best, first = (0, -1), None
    for i, on in enumerate(np.r_[top, False].tolist()):
        if on and first is None:
            first = i
        elif not on and first is not None:
            if i - 1 - first > best[1] - best[0]:
                best = (first, i - 1)
            first = None
    return best


def choose(worst_f: np.ndarray, cuts) -> dict[str, float]:
    """The chosen thresholds from the worst set's BCubed F at each cut (rule of the module docstring):
    the middle (lower middle) of the :func:`plateau` of the best cuts."""
    first, last = plateau(worst_f)
    t = float(np.asarray(cuts, float)[(first + last) // 2])
    return {"matching_threshold": round(t, 4), "merging_threshold": round(t + 0.1, 4),
            "min_threshold": round(t + 0.05, 4), "max_threshold": round(t + 0.15, 4)}


@dataclass
class ClusteringCalibration:
    """A recognizer's clustering sweep over labelled sets and the chosen thresholds.

    ``scores[name]``: shape (len(cuts), 6), columns :data:`SWEEP_COLUMNS`; ``mean_f`` /
    ``mean_pairwise_f``: shape (len(cuts),), means over the sets; ``worst_f``: the
    lowest set's BCubed F at each cut (what :func:`choose` maximises).
    """

    model: str
    metric: str
    cuts: np.ndarray
    sizes: dict[str, tuple[int, int]]  # name -> (faces, identities)
    scores: dict[str, np.ndarray]
    mean_f: np.ndarray
    mean_pairwise_f: np.ndarray
    chosen: dict[str, float]
    worst_f: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.worst_f is None:
            self.worst_f = np.min([v[:, 2] for v in self.scores.values()], axis=0)

    @property
    def best(self) -> int:
        return int(np.flatnonzero(self.cuts == self.chosen["matching_threshold"])[0])

    def source(self) -> str:
        """One line on where the values came from (stored with ``--write``)."""
        sets = ", ".join(f"{k} ({n} faces)" for k, (n, _) in self.sizes.items())
        first, last = plateau(self.worst_f)
        return (f"streamface calibrate: {SWEEP_LINKAGE}-linkage cut maximising the worst set's BCubed F "
                f"({self.worst_f[self.best]:.3f} at {self.chosen['matching_threshold']:g}, the middle of "
                f"{self.cuts[first]:g}..{self.cuts[last]:g}) on {sets}")

    def table(self) -> str:
        """The sweep as text: one row per cut, BCubed P/R/F per set, the worst set's and mean BCubed F,
        mean pairwise F."""
        width = max(20, *(len(n) + 8 for n in self.scores))
        lines = ["cut     " + "  ".join(f"{n + ' P/R/F':>{width}}" for n in self.scores)
                 + "  worst F  mean F  pair F"]
        for i, t in enumerate(self.cuts):
            cells = "  ".join(f"{s[i, 0]:.3f}/{s[i, 1]:.3f}/{s[i, 2]:.3f}".rjust(width) for s in self.scores.values())
            mark = "  <-" if i == self.best else ""
            lines.append(f"{t:<6.4g}  {cells}  {self.worst_f[i]:.4f}   {self.mean_f[i]:.4f}  "
                         f"{self.mean_pairwise_f[i]:.4f}{mark}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"model": self.model, "metric": self.metric, "cuts": self.cuts.tolist(), "columns": list(SWEEP_COLUMNS),
                "sets": {k: {"faces": n, "identities": m} for k, (n, m) in self.sizes.items()},
                "scores": {k: v.tolist() for k, v in self.scores.items()}, "mean_bcubed_f": self.mean_f.tolist(),
                "worst_bcubed_f": self.worst_f.tolist(), "linkage": SWEEP_LINKAGE,
                "mean_pairwise_f": self.mean_pairwise_f.tolist(), "chosen": self.chosen, "source": self.source()}


def calibrate_clustering(sets, model: str, cuts=None, *, metric: str = "cosine") -> ClusteringCalibration:
    """Sweep the linkage cut over labelled ``sets`` and choose the thresholds (see the module docstring).

    Parameters
    ----------
    sets : sequence of LabelledSet
        Each with at least two identities; names must differ.
    model : str
        The recognizer that made the embeddings (recorded in the result).
    cuts : array-like of float, default ``cut_grid()`` (0.3..0.7, step 0.025)
    metric : str, default "cosine"
        The distance the cuts are in (``batched_hac`` uses cosine).

    Returns
    -------
    ClusteringCalibration

    Raises
    ------
    ValueError
        No set, duplicate names, a set with fewer than two identities, or an empty grid.
    """
    cuts = cut_grid() if cuts is None else np.asarray(cuts, float).reshape(-1)
    if not len(sets):
        raise ValueError("calibration needs at least one labelled set")
    if not len(cuts):
        raise ValueError("calibration needs at least one cut")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"labelled sets need distinct names, got {names}")
    for s in sets:
        if s.identities < 2:
            raise ValueError(f"{s.name}: calibration needs at least two identities, found {s.identities}")
    scores = {s.name: sweep(s.embeddings, s.labels, cuts, frames=s.frames) for s in sets}
    mean_f = np.mean([v[:, 2] for v in scores.values()], axis=0)
    mean_pairwise = np.mean([v[:, 5] for v in scores.values()], axis=0)
    worst_f = np.min([v[:, 2] for v in scores.values()], axis=0)
    return ClusteringCalibration(model, metric, cuts, {s.name: (len(s.labels), s.identities) for s in sets},
                                 scores, mean_f, mean_pairwise, choose(worst_f, cuts), worst_f)


# ---- detector --------------------------------------------------------------------------------------------


def seed_folder_frames(root) -> tuple[list[tuple[str, np.ndarray]], dict[str, np.ndarray]]:
    """Frames (stem, RGB) of a seed-layout folder that have true boxes, and the boxes by frame stem."""
    root = Path(root)
    boxes = boxes_by_frame(read_seed_detections(root / "metadata" / "detections.csv"))
    frames = [(stem, _read_rgb(root / "frames" / f"{stem}.png")) for stem in sorted(boxes)
              if (root / "frames" / f"{stem}.png").is_file()]
    return frames, boxes


def frames_folder_frames(root) -> tuple[list[tuple[str, np.ndarray]], dict[str, np.ndarray]]:
    """Frames (stem, RGB) of a frames folder with ``labels.csv``, and every box of it (named or not) by stem."""
    root = Path(root)
    named = read_named_boxes(root / "labels.csv")
    boxes = {k: np.stack([b for b, _ in v]).astype(np.float32) for k, v in named.items()}
    frames = [(stem, _read_rgb(path)) for stem in sorted(boxes) if (path := _frame_file(root, stem)) is not None]
    return frames, boxes


def store_frames(features_path: str, boxes_csv, *, stream: str | None = None):
    """Frames (stem, RGB) of a store stream named by a boxes CSV (seed ``detections.csv`` format), and the boxes.

    Raises
    ------
    ValueError
        The store keeps no frame images, or no frame of the CSV is in the stream.
    """
    from streamface.ingest.extraction import decode_image
    from streamface.identify.features import split_store_path
    from streamface.store import FaceStore
    from streamface.store.names import frame_name

    path, named = split_store_path(features_path)
    source = FaceStore.open(path, mode="r")
    name = named or stream or (source.streams[0] if len(source.streams) == 1 else None)
    if name is None:
        raise ValueError(f"{features_path}: the store holds streams {source.streams}; name one with ::<stream>")
    s = source.stream(name)
    boxes = boxes_by_frame(read_seed_detections(boxes_csv))
    records = s.read_frames()
    wanted = [i for i, t in enumerate(records.time_us.tolist()) if frame_name(name, t) in boxes]
    if not wanted:
        raise ValueError(f"{boxes_csv}: names no frame of {path}::{name}")
    frames = []
    for i in wanted:
        [blob] = s.read_frame_images(i, i + 1)
        if not blob:
            raise ValueError(f"{path}::{name}: frame {i} was kept without its image; detector calibration needs them")
        frames.append((frame_name(name, int(records.time_us[i])), decode_image(blob)))
    return frames, {k: v for k, v in boxes.items() if k in {f for f, _ in frames}}


def boxes_by_frame(rows) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(row["frame"], []).append(row["box"])
    return {k: np.array(v, np.float32).reshape(-1, 4) for k, v in out.items()}


def matched_scores(truth: np.ndarray, boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """The score of the detection matched to each true box (NaN: missed), one to one, highest IoU first.

    Parameters
    ----------
    truth : ndarray, shape (n, 4)
        True boxes (x, y, w, h).
    boxes : ndarray, shape (m, 4)
        Detected boxes (x, y, w, h).
    scores : ndarray, shape (m,)
    iou : float, default 0.5

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    from streamface.engine import box_iou

    out = np.full(len(truth), np.nan)
    if not len(truth) or not len(boxes):
        return out
    overlap = box_iou(np.asarray(truth, np.float32), np.asarray(boxes, np.float32))
    used = np.zeros(len(boxes), bool)
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, overlap.shape)
        if overlap[i, j] < iou:
            break
        if np.isnan(out[i]) and not used[j]:
            out[i], used[j] = float(scores[j]), True
    return out


@dataclass
class BoxTruth:
    """Frames with true boxes: recall counts true boxes matched at IoU >= ``iou``.

    Parameters
    ----------
    name : str
    frames : list of (str, ndarray)
        Frame stem and RGB uint8 image (H, W, 3).
    boxes : dict
        Frame stem -> true boxes, shape (k, 4), (x, y, w, h).
    """

    name: str
    frames: list
    boxes: dict


@dataclass
class PhotoTruth:
    """Identity-folder photos, each holding exactly one face: recall counts photos with a face.

    Parameters
    ----------
    name : str
    paths : list of Path
        Photos, read as :func:`padded_photo` (as :func:`identity_folder_set` reads them).
    """

    name: str
    paths: list


def identity_photos(root) -> list[Path]:
    """The photos of ``root/<identity>/<photos>``, identities and photos in name order."""
    root = Path(root)
    return [path for person in sorted(p for p in root.iterdir() if p.is_dir())
            for path in sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)]


def box_scores(detector, truth: BoxTruth, iou: float) -> np.ndarray:
    """Per true box of ``truth``, the score of its matched detection (NaN: missed), shape (n,)."""
    matched = []
    for stem, rgb in truth.frames:
        true_boxes = truth.boxes.get(stem)
        if true_boxes is None or not len(true_boxes):
            continue
        [found] = detector.detect([rgb])
        matched.append(matched_scores(true_boxes, found.boxes, found.scores, iou))
    return np.concatenate(matched) if matched else np.zeros(0)


def photo_scores(detector, truth: PhotoTruth) -> np.ndarray:
    """Per photo of ``truth``, its best detection's score (NaN: no detection), shape (n,).

    A photo of an identity folder holds exactly one face, so it counts as found at threshold
    ``t`` when its most confident detection scores >= ``t``: the face
    :func:`identity_folder_set` embeds.
    """
    out = np.full(len(truth.paths), np.nan)
    for i, path in enumerate(truth.paths):
        [found] = detector.detect([padded_photo(path)])
        if len(found.scores):
            out[i] = float(np.max(found.scores))
    return out


def detector_threshold(scores, target_recall: float, floor: float = 0.0) -> tuple[float, list[float], list[float]]:
    """The detector rule: the highest 0.01 step keeping each set's recall at its goal.

    Parameters
    ----------
    scores : sequence of ndarray, each shape (n_k,)
        Per set, the score each true face was found with (NaN: missed at the floor).
    target_recall : float in (0, 1]
    floor : float, default 0.0
        The score floor the detector ran at: the threshold is never below it.

    Returns
    -------
    threshold : float
        The minimum over the sets of their limits (recall only falls as the threshold rises).
    goals : list of float
        Per set, the recall it must keep: ``target_recall``, or where the set cannot reach it
        at any threshold (its recall at the floor is lower), that best reachable recall.
    limits : list of float
        Per set, the highest 0.01 step keeping its goal: the ``ceil(goal * n)``-th highest
        score rounded down to 0.01 (the detectors keep scores >= their threshold); 1.0 for a
        set with no face found (it constrains nothing).

    Raises
    ------
    ValueError
        No set, an empty set, or ``target_recall`` outside (0, 1].
    """
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall: expected a number in (0, 1], got {target_recall!r}")
    if not len(scores):
        raise ValueError("detector calibration needs at least one set of true faces")
    goals, limits = [], []
    for s in scores:
        s = np.asarray(s, float).reshape(-1)
        if not len(s):
            raise ValueError("detector calibration: a set without true faces")
        found = np.sort(s[~np.isnan(s)])[::-1]
        goal = min(float(target_recall), len(found) / len(s))
        need = math.ceil(goal * len(s) - 1e-9)
        limit = 1.0 if need == 0 else max(floor, math.floor(float(found[need - 1]) * 100 + 1e-9) / 100)
        goals.append(goal)
        limits.append(min(1.0, limit))
    return min(limits), goals, limits


@dataclass
class DetectorSetResult:
    """One set's part of a detector calibration.

    ``kind``: ``"boxes"`` (true boxes matched at IoU) or ``"photos"`` (one face per photo);
    ``scores``: shape (n,), per true face the score it was found with (NaN: missed at the
    floor); ``goal``: the recall the threshold keeps (the target, or the best reachable);
    ``limit``: the highest 0.01 step keeping ``goal`` on this set alone.
    """

    name: str
    kind: str
    scores: np.ndarray
    goal: float
    limit: float

    @property
    def found(self) -> int:
        return int(np.sum(~np.isnan(self.scores)))

    def recall(self, threshold: float) -> float:
        """Recall of detections scoring >= ``threshold``."""
        return float(np.sum(self.scores >= threshold) / len(self.scores)) if len(self.scores) else 0.0


@dataclass
class DetectorCalibration:
    """A detector's scores on each set of true faces and the threshold of :func:`detector_threshold`.

    ``sets``: per set, its scores, goal and limit; ``threshold``: the highest 0.01 step
    keeping every set's goal; ``shipped``: the wrapper's ``DEFAULT_CONF_THRESHOLD``.
    """

    model: str
    target_recall: float
    iou: float
    floor: float
    sets: list[DetectorSetResult]
    threshold: float
    shipped: float

    def recall(self, threshold: float) -> dict[str, float]:
        """Recall per set (by name) of detections scoring >= ``threshold``."""
        return {s.name: s.recall(threshold) for s in self.sets}

    def short_of_target(self) -> list[DetectorSetResult]:
        """The sets that cannot reach the target recall at any threshold (their goal is lower)."""
        return [s for s in self.sets if s.goal < self.target_recall - 1e-12]

    def _recalls(self, threshold: float) -> str:
        return ", ".join(f"{s.name} {s.recall(threshold):.3f} ({int(np.sum(s.scores >= threshold))}/"
                         f"{len(s.scores)} {'faces' if s.kind == 'boxes' else 'photos'})" for s in self.sets)

    def source(self) -> str:
        """One line on where the value came from (stored with ``--write``, quoted by the wrappers)."""
        short = "".join(f"; {s.name} cannot reach it (best {s.goal:.3f}, kept)" for s in self.short_of_target())
        return (f"streamface calibrate: highest 0.01 step keeping recall >= {self.target_recall:g} on every set "
                f"(IoU {self.iou:g} for boxes, best detection for photos){short}: {self._recalls(self.threshold)}")

    def summary(self) -> str:
        head = f"{self.model}: threshold {self.threshold:g} (target recall {self.target_recall:g}, score floor " \
               f"{self.floor:g})"
        lines = [head]
        for s in self.sets:
            unit = f"true faces at IoU {self.iou:g}" if s.kind == "boxes" else "photos"
            note = ("" if s.goal >= self.target_recall - 1e-12 else
                    f"; target not reachable: keeps the best reachable recall {s.goal:.3f}")
            lines.append(f"  {s.name}: {s.found} of {len(s.scores)} {unit} found at the floor; limit {s.limit:g}; "
                         f"recall {s.recall(self.threshold):.3f} at {self.threshold:g}{note}")
        lines.append(f"  shipped {self.shipped:g}: {self._recalls(self.shipped)}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"model": self.model, "target_recall": self.target_recall, "iou": self.iou, "floor": self.floor,
                "threshold": self.threshold, "recall": self.recall(self.threshold),
                "sets": [{"name": s.name, "kind": s.kind, "true_faces": len(s.scores), "found": s.found,
                          "goal": s.goal, "target_reached": s.goal >= self.target_recall - 1e-12,
                          "limit": s.limit, "recall": s.recall(self.threshold),
                          "scores": [None if np.isnan(v) else float(v) for v in s.scores]} for s in self.sets],
                "shipped": self.shipped, "shipped_recall": self.recall(self.shipped), "source": self.source()}


def calibrate_detector(detector, truths, *, target_recall: float = 0.95, iou: float = 0.5,
                       floor: float = 0.05) -> DetectorCalibration:
    """The score threshold of ``detector`` keeping recall >= ``target_recall`` on every set of ``truths``.

    Parameters
    ----------
    detector : LetterboxDetector or MTCNN
        A loaded detector; it is re-prepared with ``conf_threshold=floor`` (its other options
        return to their defaults, as the stages run it).
    truths : sequence of BoxTruth or PhotoTruth
        The sets (names distinct): frames with true boxes (recall at IoU ``iou``, one to one),
        identity-folder photos (found: the best detection scores >= the threshold).
    target_recall : float in (0, 1], default 0.95
    iou : float in (0, 1], default 0.5
    floor : float in [0, 1), default 0.05
        Score floor the detector runs at (lower scores count as missed).

    Returns
    -------
    DetectorCalibration
        ``threshold`` by :func:`detector_threshold` (the module docstring states the rule).

    Raises
    ------
    ValueError
        A parameter out of range, no set, duplicate names, or a set without true faces.
    """
    for label, value in (("target_recall", target_recall), ("iou", iou)):
        if not 0 < value <= 1:
            raise ValueError(f"{label}: expected a number in (0, 1], got {value!r}")
    if not 0 <= floor < 1:
        raise ValueError(f"floor: expected a number in [0, 1), got {floor!r}")
    truths = list(truths)
    if not truths:
        raise ValueError("detector calibration: no frame with true boxes and no identity photos")
    names = [t.name for t in truths]
    if len(set(names)) != len(names):
        raise ValueError(f"detector calibration: sets need distinct names, got {names}")
    for t in truths:
        n = sum(len(v) for k, v in t.boxes.items() if k in {f for f, _ in t.frames}) if isinstance(t, BoxTruth) \
            else len(t.paths)
        if not n:
            raise ValueError(f"detector calibration: {t.name} has no true face "
                             f"({'no frame with true boxes' if isinstance(t, BoxTruth) else 'no photo'})")
    shipped = float(type(detector).DEFAULT_CONF_THRESHOLD)
    detector.prepare(conf_threshold=floor)  # every wrapper's prepare takes it; the rest: their defaults
    scores = [box_scores(detector, t, iou) if isinstance(t, BoxTruth) else photo_scores(detector, t)
              for t in truths]
    threshold, goals, limits = detector_threshold(scores, target_recall, floor)
    sets = [DetectorSetResult(t.name, "boxes" if isinstance(t, BoxTruth) else "photos", s, g, lim)
            for t, s, g, lim in zip(truths, scores, goals, limits)]
    return DetectorCalibration(getattr(detector.spec, "name", type(detector).__name__), float(target_recall),
                               float(iou), float(floor), sets, threshold, shipped)


# ---- report ---------------------------------------------------------------------------------------------


def plot_calibration(result: ClusteringCalibration, path, *, dpi: int = 120) -> Path:
    """BCubed F (solid) and pairwise F (dashed) against the cut, per set, their mean and the worst set's
    BCubed F (what the choice maximises); the choice marked."""
    from streamface.evaluate.plots import new_figure, save_figure

    fig = new_figure(size=(7.0, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for k, (name, s) in enumerate(result.scores.items()):
        colour = f"C{k % 10}"
        ax.plot(result.cuts, s[:, 2], "-", color=colour, label=f"{name} BCubed F")
        ax.plot(result.cuts, s[:, 5], "--", color=colour, alpha=0.7, label=f"{name} pairwise F")
    ax.plot(result.cuts, result.mean_f, "-", color="black", linewidth=2, label="mean BCubed F")
    ax.plot(result.cuts, result.mean_pairwise_f, "--", color="black", linewidth=1.5, label="mean pairwise F")
    ax.plot(result.cuts, result.worst_f, ":", color="black", linewidth=2, label="worst set's BCubed F")
    ax.axvline(result.chosen["matching_threshold"], color="grey", linestyle=":",
               label=f"chosen cut {result.chosen['matching_threshold']:g}")
    ax.set_xlabel(f"{SWEEP_LINKAGE}-linkage cut ({result.metric} distance)")
    ax.set_ylabel("F")
    ax.set_title(f"{result.model}: clustering F against the cut")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi)


def write_report(output, clustering: ClusteringCalibration | None, detectors=()) -> list[Path]:
    """Write ``calibration.json`` (and ``calibration.png`` with a clustering sweep) into folder ``output``."""
    from streamface.identify.annotations import write_json

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    report = {"clustering": None if clustering is None else clustering.to_json(),
              "detectors": [d.to_json() for d in detectors]}
    written = [output / "calibration.json"]
    write_json(written[0], report)
    if clustering is not None:
        written.append(plot_calibration(clustering, output / "calibration.png"))
    return written


def user_entries(clustering: ClusteringCalibration | None, detectors=()) -> dict[str, dict]:
    """The values ``--write`` stores, ``{model: {key: value}}`` (detectors that found no face left out)."""
    out = {}
    if clustering is not None:
        out[clustering.model] = {**clustering.chosen, "metric": clustering.metric, "source": clustering.source()}
    for d in detectors:
        if d.threshold is not None and any(s.found for s in d.sets):  # found nothing: nothing to store
            out[d.model] = {"conf_threshold": d.threshold, "source": d.source()}
    return out


# ---- one run: what `streamface calibrate` does ----------------------------------------------------------


def parse_cuts(text: str) -> np.ndarray:
    """``"start:stop:step"`` (e.g. ``"0.3:0.7:0.025"``) -> :func:`cut_grid`; ValueError naming the text."""
    try:
        start, stop, step = (float(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"cuts: expected start:stop:step, e.g. 0.3:0.7:0.025, got {text!r}") from None
    return cut_grid(start, stop, step)


@dataclass
class CalibrationRun:
    """What one ``calibrate`` run found: the clustering sweep, per-detector results, notes (skipped inputs)."""

    clustering: ClusteringCalibration | None
    detectors: list[DetectorCalibration]
    notes: list[str]


def _check_models(model: str, detectors) -> None:
    from streamface.engine import ModelError
    from streamface.engine.weights.registry import get_spec

    for name in model.split("+"):
        if get_spec(name.strip()).role != "recognizer":
            raise ModelError(f"--model {name!r} is a {get_spec(name.strip()).role}, not a recognizer")
    for name in detectors:
        if get_spec(name).role != "detector":
            raise ModelError(f"--detector {name!r} is a {get_spec(name).role}, not a detector")


def detector_truths(sources, *, stream: str | None = None, boxes=None) -> list:
    """The detector sets of ``sources``: seed-layout folders and stores with ``boxes`` give
    :class:`BoxTruth`, identity folders :class:`PhotoTruth` (each named by its folder or store
    source, a repeated name suffixed ``#2``, ...)."""
    from streamface.identify.features import split_store_path

    truths = []
    for source in sources:
        path, named = split_store_path(source)
        is_store = named is not None or (Path(path) / "zarr.json").is_file()
        if is_store:
            if boxes is not None:
                frames, true_boxes = store_frames(source, boxes, stream=stream)
                truths.append(BoxTruth(source, frames, true_boxes))
        elif is_seed_folder(path):
            frames, true_boxes = seed_folder_frames(path)
            truths.append(BoxTruth(Path(path).name, frames, true_boxes))
        elif is_frames_folder(path):
            frames, true_boxes = frames_folder_frames(path)
            truths.append(BoxTruth(Path(path).name, frames, true_boxes))
        elif Path(path).is_dir() and any(p.is_dir() for p in Path(path).iterdir()):
            photos = identity_photos(path)
            if photos:
                truths.append(PhotoTruth(Path(path).name, photos))
    seen: dict[str, int] = {}
    for t in truths:
        seen[t.name] = seen.get(t.name, 0) + 1
        if seen[t.name] > 1:
            t.name = f"{t.name}#{seen[t.name]}"
    return truths


def run_calibration(sources, *, model: str | None = None, detectors=("yunet",), cuts=None, what: str = "both",
                    target_recall: float = 0.95, stream: str | None = None, annotations=None, boxes=None,
                    device: str = "auto", home=None) -> CalibrationRun:
    """Calibrate ``model``'s clustering thresholds and each detector's score threshold on ``sources``.

    Parameters
    ----------
    sources : sequence of str
        Labelled sets (see :func:`load_labelled_set`). Detector calibration uses
        :func:`detector_truths`: seed-layout folders, a store when ``boxes`` is given, and
        identity folders.
    model : str or None, default the default recognizer (SFace)
    detectors : sequence of str, default ("yunet",)
        Calibrated on every detector set; the first also finds identity folders' faces for clustering.
    cuts : array-like or None, default ``cut_grid()``
    what : {"both", "clustering", "detector"}, default "both"
    target_recall : float, default 0.95
    stream, annotations, boxes
        For store sources: the stream (without ``::``), the reviewed labels (default
        ``<store folder>/metadata/annotations_manual.json``), a boxes CSV (seed format).
    device, home
        Where models run and the model cache.

    Raises
    ------
    ValueError, ModelError, FileNotFoundError
        Bad input (one line naming it), checked before any model runs where possible.
    """
    from streamface.engine import load_detector, load_recognizer
    from streamface.engine.model_zoo import DETECTORS
    from streamface.engine.weights.registry import DEFAULT_RECOGNIZER, get_spec
    from streamface.identify.features import split_store_path

    model = model or DEFAULT_RECOGNIZER
    detectors = tuple(detectors) or ("yunet",)
    if what not in ("both", "clustering", "detector"):
        raise ValueError(f"what: expected both, clustering or detector, got {what!r}")
    if not sources:
        raise ValueError("calibrate needs at least one labelled source")
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall: expected a number in (0, 1], got {target_recall!r}")
    cuts = cut_grid() if cuts is None else np.asarray(cuts, float)
    _check_models(model, detectors)
    for source in sources:
        path, named = split_store_path(source)
        if named is None and not Path(path).exists():
            raise FileNotFoundError(f"{source}: no such folder or store")

    notes: list[str] = []
    clustering = None
    if what in ("both", "clustering"):
        # The finder keeps the wrapper's shipped threshold (not a user calibration): the most
        # confident face of each photo is taken, so a stricter threshold only loses photos.
        shipped = DETECTORS[get_spec(detectors[0]).family].DEFAULT_CONF_THRESHOLD
        finder = load_detector(detectors[0], device=device, home=home, conf_threshold=shipped)
        recognizer = load_recognizer(model, device=device, home=home)
        sets = []
        for source in sources:
            s = load_labelled_set(source, detector=finder, recognizer=recognizer, stream=stream,
                                  annotations=annotations, model=model)
            notes += [f"{s.name}: {line}" for line in s.skipped]
            sets.append(s)
        clustering = calibrate_clustering(sets, model, cuts)

    results = []
    if what in ("both", "detector"):
        truths = detector_truths(sources, stream=stream, boxes=boxes)
        if not truths:
            if what == "detector":
                raise ValueError("detector calibration needs frames with true boxes (a seed-layout folder: "
                                 "frames/ + metadata/detections.csv, or a store with --boxes) or identity folders "
                                 "(<identity>/<images>, one face per photo)")
            notes.append("no source with true boxes or identity photos: detector thresholds not calibrated")
        else:
            for name in detectors:
                detector = load_detector(name, device=device, home=home)
                results.append(calibrate_detector(detector, truths, target_recall=target_recall))
    return CalibrationRun(clustering, results, notes)
