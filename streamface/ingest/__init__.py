"""Capture and ingest: from a video or stream to frames, faces and embeddings in the store.

=================  ==========================================================================
``capture``        stage 1: a source's keyframes into the store (:class:`StreamCapture`)
``keyframes``      the seed's keyframe rules (:class:`KeyframeSelector`)
``extraction``     stage 2: faces of the stored keyframes (:class:`FaceExtraction`)
``analysis``       stage 3: embeddings and attributes of stored faces (:class:`FaceAnalysis`)
``photos``         folders of photos: reading any image, finding the face of a close crop
``file_source``    facts about a local video file its decoding alone does not give
``loop``           the one decode-and-select loop every stream runs
``session``        one stream's store side: writer, resume point, track memory, online index
``run``            ``streamface run``: one source, the three stages fused (:class:`Pipeline`)
``multi_stream``   ``streamface ingest``: many streams, one batcher, the models loaded once
``counters``       what each stream of an ingest did (live counters, the summary)
``ray_streams``    ``streamface ingest --ray``: the streams as Ray actors
``placement``      where ``--ray`` runs each stream (actors over nodes, streams over actors)
``config``         the streams of an ingest (TOML ``[[stream]]`` tables, ``NAME=URL``)
``options``        the command-line options of run and ingest as frozen dataclasses
``batch_commit``   one batch of a stream as one store commit
``commit_queue``   store writes behind the inference, in order, on their own thread
=================  ==========================================================================

``from streamface.ingest import Ingest`` (and the other names of :mod:`.multi_stream`) keeps
working as it did when this package was one module.
"""

from importlib import import_module

#: The names the module ``streamface.ingest`` had before it became this package.
MULTI_STREAM_NAMES = ("FrameTiming", "Ingest", "IngestSummary", "StreamCounters", "StreamStart")


def __getattr__(name: str):
    # Loaded on first use, so that importing one stage does not load the multi-stream ingest.
    if name in MULTI_STREAM_NAMES:
        return getattr(import_module("streamface.ingest.multi_stream"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
