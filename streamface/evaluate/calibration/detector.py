"""Detector calibration: a detector's score threshold from public sets of true faces.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamface.evaluate.calibration.sets import (
    frame_file,
    padded_photo,
    read_named_boxes,
    read_rgb,
    read_seed_detections,
)
from streamface.identify.features import split_store_path

__all__ = ["BoxTruth", "DetectorCalibration", "DetectorSetResult", "PhotoTruth", "box_scores", "boxes_by_frame",
           "calibrate_detector", "detector_threshold", "frames_folder_frames", "matched_scores", "photo_scores",
           "seed_folder_frames", "store_frames"]


def seed_folder_frames(root) -> tuple[list[tuple[str, np.ndarray]], dict[str, np.ndarray]]:
    """Frames (stem, RGB) of a seed-layout folder that have true boxes, and the boxes by frame stem."""
    root = Path(root)
    boxes = boxes_by_frame(read_seed_detections(root / "metadata" / "detections.csv"))
    frames = [(stem, read_rgb(root / "frames" / f"{stem}.png")) for stem in sorted(boxes)
              if (root / "frames" / f"{stem}.png").is_file()]
    return frames, boxes


def frames_folder_frames(root) -> tuple[list[tuple[str, np.ndarray]], dict[str, np.ndarray]]:
    """Frames (stem, RGB) of a frames folder with ``labels.csv``, and every box of it (named or not) by stem."""
    root = Path(root)
    named = read_named_boxes(root / "labels.csv")
    boxes = {k: np.stack([b for b, _ in v]).astype(np.float32) for k, v in named.items()}
    frames = [(stem, read_rgb(path)) for stem in sorted(boxes) if (path := frame_file(root, stem)) is not None]
    return frames, boxes


def store_frames(features_path: str, boxes_csv, *, stream: str | None = None):
    """Frames (stem, RGB) of a store stream named by a boxes CSV (seed ``detections.csv`` format), and the boxes.

    Raises
    ------
    ValueError
        The store keeps no frame images, or no frame of the CSV is in the stream.
    """
    # lazy: only a store's frames need the engine's decoder (onnx, PyAV, ~0.9 s) and the store (zarr, ~0.2 s)
    from streamface.ingest.extraction import decode_image
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
    from streamface.engine import box_iou  # lazy: streamface.engine loads onnx and PyAV (~0.9 s)

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
