"""``info``, ``status``, ``export``: what a store holds, who is writing it, the seed's layout of it."""

from __future__ import annotations

import click

__all__ = ["export", "info", "status"]


@click.command("info")
@click.argument("stores", nargs=-1, required=True, metavar="STORE...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"streams\": {name: {frames, faces, ...}}}; "
              "several stores: {\"paths\", \"stores\": [...], \"streams\": totals}.")
def info(stores: tuple[str, ...], as_json: bool) -> None:
    """Show what a face STORE holds, per stream; several stores, with totals across them.

    STORE is a local directory or an fsspec URL (e.g. memory://x.zarr, s3://bucket/x.zarr),
    a glob ('news-*.zarr'), or the base name of rotated stores (news.zarr for
    news-2026-11-28.zarr, news-2026-11-29.zarr...). Prints frames, faces, faces with
    embeddings, faces with labels, the capture time span (UTC) and the bytes on disk of
    every stream.
    """
    import json

    from streamface.store import StoreError
    from streamface.store.summary import format_combined, format_summary, locations_summary

    try:
        summary, several = locations_summary(stores)
    except (StoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    text = format_combined(summary) if several else format_summary(summary)
    click.echo(json.dumps(summary, indent=2) if as_json else text)


@click.command("status")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {stream, state, age_s, counters, ...}.")
@click.option("--stale-after", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds after which a snapshot counts as stale [default: 3 of its writing intervals, "
              "at least 10].")
def status(store: str, as_json: bool, stale_after: float | None) -> None:
    """Show the live counters of the runs and ingests writing STORE, per stream.

    STORE as given to `run` or `ingest` (its base name when stores rotate). Every stream
    ever written into STORE is listed, in one of these states: running; stale (no update
    for --stale-after seconds: hung or cut off); not running (its process is gone
    without a last word: killed or crashed); finished (read to its end or bound);
    interrupted (Ctrl-C or SIGTERM: what was processed is stored, run again to
    continue); truncated (its file was cut short: what decoded is stored); failed (the
    note says why). "dropped" counts the kept frames of a live source that inference
    could not keep up with. Exit status: 0 when every stream is running or finished,
    3 when one is in any other state, 1 when no run wrote a status for STORE.
    """
    import json

    from streamface.ops.live_status import HEALTHY, format_status, read_status

    try:
        reports = read_status(store, stale_after=stale_after)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not reports:
        raise click.ClickException(f"{store}: not running (no ingest status was written for this store)")
    click.echo(json.dumps([r.to_json() for r in reports], indent=2) if as_json else format_status(store, reports))
    if any(r.state not in HEALTHY for r in reports):
        click.get_current_context().exit(3)


@click.command("export")
@click.argument("store")
@click.argument("stream")
@click.argument("outdir", type=click.Path(file_okay=False, writable=True))
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal).")
@click.option("--compress-level", type=click.IntRange(0, 9), default=6,
              help="PNG compression; 6 is the seed's (identical files), 1 is ~3x faster.")
def export(store: str, stream: str, outdir: str, progress: bool | None, compress_level: int) -> None:
    """Export STREAM of STORE to OUTDIR in the seed's layout.

    Writes faces/*.png, aligned_faces/*.png, metadata/detections.csv and
    metadata/matches.csv (and frames/ when frames were kept).
    """
    from streamface.store import FaceStore, StoreError
    from streamface.store.export import export_seed_layout

    try:
        source = FaceStore.open(store, mode="r").stream(stream)
        result = export_seed_layout(source, outdir, progress=progress, compress_level=compress_level)
    except (StoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"exported {result.faces} faces, {result.matches} matches, {result.frames} frames "
               f"of {stream!r} to {result.outdir}")
