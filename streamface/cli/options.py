"""The click options the stream commands share (run, ingest, capture, extract, analyze).

Their names are the fields of :mod:`streamface.ingest.options`, whose dataclasses take the
parsed values (``StreamOptions.from_params``): an option's default and its meaning are said
once, here for the command line and there for Python.
"""

from __future__ import annotations

import click

__all__ = ["analysis_options", "backend_option", "batch_size_option", "capture_options", "extraction_options",
           "frame_options", "index_options", "progress_option"]


def progress_option(func):
    """``--progress/--no-progress``."""
    return click.option("--progress/--no-progress", default=None,
                        help="Progress bar (default: when stderr is a terminal).")(func)


def capture_options(func):
    """``--name`` and the frame options: what stage 1 needs."""
    return click.option("--name", default=None, help="Stream name (store group and file prefix); "
                        "default: the source's file stem, cleaned.")(frame_options(func))


def batch_size_option(help_text: str):
    """``--batch-size``: each command says what it batches and its own default."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=None, help=help_text)


def frame_options(func):
    """Decoding bounds and keyframe rules, shared by capture, run and ingest."""
    options = [
        click.option("--max-frames", type=click.IntRange(min=1), default=None,
                     help="Stop after this many decoded frames."),
        click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Stop after this many seconds (source time for files, wall time for live)."),
        click.option("--sample-fps", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Sample frames at this rate instead of decoding keyframes only."),
        click.option("--empty-threshold", type=click.FloatRange(0, 1), default=0.95,
                     help="Drop frames with more non-edge pixels than this."),
        click.option("--blur-threshold", type=click.FloatRange(min=0), default=50.0,
                     help="Drop frames whose blur score (seed formula) is below this."),
        click.option("--similarity-threshold", type=click.FloatRange(0, 1), default=0.9,
                     help="Drop frames more similar than this to the last kept frame."),
        click.option("--prefer-sharper/--seed-selection", default=True,
                     help="Let a sharper near-duplicate replace the last kept frame (see streamface.ingest.keyframes)."),
        click.option("--image-format", type=click.Choice(["jpeg", "png"]), default="jpeg",
                     help="Encoding of kept frames."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


backend_option = click.option(
    "--backend", type=click.Choice(["auto", "ort", "tensorrt", "torch"]), default="auto",
    help="Inference backend. auto on a GPU: TensorRT (the [tensorrt] extra), then ONNX Runtime CUDA "
         "(onnxruntime-gpu), then torch CUDA (the [torch] extra); else ONNX Runtime on the CPU. "
         "tensorrt builds an engine per model, GPU and TensorRT version on first use and caches it "
         "(`streamface models list` shows which backend auto runs and the plans built).")


def extraction_options(func):
    """Detector, face filters, device and backend of stage 2 (streamface.ingest.options.ExtractionOptions)."""
    options = [
        click.option("--detection", type=click.Choice(["yunet", "retinaface", "centerface", "scrfd"]),
                     default=None, help="Face detector [default: yunet]."),
        click.option("--conf-threshold", type=click.FloatRange(0, 1), default=None,
                     help="Keep faces scoring above this [default: your calibration, else the detector's own, "
                          "YuNet 0.86; see `streamface models list`]."),
        click.option("--size-threshold", type=click.FloatRange(min=0), default=0.002,
                     help="Keep faces whose box covers more than this fraction of the frame (0.002: 64 px "
                          "faces at 1080p, 43 px at 720p; the seed's 0.005 dropped people in wide TV shots)."),
        click.option("--face-blur-threshold", type=click.FloatRange(min=0), default=25.0,
                     help="Drop faces whose aligned crop scores this blur or less."),
        click.option("--aligned-size", type=click.IntRange(min=16), default=128,
                     help="Side of the aligned crops."),
        click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N."),
        backend_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def analysis_options(func):
    """Embedding model and heads of stage 3 (streamface.ingest.options.AnalysisOptions)."""
    options = [
        click.option("--representation", type=click.Choice(["sface", "arcface", "arcfacenet"]), default=None,
                     help="Embedding model [default: sface]."),
        click.option("--demographics", type=click.Choice(["fairface", "agegender", "age", "gender"]),
                     default=None, help="Age/gender/race heads (skipped with a warning if not installed)."),
        click.option("--expression", type=click.Choice(["dfemotion"]), default=None, help="Expression head."),
        click.option("--mask", type=click.Choice(["chandrikanet"]), default=None, help="Mask head."),
        click.option("--pose", type=click.Choice(["geometric", "whenet"]), default=None,
                     help="Head pose [default: geometric, from the landmarks]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def index_options(func):
    """Online identification options of run and ingest."""
    options = [
        click.option("--index-threshold", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Online identification: insert every new face into a hierarchical retrieval "
                     "index (one per stream) with this distance threshold and store its live label "
                     "[default: off]."),
        click.option("--index-metric", type=click.Choice(["cosine", "euclidean"]), default="cosine",
                     help="Distance of the online index."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
