"""What a store holds, per stream: the data behind ``streamface info``.

The JSON form is read by external checks and keeps this shape::

    {"path": str, "version": int,
     "streams": {"<name>": {"frames": int, "faces": int, "embedded": int, "labelled": int,
                            "first_capture": str | null, "last_capture": str | null,
                            "bytes": int, ...}}}

Several stores (rotated stores, a glob) give ``{"paths", "stores": [the above...],
"streams": {name: totals}}`` (:func:`combined_summary`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from streamface.store.store import FaceStore


def _iso(time_us: int) -> str:
    return datetime.fromtimestamp(time_us / 1e6, timezone.utc).isoformat(timespec="microseconds")


def stream_summary(store: FaceStore, name: str) -> dict[str, Any]:
    """Counters, capture time span (ISO 8601, UTC), size and configuration of one stream."""
    stream = store.stream(name)
    span = stream.capture_time_span()
    return {
        "frames": stream.num_frames,
        "faces": stream.num_faces,
        "embedded": stream.num_embedded,
        "labelled": stream.num_labelled,
        "first_capture": None if span is None else _iso(span[0]),
        "last_capture": None if span is None else _iso(span[1]),
        "bytes": store.nbytes(name),
        "crop_size": stream.config.crop_size,
        "aligned_size": stream.config.aligned_size,
        "embedding_model": stream.embedding_model,
        "embedding_dim": stream.embedding_dim,
        "attributes": stream.attribute_names,
        "frame_images": stream.has_images,
    }


def store_summary(store: FaceStore) -> dict[str, Any]:
    """:func:`stream_summary` of every stream, with the store's location and version."""
    return {
        "path": store.location,
        "version": store.version,
        "streams": {name: stream_summary(store, name) for name in store.streams},
    }


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of :func:`store_summary`."""
    header = ("stream", "frames", "faces", "embedded", "labelled", "first capture (UTC)", "last capture (UTC)", "size")
    rows = [header]
    for name, s in summary["streams"].items():
        first = s["first_capture"][:19].replace("T", " ") if s["first_capture"] else "-"
        last = s["last_capture"][:19].replace("T", " ") if s["last_capture"] else "-"
        rows.append((name, str(s["frames"]), str(s["faces"]), str(s["embedded"]), str(s["labelled"]),
                     first, last, _size(s["bytes"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"{summary['path']} (Streamface store v{summary['version']}, {len(summary['streams'])} streams)"]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) if i < 5 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def combined_summary(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Several stores at once (rotated stores of one ingest): each summary and per-stream totals.

    Returns
    -------
    dict
        ``{"paths": [str], "stores": [store_summary...], "streams": {name: {"stores": int,
        "frames", "faces", "embedded", "labelled", "bytes": int (sums),
        "first_capture", "last_capture": str | None (earliest / latest)}}}``
    """
    totals: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        for name, s in summary["streams"].items():
            t = totals.setdefault(name, {"stores": 0, "frames": 0, "faces": 0, "embedded": 0, "labelled": 0,
                                         "first_capture": None, "last_capture": None, "bytes": 0})
            t["stores"] += 1
            for key in ("frames", "faces", "embedded", "labelled", "bytes"):
                t[key] += s[key]
            # ISO 8601 strings in one time zone (UTC) order like the times they name.
            if s["first_capture"] and (t["first_capture"] is None or s["first_capture"] < t["first_capture"]):
                t["first_capture"] = s["first_capture"]
            if s["last_capture"] and (t["last_capture"] is None or s["last_capture"] > t["last_capture"]):
                t["last_capture"] = s["last_capture"]
    return {"paths": [s["path"] for s in summaries], "stores": summaries,
            "streams": dict(sorted(totals.items()))}


def format_combined(combined: dict[str, Any]) -> str:
    """Each store's table of :func:`format_summary`, then the per-stream totals across them."""
    parts = [format_summary(s) for s in combined["stores"]]
    total = {"path": f"total across {len(combined['stores'])} stores", "version": "-",
             "streams": combined["streams"]}
    _, *rows = format_summary(total).splitlines()  # the table without its one-store title line
    parts.append("\n".join([f"total across {len(combined['stores'])} stores "
                            f"({len(combined['streams'])} streams)", *rows]))
    return "\n\n".join(parts)


def locations_summary(arguments) -> tuple[dict[str, Any], bool]:
    """Summary of the stores that ``arguments`` name (see
    :func:`~streamface.store.rotation.expand_store_locations`).

    Returns
    -------
    (dict, bool)
        :func:`store_summary` and False for one store; :func:`combined_summary` and True
        for several.

    Raises
    ------
    StoreError
        A location is not a readable store (the message names it), or a glob matched none.
    """
    from streamface.store.errors import NotAStoreError
    from streamface.store.rotation import expand_store_locations

    locations = expand_store_locations(arguments)
    if not locations:
        raise NotAStoreError(f"no Streamface store matches {' '.join(map(str, arguments))}")
    summaries = [store_summary(FaceStore.open(location, mode="r")) for location in locations]
    if len(summaries) == 1:
        return summaries[0], False
    return combined_summary(summaries), True
