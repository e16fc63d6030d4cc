"""What every group of commands shares: errors as one line, ``--ray``, ``--metric``, progress
bars and the exit status of the stream commands. Presentation only: no stage logic here."""

from __future__ import annotations

import sys

import click

__all__ = ["THRESHOLD_NOTE", "PipelineErrors", "StageErrors", "check_thresholds", "error_text", "executor_for",
           "exit_for", "metric_option", "progress_bar", "ray_option", "say_metrics_url"]

THRESHOLD_NOTE = "default: the embedding model's calibrated value (see --model)"


class StageErrors:
    """Turn a stage's expected errors into one clear line and a non-zero exit (no traceback)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and isinstance(exc, (ValueError, FileNotFoundError, KeyError, OSError)):
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise click.ClickException(str(message)) from None
        return False


class PipelineErrors:
    """Bad sources, stores and models: one clear line and exit status 1 (no traceback)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from streamface.engine import EngineError
        from streamface.store import StoreError

        if exc is not None and isinstance(exc, (EngineError, StoreError, ValueError, OSError)):
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        return False


def error_text(exc: Exception) -> str:
    """An exception's message as it was written: a plain KeyError's ``str`` adds quotes
    around it, which stripping would take from a name quoted at its end as well."""
    if type(exc) is KeyError and len(exc.args) == 1:
        return str(exc.args[0])
    return str(exc)


def ray_option(func):
    """``--ray [ADDRESS]``: run the command's independent pieces as Ray tasks."""
    return click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
                        metavar="[ADDRESS]",
                        help="Run on Ray: --ray alone starts a local Ray instance; --ray auto or "
                             "--ray HOST:PORT joins a cluster (needs the [ray] extra) "
                             "[default: this process only].")(func)


class executor_for:  # noqa: N801 (used as a context manager, like open)
    """The executor ``--ray`` asks for: a RayPool, or this process; Ray errors as one line."""

    def __init__(self, ray_address: str | None) -> None:
        self.ray_address = ray_address
        self.pool = None

    def __enter__(self):
        from streamface.ops.ray_pool import RayPool, RayUnavailableError

        if self.ray_address is None:
            return None
        self.pool = RayPool(None if self.ray_address == "local" else self.ray_address)
        try:
            return self.pool.__enter__()
        except RayUnavailableError as exc:
            raise click.ClickException(str(exc)) from None

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.__exit__(*exc)


#: Distances with a bounded range: a threshold outside it cuts nothing (every face in one
#: cluster, or each alone) and is refused.
METRIC_RANGES = {"cosine": (0.0, 2.0), "correlation": (0.0, 2.0)}


def check_thresholds(metric: str, **thresholds: float | None) -> None:
    """Refuse a distance threshold outside ``metric``'s range (cosine: [0, 2]) in one line
    naming its option."""
    low, high = METRIC_RANGES.get(metric, (0.0, float("inf")))
    for option, value in thresholds.items():
        if value is not None and not low <= value <= high:
            raise click.BadParameter(f"{value:g} is outside the range of the {metric} distance, "
                                     f"[{low:g}, {high:g}]", param_hint=f"'--{option.replace('_', '-')}'")


def metric_option(func):
    """``--metric``: the distance between embeddings."""
    from streamface.identify.features import METRICS

    return click.option("--metric", type=click.Choice(METRICS), default="cosine",
                        help="Distance between embeddings.")(func)


def progress_bar(show: bool | None, desc: str):
    """A tqdm bar on stderr; ``show`` None: when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(desc=desc, unit="frame", disable=not (sys.stderr.isatty() if show is None else show))


def say_metrics_url(monitoring) -> None:
    """Name the Prometheus endpoint of ``--metrics-port`` on stderr."""
    if monitoring.metrics_url is not None:
        click.echo(f"metrics: {monitoring.metrics_url}", err=True)


def exit_for(signals, *, failed: bool = False, truncated: bool = False) -> None:
    """Leave with run's and ingest's exit status (streamface.ingest.run.exit_status): 130 after
    SIGINT (143 SIGTERM), 1 when a stream failed, 4 when a file was cut short, else 0."""
    from streamface.ingest.run import exit_status

    status = exit_status(signals, failed=failed, truncated=truncated)
    if signals.received is not None:
        click.echo(f"interrupted by {signals.name}: what was processed is stored; "
                   "run the same command again to continue", err=True)
    if status:
        click.get_current_context().exit(status)
