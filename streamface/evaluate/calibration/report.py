"""The calibration report: ``calibration.json``, the sweep's figure ``calibration.png``, and the
values ``streamface calibrate --write`` stores (:func:`user_entries`)."""

from __future__ import annotations

from pathlib import Path

from streamface.evaluate.calibration.clustering import SWEEP_LINKAGE, ClusteringCalibration
from streamface.evaluate.plots import new_figure, save_figure
from streamface.identify.annotations import write_json

__all__ = ["plot_calibration", "user_entries", "write_report"]


def plot_calibration(result: ClusteringCalibration, path, *, dpi: int = 120) -> Path:
    """BCubed F (solid) and pairwise F (dashed) against the cut, per set, their mean and the worst set's
    BCubed F (what the choice maximises); the choice marked."""
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
