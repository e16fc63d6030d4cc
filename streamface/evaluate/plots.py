"""Figures of the evaluation stages, saved as PNG (matplotlib's Agg canvas: no window, no pyplot state).

- :func:`plot_distance_distributions`: histograms of per-face kNN distance
  statistics (stage 4, one panel per group of curves).
- :func:`plot_class_sizes`: faces per cluster label (stage 6).
- :func:`plot_membership`: how many clusters have how many faces, in the seed's
  bins 1, 2, 6, 10..90, 100..900, ... (stage 6).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["membership_bins", "new_figure", "plot_class_sizes", "plot_distance_distributions", "plot_membership",
           "save_figure"]


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.4, 4.8)):
    """A Matplotlib figure of ``size`` inches drawn off screen (no pyplot state, safe in threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder made if missing); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")
    return path


def plot_distance_distributions(panels: dict[str, dict[str, np.ndarray]], path: str | os.PathLike, *,
                                title: str, xlabel: str, value_range: tuple[float, float] = (0.0, 2.0),
                                bins: int = 50, dpi: int = 150) -> Path:
    """Normalised histograms of distance samples, one panel per key of ``panels``.

    Parameters
    ----------
    panels : dict of {str: dict of {str: ndarray, shape (n,)}}
        Panel title -> curve name -> distances.
    path : path
        PNG written.
    title, xlabel : str
    value_range : (float, float), default (0, 2)
    bins : int, default 50
    dpi : int, default 150

    Returns
    -------
    Path
    """
    n = max(1, len(panels))
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = new_figure(size=(4.0 * cols + 1.0, 3.2 * rows + 0.6))
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    mids = (edges[1:] + edges[:-1]) / 2
    axes = []
    for k, (panel, curves) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, k + 1, sharex=axes[0] if axes else None)
        axes.append(ax)
        for name, values in curves.items():
            values = np.asarray(values, np.float64)
            hist, _ = np.histogram(values[np.isfinite(values)], edges)
            share = hist / hist.sum() if hist.sum() else hist.astype(np.float64)
            ax.bar(mids, share, width=0.9 * (edges[1] - edges[0]), alpha=0.35)
            ax.plot(mids, share, lw=1.5, label=name)
        ax.set_xlim(value_range)
        if len(panels) > 1:
            ax.set_title(panel, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("Probability", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path, dpi)


def plot_class_sizes(labels: np.ndarray, path: str | os.PathLike, *, name: str, dpi: int = 150) -> Path:
    """Faces per cluster label (labels >= 0), as a line over the labels.

    Returns
    -------
    Path
    """
    counts = np.bincount(np.asarray(labels)[np.asarray(labels) >= 0])
    fig = new_figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(np.arange(len(counts)), counts, label=name)
    ax.set(title=f"Class Distribution - {name}", xlabel="Class Label", ylabel="Number of Faces")
    return save_figure(fig, path, dpi)


def membership_bins(max_size: int) -> np.ndarray:
    """The seed's bin edges for cluster sizes: 1, 2, 6, 10..90, 100..900, 1000..9000, 10000..90000, max.

    Edges above ``max_size`` are dropped; at least two edges are returned ([1, 2] when all clusters are single faces).
    """
    edges = [1, 2, 6, *range(10, 99, 10), *range(100, 999, 100), *range(1000, 9999, 1000),
             *range(10000, 99999, 10000), int(max_size)]
    edges = np.array(sorted(set(edges)))
    edges = edges[edges <= max_size]
    return edges if len(edges) >= 2 else np.array([1, 2])


def plot_membership(labels: np.ndarray, path: str | os.PathLike, *, name: str, dpi: int = 150) -> Path:
    """Number of clusters per size bin (the seed's bins, see :func:`membership_bins`).

    Returns
    -------
    Path
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels >= 0])
    counts = counts[counts > 0]
    fig = new_figure()
    ax = fig.add_subplot(1, 1, 1)
    if counts.size:
        edges = membership_bins(int(counts.max()))
        hist = np.append(np.histogram(counts, edges)[0], 0)
        ax.bar(np.arange(len(hist)), height=hist, width=0.95, align="edge", tick_label=[str(e) for e in edges])
        ax.xaxis.set_tick_params(rotation=90)
    ax.set(title=f"Membership Distribution - {name}", xlabel="Number of Faces", ylabel="Number of Classes")
    return save_figure(fig, path, dpi)
