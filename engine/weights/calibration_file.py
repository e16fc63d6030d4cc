"""The user's calibrated defaults: ``<home>/calibration.json`` (``streamface calibrate --write``).

A model's default thresholds come from, first to last (the first that has a value wins):

1. an explicit number passed to the stage, the loader or the CLI;
2. this file, the user's calibration (``streamface calibrate --write``);
3. the registry's shipped value (recognizers: ``ModelSpec.clustering``; detectors: the
   wrapper's ``DEFAULT_CONF_THRESHOLD``);
4. the seed's values (clustering thresholds of a model with neither).

``<home>`` is the model cache root (``$STREAMFACE_HOME`` or ``~/.cache/streamface``).
The file, written atomically (a reader sees the old file or the new one)::

    {
     "format": 1,
     "models": {
      "sface": {"matching_threshold": 0.5, "merging_threshold": 0.6, "min_threshold": 0.55,
                "max_threshold": 0.65, "metric": "cosine", "source": "..."},
      "yunet": {"conf_threshold": 0.85, "source": "..."}
     }
    }

Every key of a model's entry is optional. A file that is not this gives one
:class:`CalibrationFileError` line naming the file (never a silent fallback).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from streamface.atomic_write import atomic_write
from streamface.engine.weights.cache import default_home

__all__ = ["CALIBRATION_FILE", "CLUSTERING_KEYS", "CalibrationFileError", "calibration_path",
           "read_calibration", "user_values", "write_calibration"]

CALIBRATION_FILE = "calibration.json"
FORMAT = 1

#: Recognizer keys (distances in the entry's ``metric``).
CLUSTERING_KEYS = ("matching_threshold", "merging_threshold", "min_threshold", "max_threshold")
#: Detector key: keep detections scoring at least this.
DETECTOR_KEYS = ("conf_threshold",)
_TEXT_KEYS = ("metric", "source")


class CalibrationFileError(ValueError):
    """The user's calibration file is unreadable or malformed (the message names it)."""


def calibration_path(home=None) -> Path:
    """``<home>/calibration.json``; ``home`` defaults to ``$STREAMFACE_HOME`` or ``~/.cache/streamface``."""
    return (Path(home).expanduser() if home is not None else default_home()) / CALIBRATION_FILE


def _check_entry(name: str, entry, where: Path) -> dict:
    if not isinstance(entry, Mapping):
        raise CalibrationFileError(f"{where}: malformed calibration file: models.{name} must be an object")
    out = {}
    for key, value in entry.items():
        if key in _TEXT_KEYS:
            if not isinstance(value, str):
                raise CalibrationFileError(f"{where}: malformed calibration file: models.{name}.{key} "
                                           f"must be a string, got {value!r}")
        elif key in CLUSTERING_KEYS or key in DETECTOR_KEYS:
            high = 1.0 if key in DETECTOR_KEYS else math.inf
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not 0 <= value <= high):
                limits = "in [0, 1]" if key in DETECTOR_KEYS else "a finite number >= 0"
                raise CalibrationFileError(f"{where}: malformed calibration file: models.{name}.{key} "
                                           f"must be {limits}, got {value!r}")
            value = float(value)
        else:
            raise CalibrationFileError(f"{where}: malformed calibration file: unknown key models.{name}.{key} "
                                       f"(known: {', '.join(CLUSTERING_KEYS + DETECTOR_KEYS + _TEXT_KEYS)})")
        out[key] = value
    return out


def read_calibration(home=None) -> dict[str, dict]:
    """The user's calibrated values by model name; ``{}`` when there is no file.

    Raises
    ------
    CalibrationFileError
        The file exists but is not valid (one line naming the file and the problem).
    """
    path = calibration_path(home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationFileError(f"{path}: cannot read the calibration file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationFileError(f"{path}: malformed calibration file (not JSON: {exc}); "
                                   f"fix it or delete it") from None
    if not isinstance(data, Mapping) or data.get("format") != FORMAT or not isinstance(data.get("models"), Mapping):
        raise CalibrationFileError(f"{path}: malformed calibration file: expected an object with "
                                   f'"format": {FORMAT} and "models": {{name: {{...}}}}')
    return {str(name): _check_entry(str(name), entry, path) for name, entry in data["models"].items()}


def user_values(model: str | None, home=None) -> dict:
    """The user's calibrated values of ``model`` (possibly ``{}``)."""
    if not model:
        return {}
    return read_calibration(home).get(str(model), {})


def write_calibration(entries: Mapping[str, Mapping], home=None) -> Path:
    """Set ``entries`` (``{model: {key: value}}``) in the user's file, keeping other models; return its path.

    A model's entry replaces the one stored before. Refuses (:class:`CalibrationFileError`)
    to overwrite a malformed file, so nothing a user wrote by hand is lost silently.
    """
    path = calibration_path(home)
    models = read_calibration(home)
    for name, entry in entries.items():
        models[str(name)] = _check_entry(str(name), entry, path)
    text = json.dumps({"format": FORMAT, "models": models}, indent=1, sort_keys=True) + "\n"
    atomic_write(path, text.encode("utf-8"))
    return path
