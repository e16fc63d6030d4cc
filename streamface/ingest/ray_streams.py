"""``streamface ingest --ray``: the streams of an ingest spread over a Ray cluster.

::

    node 1:  decoder actor, stream A ─┐                                  ┌─> store/A
             decoder actor, stream B ─┴─> inference actor (GPU or CPUs) ─┴─> store/B
    node 2:  decoder actor, stream C ───> inference actor               ───> store/C

* One decoder actor per stream decodes it and selects its keyframes (as a decoder
  thread of :class:`~streamface.ingest.multi_stream.Ingest` does) and sends each kept frame, RGB
  array included, to the inference actor of its node through Ray's object store
  (keyframes are rare, about one every two seconds per live stream). A stream holds
  at most ``in_flight`` kept frames in inference: a live stream drops the frame and
  counts it when they are all taken, a file waits.
* One inference actor per GPU (one per node without GPUs: its CPU pool) runs an
  :class:`~streamface.ingest.multi_stream.Ingest` with ``decode=False``: one detector batch for the
  frames of all its streams, one recognizer batch for their faces, and one group of the
  shared store per stream (a path every node sees, or an fsspec URL such as ``s3://``),
  so writers never collide. A decoder is placed on its inference actor's node (soft node
  affinity: if the node leaves the cluster, each restarts on a node with room for its
  reservation, not necessarily the same one; frames then cross nodes).
* The driver places the actors, polls their counters, ends each stream at the
  inference actor once its decoder is done, and collects the summaries.

Failures (both kinds of actor have ``max_restarts=-1``, their calls are retried):

* A decoder that dies restarts, asks the inference actor where its stream stands (the
  last capture time stored, as ``Ingest`` reads it from the stream's group, or the last
  one accepted since) and continues after it.
* An inference actor that dies restarts from the store (reopening each stream's group
  and analysing faces a commit left without embeddings, as ``Ingest`` does); the
  decoders' pending calls are retried on it. The frames it held are lost (a gap),
  never stored twice: it takes a frame only if its capture time is after the last one
  stored or accepted for the stream. Its keyframes and faces are still counted in full:
  what it committed after its last report is what the store holds beyond that report.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from streamface.ingest.config import StreamSpec
from streamface.ingest.counters import IngestSummary, StreamCounters
from streamface.ingest.loop import select_keyframes
from streamface.ingest.placement import Placement, place_streams, plan_placement
from streamface.ingest.session import SourceRecord, StreamStart, source_record

# Placement, place_streams and plan_placement (streamface.ingest.placement) stay importable from here.
__all__ = ["Placement", "RayIngest", "place_streams", "plan_placement"]

_FILE_WAIT_S = 0.5  # a file's frame waits this long per call for a free slot, then asks again


class _StreamInference:
    """Ray actor: an :class:`Ingest` (``decode=False``) over the streams of one placement."""

    def __init__(self, make_ingest: Callable[[list[StreamSpec]], object], specs: list[StreamSpec]) -> None:
        from streamface.ops.malloc_tuning import fix_mmap_threshold

        fix_mmap_threshold()  # see ``streamface ingest``: frames arrive here from the decoders
        self.job = make_ingest(specs, decode=False)
        # Models loaded and streams ready before any call: after a restart, the decoders'
        # retried offers may arrive before the retried ``run``.
        self.job.open()
        self.token = uuid.uuid4().hex

    def open_stream(self, name: str, live: bool, source: SourceRecord | None = None) -> StreamStart:
        return self.job.open_stream(name, live, source)

    def offer(self, name: str, candidate, live: bool, wait: float) -> str:
        try:
            self.job.open_stream(name, live)  # again after a restart of this actor
        except Exception:  # noqa: BLE001 - the store error is in the stream's counters
            return "ended"
        sent = candidate.item
        # Latency is measured on this process's monotonic clock from the decoder's wall clock
        # (nodes' clocks agree to NTP precision); the array is copied out of the object store
        # so that the store's copy is freed now, not at the commit.
        age = max(0.0, time.time() - sent.decoded_at)
        candidate = replace(candidate, rgb=np.array(candidate.rgb),
                            item=replace(sent, decoded_at=time.monotonic() - age))
        return self.job.offer(name, candidate, wait)

    def end_streams(self, names: list[str]) -> None:
        for name in names:
            try:
                self.job.end_stream(name)
            except RuntimeError:  # the run is over (the driver repeats ends until it sees that)
                return

    def run(self) -> tuple[str, IngestSummary]:
        return self.token, self.job.call()

    def counters(self) -> tuple[str, list[StreamCounters]]:
        return self.token, self.job.counters

    def pid(self) -> int:
        """The actor's process (changes when Ray restarts it)."""
        return os.getpid()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


class _StreamDecoder:
    """Ray actor: decodes one stream and selects its keyframes for an inference actor."""

    def __init__(self, make_ingest: Callable[[list[StreamSpec]], object], spec: StreamSpec,
                 inference: str) -> None:
        import ray

        from streamface.ops.malloc_tuning import fix_mmap_threshold

        fix_mmap_threshold()  # see ``streamface ingest``: frames are decoded here
        job = make_ingest([spec])  # for its parameters only: models are loaded by the inference actor
        self.capture = job.captures[0]
        self.max_reconnects = job.max_reconnects_by_stream.get(spec.name, job.max_reconnects)
        # Looked up by name (at every restart) rather than handed over as a handle: Ray keeps
        # a handle argument in the object store, where a restart could find it gone.
        self.inference = ray.get_actor(inference)
        self.counters = StreamCounters(spec.name)
        self.stop_event = threading.Event()
        self.ended = False
        self.token = uuid.uuid4().hex

    def run(self) -> tuple[str, StreamCounters]:
        import ray

        c, counters = self.capture, self.counters
        started = time.monotonic()
        decoder = None

        def on_frame(stats, counts, pts):
            counters.frames, counters.reconnects = stats.yielded, stats.reconnects

        try:
            try:
                decoder = c.open_decoder(max_reconnects=self.max_reconnects, stop_event=self.stop_event)
                # The source is opened first, so a bad source leaves no stream group behind.
                # A file's content gets the capture times the stream recorded for it, as in
                # ``ingest`` (the writer, which holds the record, is on the inference actor).
                c.start_decoder(decoder, ray.get(self.inference.open_stream.remote(
                    c.name, decoder.live, source_record(decoder))))
                live = decoder.live

                def emit(kept):
                    for candidate in kept:
                        if not self.ended:
                            self._send(candidate, live)

                truncated = select_keyframes(decoder, c.make_selector(), emit=emit, truncation=c.truncation,
                                             stop_event=self.stop_event, on_frame=on_frame, clock=time.time,
                                             name=c.name)
                if truncated is not None:
                    counters.truncated = truncated.text()
            finally:
                if decoder is not None:
                    decoder.close()
                    counters.frames = decoder.stats.yielded
                    counters.reconnects = decoder.stats.reconnects
        except Exception as exc:  # noqa: BLE001 - reported in the stream's counters
            text = str(exc).strip() or type(exc).__name__
            counters.error = text.splitlines()[-1 if isinstance(exc, ray.exceptions.RayError) else 0]
        counters.seconds = time.monotonic() - started
        return self.token, counters

    def _send(self, kept, live: bool) -> None:
        """Hand ``kept`` to the inference actor within the stream's in-flight slots."""
        import ray

        # Once, however often a file's frame must ask again; without the small gray image
        # (the inference node remakes it for frames with faces: ~3.5 ms against 0.9 MB more).
        ref = ray.put(replace(kept, small=None))
        while True:
            drop = live and not self.stop_event.is_set()
            status = ray.get(self.inference.offer.remote(self.capture.name, ref, live,
                                                         0.0 if drop else _FILE_WAIT_S))
            if status == "full" and not drop:
                continue  # a file (or a live stream being stopped) waits: nothing is lost
            if status == "full":
                self.counters.dropped += 1
            elif status == "ended":  # the stream's store failed, or inference did
                self.ended = True
                self.stop_event.set()
            return

    def counters_now(self) -> tuple[str, StreamCounters]:
        return self.token, self.counters

    def stop(self) -> None:
        self.stop_event.set()

    def pid(self) -> int:
        """The actor's process (changes when Ray restarts it)."""
        return os.getpid()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


def _sum(a: StreamCounters, b: StreamCounters) -> StreamCounters:
    """Counters of two lives of one actor (before and after a restart)."""
    keyframes = a.keyframes + b.keyframes
    latency = (a.latency_s * a.keyframes + b.latency_s * b.keyframes) / keyframes if keyframes else 0.0
    return replace(b, frames=a.frames + b.frames, keyframes=keyframes, faces=a.faces + b.faces,
                   reconnects=a.reconnects + b.reconnects, dropped=a.dropped + b.dropped,
                   latency_s=latency, latency_max_s=max(a.latency_max_s, b.latency_max_s))


class _Lives:
    """Counters an actor reported, summed over its restarts (each life has its own token).

    A life that dies may have committed after its last report. The next life to open the
    stream finds those frames in the store (:attr:`StreamCounters.stored`) and they are
    counted then; a life that never opens it (or opens another rotation period) leaves
    them uncounted.
    """

    def __init__(self, name: str) -> None:
        self.before = StreamCounters(name)  # the lives that ended, summed
        self.ended: StreamCounters | None = None  # the last one to end, until the next opens
        self.token: str | None = None
        self.now = StreamCounters(name)

    def update(self, token: str, counters: StreamCounters) -> None:
        if self.token is not None and token != self.token:
            self._settle(None)
            self.ended = self.now
        self.token, self.now = token, counters
        if self.ended is not None and counters.stored is not None:
            self._settle(counters)

    def _settle(self, opened: StreamCounters | None) -> None:
        """Add the life that ended to ``before``, with what ``opened`` found it stored unreported."""
        if self.ended is None:
            return
        ended, self.ended = self.ended, None
        if opened is not None and ended.stored is not None and ended.stored[0] == opened.stored[0]:
            # What the next life found on opening, less what it added since, less what was reported.
            _, frames, faces = opened.stored
            _, reported_frames, reported_faces = ended.stored
            unreported = (max(frames - opened.keyframes - reported_frames, 0),
                          max(faces - opened.faces - reported_faces, 0))
            ended = replace(ended, keyframes=ended.keyframes + unreported[0], faces=ended.faces + unreported[1])
        self.before = _sum(self.before, ended)

    @property
    def total(self) -> StreamCounters:
        before = self.before if self.ended is None else _sum(self.before, self.ended)
        return _sum(before, self.now)


class RayIngest:
    """An ingest whose streams run as Ray actors: a decoder per stream, inference per GPU or node.

    Parameters
    ----------
    specs : list of StreamSpec
        The streams (names differ).
    make_ingest : callable
        ``make_ingest(specs, decode=...) -> Ingest`` for a group of streams (e.g.
        :func:`streamface.ingest.options.build_ingest` bound to the store and options); runs inside the
        actors, so it must be importable there (a module-level function or a
        ``functools.partial`` of one). Decoder actors take their stream's capture
        parameters from it; inference actors run it with ``decode=False``.
    pool : RayPool
        An entered pool (local instance or cluster).
    groups : int or None, default None
        Inference actors; None: one per GPU, one per node without GPUs
        (:func:`plan_placement`).
    inference_cpus : float, default 1
        CPUs each inference actor reserves (less on a node with fewer to share).
    decoder_cpus : float, default 0.25
        CPUs each decoder actor reserves (less on a node with fewer to share).
    """

    def __init__(self, specs: Sequence[StreamSpec], make_ingest, *, pool, groups: int | None = None,
                 inference_cpus: float = 1.0, decoder_cpus: float = 0.25) -> None:
        self.specs = list(specs)
        self.make_ingest = make_ingest
        self.pool = pool
        self.groups = groups
        self.inference_cpus = inference_cpus
        self.decoder_cpus = decoder_cpus
        self.placements: list[Placement] = []
        self.inference: list = []       # actor handles, one per placement
        self.decoders: dict = {}        # stream name -> actor handle
        self._inference_of: dict[str, int] = {}
        self._stopping = threading.Event()
        self._decoded = {s.name: _Lives(s.name) for s in self.specs}
        self._inferred = {s.name: _Lives(s.name) for s in self.specs}
        self._lost: dict[str, str] = {}
        self._seconds: dict[str, float] = {}
        self._summaries: list[IngestSummary] = []
        self._finished = False

    @property
    def stream_names(self) -> list[str]:
        """The streams, in the order given."""
        return [s.name for s in self.specs]

    @property
    def queue_depth(self) -> dict[str, int]:
        """Queues live in the actors; not polled."""
        return {}

    @property
    def counters(self) -> list[StreamCounters]:
        """The streams' counters as last polled: frames, reconnects and dropped frames from
        their decoders, keyframes, faces and latency from their inference actors."""
        merged = []
        for spec in self.specs:
            decoded, inferred = self._decoded[spec.name].total, self._inferred[spec.name].total
            error = self._lost.get(spec.name) or decoded.error or inferred.error
            merged.append(replace(inferred, frames=decoded.frames, reconnects=decoded.reconnects,
                                  dropped=decoded.dropped, error=error, truncated=decoded.truncated,
                                  seconds=self._seconds.get(spec.name, inferred.seconds)))
        return merged

    def stop(self) -> None:
        """End every stream after its current frame; what was decoded is committed."""
        self._stopping.set()
        for actor in [] if self._finished else self.decoders.values():
            actor.stop.remote()

    def call(self, on_progress=None, progress_interval: float = 1.0, on_batch=None) -> IngestSummary:
        """Run every stream to its end; the summaries of all streams, in the order given.

        A stream whose actor cannot be restarted (no node left that can hold it) is
        reported as failed; the other streams go on. ``on_batch`` is accepted as
        :meth:`Ingest.call` takes it and never called: the inference actors keep their model
        calls to themselves.
        """
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        started = time.monotonic()
        nodes = [(n["NodeID"], n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0))
                 for n in ray.nodes() if n.get("Alive")]
        self.placements = plan_placement(nodes, self.specs, self.groups, self.inference_cpus,
                                         self.decoder_cpus)
        inference_class = ray.remote(max_restarts=-1, max_task_retries=-1)(_StreamInference)
        decoder_class = ray.remote(max_restarts=-1, max_task_retries=-1)(_StreamDecoder)
        run_id = uuid.uuid4().hex[:12]
        for i, p in enumerate(self.placements):
            near = NodeAffinitySchedulingStrategy(p.node_id, soft=True)
            name = f"streamface-ingest-{run_id}-inference-{i}"
            # One thread per stream for offers blocked on a full stream, a few for control calls.
            inference = inference_class.options(
                name=name, num_cpus=p.inference_cpus, num_gpus=p.inference_gpus,
                max_concurrency=len(p.specs) + 4, scheduling_strategy=near).remote(self.make_ingest, p.specs)
            self.inference.append(inference)
            for spec in p.specs:
                self._inference_of[spec.name] = i
                self.decoders[spec.name] = decoder_class.options(
                    num_cpus=p.decoder_cpus, max_concurrency=4,
                    scheduling_strategy=near).remote(self.make_ingest, spec, name)
        if self._stopping.is_set():
            self.stop()
        try:
            self._run(on_progress, progress_interval, started)
        finally:
            # Their work is done (or the driver is going): free their CPUs and GPUs now.
            self._finished = True
            for actor in [*self.decoders.values(), *self.inference]:
                ray.kill(actor, no_restart=True)
        store = next((r.store for r in self._summaries), "")
        load = max((r.load_seconds for r in self._summaries), default=0.0)
        warnings = sorted({w for r in self._summaries for w in r.warnings})
        return IngestSummary(self.counters, store, time.monotonic() - started, load, warnings,
                             interrupted=self._stopping.is_set())

    def _run(self, on_progress, progress_interval: float, started: float) -> None:
        """Start every actor's run and follow them to their ends."""
        import ray

        runs = {actor.run.remote(): ("decoder", name) for name, actor in self.decoders.items()}
        runs.update({actor.run.remote(): ("inference", i) for i, actor in enumerate(self.inference)})
        pending, finished, inference_done = list(runs), [], set()
        last = time.monotonic()
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.2)
            ended = []
            for ref in done:
                kind, key = runs[ref]
                try:
                    token, result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    token, result = None, _one_line(exc)
                if kind == "decoder":
                    self._decoder_done(key, token, result, started)
                    finished.append(key)
                    ended.append(key)
                else:
                    inference_done.add(key)
                    self._inference_done(key, token, result)
            if ended:
                self._end(ended, inference_done)
            if time.monotonic() - last >= progress_interval:
                # Ends again: an inference actor restarted since knows nothing of them.
                self._end(finished, inference_done)
                self._poll(finished, inference_done)
                if on_progress is not None:
                    on_progress(self.counters)
                last = time.monotonic()
        if on_progress is not None:
            on_progress(self.counters)

    # ---- bookkeeping ----------------------------------------------------------------------------

    def _decoder_done(self, name: str, token, result, started: float) -> None:
        self._seconds[name] = time.monotonic() - started
        if isinstance(result, StreamCounters):
            self._decoded[name].update(token, result)
        else:
            self._lost[name] = f"Ray actor lost: {result}"

    def _inference_done(self, i: int, token, result) -> None:
        if isinstance(result, IngestSummary):
            self._summaries.append(result)
        for spec in self.placements[i].specs:
            if isinstance(result, IngestSummary):
                counters = next(c for c in result.streams if c.name == spec.name)
                self._inferred[spec.name].update(token, counters)
            else:
                self._lost.setdefault(spec.name, f"Ray actor lost: {result}")

    def _end(self, names: list[str], inference_done: set[int]) -> None:
        """Tell the inference actors that these streams' decoders are done (repeating is harmless)."""
        by_actor: dict[int, list[str]] = {}
        for name in names:
            by_actor.setdefault(self._inference_of[name], []).append(name)
        for i, ended in by_actor.items():
            if i not in inference_done:
                self.inference[i].end_streams.remote(ended)

    def _poll(self, finished: list[str], inference_done: set[int]) -> None:
        """Refresh the live counters of the actors still running (a restarting one keeps its last)."""
        import ray

        asks = {actor.counters_now.remote(): ("decoder", name) for name, actor in self.decoders.items()
                if name not in finished}
        asks.update({actor.counters.remote(): ("inference", i) for i, actor in enumerate(self.inference)
                     if i not in inference_done})
        ready, _ = ray.wait(list(asks), num_returns=len(asks), timeout=2.0)
        for ref in ready:
            kind, key = asks[ref]
            try:
                token, counters = ray.get(ref)
            except ray.exceptions.RayError:
                continue
            if kind == "decoder":
                self._decoded[key].update(token, counters)
            else:
                for c in counters:
                    self._inferred[c.name].update(token, c)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
