"""``streamface ingest --ray``: the streams of an ingest spread over a Ray cluster.

The streams are cut into groups, one group per node by default; each group is one
Ray actor running an :class:`~streamface.ingest.Ingest` over its streams, so on
each node one decoder thread per stream feeds one inference worker that batches
across that node's streams, and every stream writes its own group of the shared
store (a path every node sees, or an fsspec URL such as ``s3://``): writers never
collide. The driver only places the groups, polls their counters and collects
their summaries.

Failures: an actor whose process or node dies is restarted by Ray (on another
node if its own is gone) and its ``run`` is retried; the new :class:`Ingest`
continues every one of its streams after the last frame the store holds, so a
restart neither loses what was committed nor stores a frame twice.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from streamface.ingest import IngestSummary, StreamCounters
from streamface.ingest_config import StreamSpec

__all__ = ["RayIngest", "place_streams"]


def place_streams(specs: Sequence[StreamSpec], groups: int) -> list[list[StreamSpec]]:
    """Streams dealt round-robin into ``groups`` non-empty groups (fewer if fewer streams)."""
    if groups < 1:
        raise ValueError(f"groups: expected an integer >= 1, got {groups!r}")
    groups = min(groups, len(specs))
    return [list(specs[g::groups]) for g in range(groups)]


class _IngestGroup:
    """Ray actor: one :class:`Ingest` over a group of streams (models loaded once per actor)."""

    def __init__(self, make_ingest: Callable[[list[StreamSpec]], object], specs: list[StreamSpec]) -> None:
        self.job = make_ingest(specs)
        self.names = [s.name for s in specs]

    def run(self) -> IngestSummary:
        return self.job.call()

    def counters(self) -> list[StreamCounters]:
        return self.job.counters or [StreamCounters(name) for name in self.names]

    def stop(self) -> None:
        self.job.stop()

    def pid(self) -> int:
        """The actor's process (changes when Ray restarts it)."""
        return os.getpid()


class RayIngest:
    """An ingest whose stream groups run as Ray actors.

    Parameters
    ----------
    specs : list of StreamSpec
        The streams (names differ).
    make_ingest : callable
        ``make_ingest(specs) -> Ingest`` for a group of streams; runs inside the
        actor, so it must be importable there (a module-level function or a
        ``functools.partial`` of one).
    pool : RayPool
        An entered pool (local instance or cluster).
    groups : int or None, default None
        Actors to spread the streams over; None: one per alive Ray node.
    actor_cpus : float, default 1
        CPUs each actor reserves.
    """

    def __init__(self, specs: Sequence[StreamSpec], make_ingest, *, pool, groups: int | None = None,
                 actor_cpus: float = 1.0) -> None:
        self.specs = list(specs)
        self.make_ingest = make_ingest
        self.pool = pool
        self.groups = groups
        self.actor_cpus = actor_cpus
        self.actors: list = []
        self._stopping = threading.Event()
        self._counters: list[StreamCounters] = [StreamCounters(s.name) for s in self.specs]

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
        """The streams' counters as last polled."""
        return list(self._counters)

    def stop(self) -> None:
        """Ask every group to stop after its current frame (what was decoded is committed)."""
        self._stopping.set()
        for actor in self.actors:
            actor.stop.remote()

    def call(self, on_progress=None, progress_interval: float = 1.0) -> IngestSummary:
        """Run every group to its end; the summaries of all streams, in the order given.

        A group whose actor cannot be restarted (no node left that can hold it)
        reports each of its streams as failed; the other groups go on.
        """
        import ray

        if not self.specs:
            raise ValueError("specs: no stream to ingest")
        started = time.monotonic()
        groups = self.groups or max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
        placed = place_streams(self.specs, groups)
        actor_class = ray.remote(num_cpus=self.actor_cpus, max_concurrency=4, max_restarts=-1,
                                 max_task_retries=-1, scheduling_strategy="SPREAD")(_IngestGroup)
        self.actors = [actor_class.remote(self.make_ingest, group) for group in placed]
        if self._stopping.is_set():
            self.stop()
        runs = {actor.run.remote(): g for g, actor in enumerate(self.actors)}
        results: dict[int, IngestSummary | str] = {}
        pending = list(runs)
        last = 0.0
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.2)
            for ref in done:
                g = runs[ref]
                try:
                    results[g] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    results[g] = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            if on_progress is not None and time.monotonic() - last >= progress_interval:
                self._poll(placed, results)
                on_progress(self.counters)
                last = time.monotonic()
        self._poll(placed, results)
        if on_progress is not None:
            on_progress(self.counters)
        store = next((r.store for r in results.values() if isinstance(r, IngestSummary)), "")
        load = max((r.load_seconds for r in results.values() if isinstance(r, IngestSummary)), default=0.0)
        warnings = sorted({w for r in results.values() if isinstance(r, IngestSummary) for w in r.warnings})
        return IngestSummary(self.counters, store, time.monotonic() - started, load, warnings)

    def _poll(self, placed: list[list[StreamSpec]], results: dict) -> None:
        """Refresh the counters: final ones of finished groups, live ones of the others."""
        import ray

        by_name: dict[str, StreamCounters] = {c.name: c for c in self._counters}
        live = {g: self.actors[g].counters.remote() for g in range(len(placed)) if g not in results}
        for g, group in enumerate(placed):
            result = results.get(g)
            if isinstance(result, IngestSummary):
                by_name.update({c.name: c for c in result.streams})
            elif isinstance(result, str):
                for spec in group:
                    by_name[spec.name] = replace(by_name[spec.name], error=f"Ray actor lost: {result}")
            else:
                try:
                    counters = ray.get(live[g], timeout=5.0)
                except (ray.exceptions.RayError, TimeoutError):
                    continue  # restarting: keep the last counters
                by_name.update({c.name: c for c in counters})
        self._counters = [by_name[s.name] for s in self.specs]
