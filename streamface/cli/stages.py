"""``run``, ``ingest``, ``capture``, ``extract``, ``analyze``: streams and photos into a store
(streamface.ingest). The commands parse, build with :mod:`streamface.ingest.options` and show progress."""

from __future__ import annotations

import click

from streamface.cli.common import (
    PipelineErrors,
    check_thresholds,
    executor_for,
    exit_for,
    progress_bar,
    ray_option,
    say_metrics_url,
)
from streamface.cli.options import (
    analysis_options,
    backend_option,
    batch_size_option,
    capture_options,
    extraction_options,
    frame_options,
    index_options,
    progress_option,
)
from streamface.ops.structured_logs import log_options
from streamface.ops.telemetry import metrics_options

__all__ = ["analyze", "capture", "extract", "ingest", "run"]


@click.command("run")
@click.argument("source")
@click.option("--store", "store", required=True, type=click.Path(), help="Face store (created if missing).")
@capture_options
@batch_size_option("Detect, embed and commit the kept frames of every this many decoded frames "
                    "together [default: 8].")
@extraction_options
@analysis_options
@index_options
@progress_option
@log_options
@metrics_options
def run(source, store, name, progress, log_config, metrics_address, **params) -> None:
    """Capture, extract and analyze faces of SOURCE into STORE in one pass.

    SOURCE is a video file, an http(s)/HLS URL, an rtsp/rtmp URL, or a page URL
    (YouTube...) resolved through yt-dlp. A file is read to its end; a live source runs
    until --duration, --max-frames or Ctrl-C (which commits what was processed).
    Running again on the same stream continues after its last stored frame.
    """
    import time

    from streamface.ingest.options import StreamOptions, build_pipeline
    from streamface.ingest.run import stop_on_signals, stream_outcome
    from streamface.ops.malloc_tuning import fix_mmap_threshold
    from streamface.ops.monitoring import Monitoring

    check_thresholds(params["index_metric"], index_threshold=params["index_threshold"])
    if "://" in source:  # a live source may run for weeks (see `streamface ingest --help`)
        fix_mmap_threshold()
    with PipelineErrors():
        # The stream name is checked here, before a log or status file is named after it.
        pipeline = build_pipeline(source, store, name, StreamOptions.from_params(params))
        capture = pipeline.capture
        with progress_bar(progress, "run") as bar, stop_on_signals(pipeline.stop) as signals, \
                Monitoring(store, [capture.name], log_config=log_config,
                           metrics_address=metrics_address) as monitoring:
            started = time.monotonic()
            say_metrics_url(monitoring)

            def on_frame(stats, counts, faces):
                monitoring.record_frame(capture.name, stats, counts, faces)
                if capture.length_s:  # a file: seconds read of its length, so the time left shows
                    if bar.total is None:
                        bar.total, bar.unit = round(capture.length_s, 1), "s"
                    bar.update(round(capture.position_s, 1) - bar.n)
                else:
                    bar.update(1)
                bar.set_postfix(keyframes=counts.kept, faces=faces,
                                fps=f"{stats.yielded / max(time.monotonic() - started, 1e-9):.1f}",
                                refresh=False)

            summary = pipeline.call(on_frame=on_frame)
            c = summary.capture
            if bar.total and c.truncated is None and not c.interrupted:
                bar.update(bar.total - bar.n)  # read to its end (the last pts is a frame short of it)
            monitoring.record_run(summary)
            monitoring.finish({capture.name: stream_outcome(signals, c.truncated)})
    click.echo(summary.line())
    exit_for(signals, truncated=summary.capture.truncated is not None)


@click.command("ingest")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="TOML file of [[stream]] tables (name, url; optional sample_fps, max_frames, "
              "duration, max_reconnects).")
@click.option("--source", "sources", multiple=True, metavar="NAME=URL",
              help="A stream to ingest (repeatable; adds to --config's).")
@click.option("--store", "store", required=True, type=click.Path(), help="Face store (created if missing).")
@frame_options
@batch_size_option("Kept frames per detector batch, from all streams together [default: 8].")
@extraction_options
@analysis_options
@index_options
@click.option("--max-wait", type=click.FloatRange(min=0), default=0.05,
              help="Seconds a detector batch waits for frames of other streams after its first.")
@click.option("--max-reconnects", type=click.IntRange(min=0), default=None,
              help="Give a live stream up after this many reconnects in a row without a frame "
              "[default: never].")
@click.option("--rotate", type=click.Choice(["none", "day", "hour"]), default="none",
              help="A new store per period (UTC), named from --store: news.zarr -> news-2026-11-28.zarr; "
                   "`streamface info news.zarr` sums them.")
@progress_option
@log_options
@metrics_options
@ray_option
@click.option("--ray-groups", type=click.IntRange(min=1), default=None,
              help="With --ray: inference actors, each batching the kept frames of the streams "
                   "placed on it (every stream has its own decoder actor on the same node) "
                   "[default: one per GPU, one per node without GPUs].")
def ingest(config, sources, store, progress, log_config, metrics_address, ray_address, ray_groups,
           **params) -> None:
    """Capture, extract and analyze faces of several streams into STORE in one process.

    One decoder per stream, one batcher filling detector batches (--batch-size frames
    [default: 8]) with the kept frames of all streams, the models loaded once, one
    store group per stream. A failing stream never stops the others; exit status 1
    when any stream failed. Ctrl-C commits what was processed; running again
    continues every stream after its last stored frame. With --ray, each stream's
    decoder is a Ray actor beside the inference actor that batches its node's streams.

    Buffers of 1 MiB and more (decoded frames) are allocated straight from the system
    and returned to it when freed, so that memory does not creep over a long run (see
    streamface.ops.malloc_tuning; set MALLOC_MMAP_THRESHOLD_ to choose otherwise).
    """
    from streamface.ingest.config import stream_specs
    from streamface.ingest.options import IngestOptions, build_ingest_job
    from streamface.ingest.run import stop_on_signals, stream_outcome
    from streamface.ops.malloc_tuning import fix_mmap_threshold
    from streamface.ops.monitoring import Monitoring

    check_thresholds(params["index_metric"], index_threshold=params["index_threshold"])
    fix_mmap_threshold()
    with PipelineErrors(), executor_for(ray_address) as pool:
        job = build_ingest_job(stream_specs(config, sources), store, IngestOptions.from_params(params),
                               pool=pool, groups=ray_groups)
        with progress_bar(progress, "ingest") as bar, stop_on_signals(job.stop) as signals, \
                Monitoring(store, job.stream_names, log_config=log_config,
                           metrics_address=metrics_address) as monitoring:
            say_metrics_url(monitoring)

            def on_progress(counters):
                monitoring.record(counters, job.queue_depth)
                bar.update(sum(c.frames for c in counters) - bar.n)
                bar.set_postfix_str(" ".join(f"{c.name}={c.keyframes}k/{c.faces}f" + ("!" if c.error else "")
                                             for c in counters), refresh=False)

            summary = job.call(on_progress=on_progress, on_batch=monitoring.record_batch)
            monitoring.finish({s.name: stream_outcome(signals, getattr(s, "truncated", None), s.error)
                               for s in summary.streams})
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        click.echo(f"Error: {len(summary.failed)} of {len(summary.streams)} streams failed: "
                   + ", ".join(s.name for s in summary.failed), err=True)
    exit_for(signals, failed=bool(summary.failed), truncated=bool(summary.truncated))


@click.command("capture")
@click.argument("source")
@click.option("--store", "store", required=True, type=click.Path(), help="Face store (created if missing).")
@capture_options
@batch_size_option("Commit the kept frames of every this many decoded frames [default: 50].")
@progress_option
def capture(source, store, name, batch_size, progress, **params) -> None:
    """Keep the distinct, sharp keyframes of SOURCE in STORE (stage 1 alone).

    Exit status as run's: 130 after Ctrl-C (143 SIGTERM), 4 when a file was cut short
    (what decoded is stored), else 0."""
    from streamface.ingest.options import FrameOptions, build_capture, options_from
    from streamface.ingest.run import stop_on_signals

    with PipelineErrors():
        stage = build_capture(source, store, name, options_from(FrameOptions, params), batch_size or 50)
        with progress_bar(progress, "capture") as bar, stop_on_signals(stage.stop) as signals:
            def on_frame(stats, counts):
                bar.update(1)
                bar.set_postfix(keyframes=counts.kept, refresh=False)

            summary = stage.call(on_frame=on_frame)
    click.echo(summary.line())
    exit_for(signals, truncated=summary.truncated is not None)


@click.command("extract")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--store", "store", type=click.Path(file_okay=False), default=None,
              help="With a folder of photos as SOURCE (any names and formats, nested folders): the store "
                   "to import them into, one frame each, and extract (created if missing) "
                   "[default: SOURCE is the store].")
@click.option("--stream", "name", default=None,
              help="Only this stream [default: all]; for photos, the stream they go to [default: the folder's name].")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Frames per detection batch and commit.")
@extraction_options
@click.option("--crops", is_flag=True, default=False,
              help="The photos are face crops: a photo without a face, even padded onto a larger canvas, "
                   "is taken whole as the face (recorded as a fallback).")
@click.option("--labels-from-folders", is_flag=True, default=False,
              help="Record each photo's sub-folder as its known identity (ground truth for evaluate-clusters).")
@click.option("--export", "outdir", type=click.Path(file_okay=False), default=None,
              help="Also write the seed's faces/, aligned_faces/ and metadata/ here.")
@click.option("--resume/--no-resume", default=True, help="Continue after the last frame with faces.")
def extract(source, store, name, batch_size, crops, labels_from_folders, outdir, resume, **params) -> None:
    """Detect, crop, align and match the faces of SOURCE's kept frames (stage 2 alone).

    SOURCE is a store, or with --store a folder of photos (or of seed frames). Exit
    status 1 when a file could not be read (each named in one line; the rest are stored).
    """
    from pathlib import Path

    from streamface.ingest.options import ExtractionOptions, build_extraction, options_from

    if store is None and not (Path(source) / "zarr.json").is_file():
        raise click.ClickException(f"{source} is not a face store; to extract the faces of a folder of "
                                   f"photos, give the store to put them in: --store PATH")
    with PipelineErrors():
        stage = build_extraction(store or source, options_from(ExtractionOptions, params),
                                 input_dir=source if store is not None else None, output_dir=outdir,
                                 name=name, batch_size=batch_size, resume=resume, export=outdir is not None,
                                 crops=crops, labels_from_folders=labels_from_folders)
        summary = stage.call()
    for message in summary.unreadable:
        click.echo(f"skipped {message}", err=True)
    for file in summary.no_face:
        click.echo(f"no face: {file}", err=True)
    click.echo(summary.line())
    if summary.unreadable:
        raise click.ClickException(f"{len(summary.unreadable)} files could not be read (named above); "
                                   f"the others are stored")


@click.command("analyze")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--stream", "name", default=None, help="Only this stream [default: all].")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, help="Faces per batch and commit.")
@analysis_options
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@backend_option
@click.option("--resume/--no-resume", default=True, help="Continue after the last analysed face.")
@ray_option
def analyze(store, name, batch_size, resume, ray_address, **params) -> None:
    """Embed and describe the faces of STORE (stage 3 alone).

    With --ray, batches are computed by Ray workers that read STORE themselves (a
    path every node sees, or a URL); this process commits them in order.
    """
    from pathlib import Path

    from streamface.ingest.options import AnalysisOptions, build_analysis, options_from

    with PipelineErrors(), executor_for(ray_address) as executor:
        location = store if executor is None else str(Path(store).resolve())
        summary = build_analysis(location, options_from(AnalysisOptions, params), name=name,
                                 batch_size=batch_size, resume=resume, executor=executor).call()
    click.echo(summary.line())


