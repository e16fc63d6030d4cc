"""One calibration run, what ``streamface calibrate`` does: check the models and sources, load the
labelled sets and the detector sets (:func:`detector_truths`), sweep the clustering and calibrate
each detector (:func:`run_calibration`).

The public data the shipped clustering values come from: ``identities/johns``,
``identities/orl``, ``skynews`` and ``tv/fotb`` under ``../shared/data`` (see
``benchmarks/calibrate_clustering.py``); the detector thresholds: the first three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamface.evaluate.calibration.detector import (
    BoxTruth,
    DetectorCalibration,
    PhotoTruth,
    calibrate_detector,
    frames_folder_frames,
    seed_folder_frames,
    store_frames,
)
from streamface.evaluate.calibration.sets import identity_photos, is_frames_folder, is_seed_folder, load_labelled_set
from streamface.evaluate.calibration.clustering import ClusteringCalibration, calibrate_clustering, cut_grid
from streamface.evaluate.calibration.report import user_entries, write_report
from streamface.identify.features import split_store_path

__all__ = ["CalibrationRun", "calibrate", "detector_truths", "parse_cuts", "run_calibration"]


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
    #: Files of the report (:func:`calibrate`): calibration.json, calibration.png.
    written: list[Path] = field(default_factory=list)
    #: The chosen values by model (:func:`~streamface.evaluate.calibration.report.user_entries`).
    entries: dict = field(default_factory=dict)
    #: The user's calibration file they were stored in (``write=True``), else None.
    stored: Path | None = None


def _check_models(model: str, detectors) -> None:
    from streamface.engine import ModelError  # lazy: the engine loads onnx and PyAV (~0.9 s)
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
    from streamface.engine import load_detector, load_recognizer  # lazy: the engine loads onnx and PyAV (~0.9 s)
    from streamface.engine.model_zoo import DETECTORS
    from streamface.engine.weights.registry import DEFAULT_RECOGNIZER, get_spec

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


def calibrate(sources, *, output, write: bool = False, home=None, **kwargs) -> CalibrationRun:
    """``streamface calibrate``: :func:`run_calibration`, its report written to ``output`` and,
    with ``write``, the chosen values stored as the user's defaults (``<home>/calibration.json``).

    ``kwargs`` are :func:`run_calibration`'s (model, detectors, cuts, what, target_recall, ...).
    """
    from streamface.engine.weights.calibration_file import write_calibration  # lazy: see run_calibration

    result = run_calibration(sources, home=home, **kwargs)
    result.written = write_report(output, result.clustering, result.detectors)
    result.entries = user_entries(result.clustering, result.detectors)
    if write and result.entries:
        result.stored = write_calibration(result.entries, home)
    return result
