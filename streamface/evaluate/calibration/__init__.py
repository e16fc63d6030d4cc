"""Calibrate a recognizer's clustering thresholds and a detector's score threshold on labelled data.

One module per job, each importing only the ones above it in this list:

- :mod:`~streamface.evaluate.calibration.sets`: the labelled sets (:class:`LabelledSet`) and
  their loaders: identity folders, seed-layout folders, frames with ``labels.csv``, store
  streams (:func:`load_labelled_set` tells them apart); the folder readers the detector
  calibration shares (:func:`read_rgb`, :func:`padded_photo`, :func:`identity_photos`, ...);
- :mod:`~streamface.evaluate.calibration.clustering`: the clustering sweep: the cut grid, the
  stage's clustering scored at each cut, the plateau rule that chooses the thresholds
  (:func:`choose`), :class:`ClusteringCalibration` and :func:`calibrate_clustering` (the
  module is not named ``sweep``: the package re-exports the function :func:`sweep`);
- :mod:`~streamface.evaluate.calibration.detector`: the detector calibration: true faces
  (:class:`BoxTruth` for frames with boxes, :class:`PhotoTruth` for identity photos),
  :func:`matched_scores`, the rule :func:`detector_threshold`, :class:`DetectorCalibration`
  and :func:`calibrate_detector`;
- :mod:`~streamface.evaluate.calibration.report`: ``calibration.json`` and
  ``calibration.png`` (:func:`write_report`, :func:`plot_calibration`) and the values
  ``--write`` stores (:func:`user_entries`);
- :mod:`~streamface.evaluate.calibration.run`: one ``streamface calibrate`` run
  (:func:`calibrate`, :func:`run_calibration`, :class:`CalibrationRun`, :func:`parse_cuts`,
  :func:`detector_truths`).

Each module's docstring states its rule. Every name stays importable from
``streamface.evaluate.calibration`` (and from the seed-era ``streamface.calibration``).
"""

from streamface.evaluate.calibration.sets import (
    BOX_IOU,
    IMAGE_SUFFIXES,
    LabelledSet,
    default_annotations,
    frame_file,
    frames_folder_set,
    identity_folder_set,
    identity_photos,
    is_frames_folder,
    is_seed_folder,
    load_labelled_set,
    padded_photo,
    read_named_boxes,
    read_rgb,
    read_seed_detections,
    seed_folder_set,
    store_set,
)
from streamface.evaluate.calibration.clustering import (
    DEFAULT_CUTS,
    PLATEAU_TOLERANCE,
    SWEEP_COLUMNS,
    SWEEP_LINKAGE,
    ClusteringCalibration,
    calibrate_clustering,
    choose,
    cut_grid,
    plateau,
    sweep,
)
from streamface.evaluate.calibration.detector import (
    BoxTruth,
    DetectorCalibration,
    DetectorSetResult,
    PhotoTruth,
    box_scores,
    boxes_by_frame,
    calibrate_detector,
    detector_threshold,
    frames_folder_frames,
    matched_scores,
    photo_scores,
    seed_folder_frames,
    store_frames,
)
from streamface.evaluate.calibration.report import plot_calibration, user_entries, write_report
from streamface.evaluate.calibration.run import CalibrationRun, calibrate, detector_truths, parse_cuts, run_calibration

__all__ = [
    # sets
    "BOX_IOU", "IMAGE_SUFFIXES", "LabelledSet", "default_annotations", "frame_file", "frames_folder_set",
    "identity_folder_set", "identity_photos", "is_frames_folder", "is_seed_folder", "load_labelled_set",
    "padded_photo", "read_named_boxes", "read_rgb", "read_seed_detections", "seed_folder_set", "store_set",
    # clustering
    "DEFAULT_CUTS", "PLATEAU_TOLERANCE", "SWEEP_COLUMNS", "SWEEP_LINKAGE", "ClusteringCalibration",
    "calibrate_clustering", "choose", "cut_grid", "plateau", "sweep",
    # detector
    "BoxTruth", "DetectorCalibration", "DetectorSetResult", "PhotoTruth", "box_scores", "boxes_by_frame",
    "calibrate_detector", "detector_threshold", "frames_folder_frames", "matched_scores", "photo_scores",
    "seed_folder_frames", "store_frames",
    # report
    "plot_calibration", "user_entries", "write_report",
    # run
    "CalibrationRun", "calibrate", "detector_truths", "parse_cuts", "run_calibration",
]
