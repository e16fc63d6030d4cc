"""Plain-text table of the registry and the cache (``streamface models list``)."""

from __future__ import annotations

from collections.abc import Sequence

from streamface.engine.models.cache import ModelStatus


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
