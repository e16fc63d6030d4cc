"""The options of a stream's run, as frozen dataclasses, and the builders of its stages.

``streamface run``, ``capture``, ``extract``, ``analyze`` and ``ingest`` (the CLI, flat click
parameters), ``ingest --config`` (TOML tables, per-stream overrides) and Ray's inference actors
all build their stages here, so that a stream is set up the same way whatever starts it:

- :class:`FrameOptions`: decoding bounds and keyframe rules (stage 1).
- :class:`ExtractionOptions`: detector and face filters (stage 2).
- :class:`AnalysisOptions`: embedding model and attribute heads (stage 3).
- :class:`StreamOptions` (``run``) and :class:`IngestOptions` (``ingest``): the three above and
  what a whole run adds (batching, online index, reconnects, rotation).

Each option is checked once: where a stage checks a parameter (thresholds, batch sizes, the
online index), the stage does, whoever builds it; the dataclasses check, when made, only what
no stage looks at (the decoding bounds, the crop size, reconnects, rotation). :func:`build_ingest` is a module-level function of picklable
arguments: Ray ships it, bound to the store and the options, to each inference actor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from streamface.checks import check_int
from streamface.ingest.config import StreamSpec

__all__ = ["AnalysisOptions", "ExtractionOptions", "FrameOptions", "IngestOptions", "StreamOptions",
           "build_analysis", "build_capture", "build_extraction", "build_ingest", "build_ingest_job",
           "build_pipeline", "options_from", "stream_name"]

#: Rotation periods of ``ingest --rotate`` (streamface.store.rotation).
ROTATIONS = ("none", "day", "hour")


def options_from(cls, params: Mapping):
    """An options dataclass ``cls`` made from the entries of ``params`` named like its fields (the others ignored)."""
    return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be > 0 or None, got {value!r}")


@dataclass(frozen=True)
class FrameOptions:
    """Decoding bounds and keyframe rules (``run``, ``capture``, ``ingest``; see docs/stages.md).

    Parameters
    ----------
    max_frames : int or None, default None
        Stop after this many decoded frames.
    duration : float or None, default None
        Stop after this many seconds (source time for files, wall time for live sources).
    sample_fps : float or None, default None
        Sample frames at this rate instead of decoding keyframes only.
    empty_threshold, blur_threshold, similarity_threshold : float, default 0.95, 50, 0.9
        Keyframe filters (streamface.ingest.keyframes).
    prefer_sharper : bool, default True
        A sharper near-duplicate replaces the last kept frame.
    image_format : {"jpeg", "png"}, default "jpeg"
        Encoding of kept frames.
    """

    max_frames: int | None = None
    duration: float | None = None
    sample_fps: float | None = None
    empty_threshold: float = 0.95
    blur_threshold: float = 50.0
    similarity_threshold: float = 0.9
    prefer_sharper: bool = True
    image_format: str = "jpeg"

    def __post_init__(self) -> None:
        check_int("max_frames", self.max_frames, optional=True)
        _check_positive("duration", self.duration)
        _check_positive("sample_fps", self.sample_fps)


@dataclass(frozen=True)
class ExtractionOptions:
    """Detector, face filters and inference device of stage 2 (streamface.ingest.extraction).

    Parameters
    ----------
    detection : str or None, default None
        Detector name; None: YuNet.
    conf_threshold : float or None, default None
        None: the user's calibration, else the detector's own.
    size_threshold : float, default 0.002
        Smallest box, as a fraction of the frame's area.
    face_blur_threshold : float, default 25.0
        Drop faces whose aligned crop scores this blur or less.
    aligned_size : int, default 128
        Side of the aligned crops.
    device, backend : str, default "auto"
        Where and with what the models run (streamface.engine).
    """

    detection: str | None = None
    conf_threshold: float | None = None
    size_threshold: float = 0.002
    face_blur_threshold: float = 25.0
    aligned_size: int = 128
    device: str = "auto"
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_int("aligned_size", self.aligned_size, minimum=16)


@dataclass(frozen=True)
class AnalysisOptions:
    """Embedding model and attribute heads of stage 3 (streamface.ingest.analysis).

    Parameters
    ----------
    representation : str or None, default None
        Embedding model; None: SFace.
    demographics, expression, mask : str or None, default None
        Attribute heads (skipped with a warning when not installed).
    pose : str or None, default None
        Head pose; None: geometric, from the landmarks.
    device, backend : str, default "auto"
        Where and with what the models run.
    """

    representation: str | None = None
    demographics: str | None = None
    expression: str | None = None
    mask: str | None = None
    pose: str | None = None
    device: str = "auto"
    backend: str = "auto"


@dataclass(frozen=True)
class StreamOptions:
    """Everything ``streamface run`` needs for one stream.

    Parameters
    ----------
    frames, extraction, analysis : FrameOptions, ExtractionOptions, AnalysisOptions
        The three stages' options.
    batch_frames : int, default 8
        Detect, embed and commit the kept frames of every this many decoded frames together.
    index_threshold : float or None, default None
        Online identification's distance threshold; None: off.
    index_metric : {"cosine", "euclidean"}, default "cosine"
        Distance of the online index.
    """

    frames: FrameOptions = field(default_factory=FrameOptions)
    extraction: ExtractionOptions = field(default_factory=ExtractionOptions)
    analysis: AnalysisOptions = field(default_factory=AnalysisOptions)
    batch_frames: int = 8
    index_threshold: float | None = None
    index_metric: str = "cosine"


    @classmethod
    def from_params(cls, params: Mapping):
        """The options of a command's flat parameters (click's names: ``batch_size`` for
        ``batch_frames``, unset meaning the default; entries that are not options ignored).
        Analysis runs on the extraction's ``device`` and ``backend``."""
        own = {f.name: params[f.name] for f in fields(cls)
               if f.name in params and f.name not in ("frames", "extraction", "analysis")}
        if params.get("batch_size") is not None:
            own["batch_frames"] = params["batch_size"]
        return cls(frames=options_from(FrameOptions, params),
                   extraction=options_from(ExtractionOptions, params),
                   analysis=options_from(AnalysisOptions, params), **own)


@dataclass(frozen=True)
class IngestOptions(StreamOptions):
    """``streamface ingest``: :class:`StreamOptions` and what many streams add.

    Parameters
    ----------
    max_wait : float, default 0.05
        Seconds a detector batch waits for frames of other streams after its first.
    max_reconnects : int or None, default None
        Give a live stream up after this many reconnects in a row; None: never.
    rotate : {"none", "day", "hour"}, default "none"
        A new store per period (streamface.store.rotation).
    """

    max_wait: float = 0.05
    max_reconnects: int | None = None
    rotate: str = "none"

    def __post_init__(self) -> None:
        check_int("max_reconnects", self.max_reconnects, minimum=0, optional=True)
        if self.rotate not in ROTATIONS:
            raise ValueError(f"rotate must be one of {ROTATIONS}, got {self.rotate!r}")


def stream_name(name: str | None, source) -> str:
    """``name``, or one made from ``source``: its file (or URL path) stem, cleaned to the
    characters a store group allows; "stream" when nothing is left."""
    if name:
        return name
    stem = PurePosixPath(urlsplit(str(source)).path).stem or "stream"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "stream"


def build_capture(source, store, name: str | None, frames: FrameOptions, batch_size: int):
    """Stage 1 of ``source`` into ``store`` (:class:`~streamface.ingest.capture.StreamCapture`)."""
    from streamface.ingest.capture import StreamCapture
    from streamface.ingest.run import default_output_dir

    return StreamCapture(
        stream_name(name, source), source, default_output_dir(store), batch_size=batch_size,
        empty_threshold=frames.empty_threshold, blur_threshold=frames.blur_threshold,
        similarity_threshold=frames.similarity_threshold, image_format=frames.image_format,
        sample_fps=frames.sample_fps, max_frames=frames.max_frames, duration=frames.duration,
        prefer_sharper=frames.prefer_sharper, store=store)


def build_extraction(store, options: ExtractionOptions, *, input_dir=None, output_dir=None, **kwargs):
    """Stage 2 over ``store`` (:class:`~streamface.ingest.extraction.FaceExtraction`); ``input_dir``
    a folder of photos to import, ``output_dir`` where the seed's layout is exported; ``kwargs``
    the stage's own (name, batch_size, resume...)."""
    from streamface.ingest.extraction import FaceExtraction

    return FaceExtraction(input_dir, output_dir, detection=options.detection,
                          conf_threshold=options.conf_threshold, size_threshold=options.size_threshold,
                          blur_threshold=options.face_blur_threshold,
                          aligned_size=(options.aligned_size, options.aligned_size), device=options.device,
                          backend=options.backend, store=store, **kwargs)


def build_analysis(store, options: AnalysisOptions, **kwargs):
    """Stage 3 over ``store`` (:class:`~streamface.ingest.analysis.FaceAnalysis`)."""
    from streamface.ingest.analysis import FaceAnalysis

    return FaceAnalysis(None, None, representation=options.representation, demographics=options.demographics,
                        expression=options.expression, mask=options.mask, pose=options.pose,
                        device=options.device, backend=options.backend, store=store, **kwargs)


def _analysis_of(options: StreamOptions) -> AnalysisOptions:
    """The fused commands run stage 3 where stage 2 runs (one ``--device``, one ``--backend``)."""
    return replace(options.analysis, device=options.extraction.device, backend=options.extraction.backend)


def build_pipeline(source, store, name: str | None, options: StreamOptions):
    """``streamface run`` of ``source`` (:class:`~streamface.ingest.run.Pipeline`)."""
    from streamface.ingest.run import Pipeline

    capture = build_capture(source, store, name, options.frames, options.batch_frames)
    return Pipeline(capture, build_extraction(store, options.extraction),
                    build_analysis(store, _analysis_of(options)),
                    index_threshold=options.index_threshold, index_metric=options.index_metric)


def _stream_frames(frames: FrameOptions, spec: StreamSpec) -> FrameOptions:
    """A stream's frame options: its config table's overrides over the command line's."""
    return replace(frames, **{k: v for k, v in spec.options.items() if k in FrameOptions.__dataclass_fields__})


def build_ingest(specs: list[StreamSpec], store, options: IngestOptions, *, decode: bool = True):
    """An :class:`~streamface.ingest.multi_stream.Ingest` of ``specs`` into ``store``.

    ``decode=False``: the streams' frames are offered by the caller (Ray's decoder actors)."""
    from streamface.ingest.multi_stream import Ingest
    from streamface.store.rotation import StoreRotation

    captures = [build_capture(s.url, store, s.name, _stream_frames(options.frames, s), 1) for s in specs]
    return Ingest(captures, build_extraction(store, options.extraction),
                  build_analysis(store, _analysis_of(options)), store=store,
                  batch_frames=options.batch_frames, max_wait=options.max_wait,
                  max_reconnects=options.max_reconnects,
                  max_reconnects_by_stream={s.name: s.options["max_reconnects"] for s in specs
                                            if "max_reconnects" in s.options},
                  rotation=None if options.rotate == "none" else StoreRotation(store, options.rotate),
                  index_threshold=options.index_threshold, index_metric=options.index_metric,
                  decode=decode)


def build_ingest_job(specs: list[StreamSpec], store, options: IngestOptions, *, pool=None,
                     groups: int | None = None):
    """``streamface ingest``: :func:`build_ingest` in this process, or with a Ray ``pool`` a
    :class:`~streamface.ingest.ray_streams.RayIngest` whose actors build their group's ingest
    with it (``groups`` inference actors; default: one per GPU, one per node without GPUs)."""
    if pool is None:
        return build_ingest(specs, store, options)
    import functools

    from streamface.ingest.ray_streams import RayIngest

    # Ray workers do not share the driver's working folder: local paths go absolute.
    if "://" not in str(store):
        store = str(Path(store).resolve())
    specs = [replace(s, url=str(Path(s.url).resolve())) if "://" not in s.url and Path(s.url).exists() else s
             for s in specs]
    return RayIngest(specs, functools.partial(build_ingest, store=store, options=options),
                     pool=pool, groups=groups)
