"""Where ``ingest --ray`` runs each stream: inference actors over the nodes, streams over them.

Pure arithmetic over the alive nodes' CPUs and GPUs (no Ray import): one inference actor
per GPU (one per node without GPUs), each stream's decoder on its inference actor's node,
reservations scaled down on a node that has fewer CPUs than its actors ask for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from streamface.checks import check_int
from streamface.ingest.config import StreamSpec

__all__ = ["Placement", "place_streams", "plan_placement"]


def place_streams(specs: Sequence[StreamSpec], groups: int) -> list[list[StreamSpec]]:
    """Streams dealt round-robin into ``groups`` non-empty groups (fewer if fewer streams)."""
    if groups < 1:
        raise ValueError(f"groups: expected an integer >= 1, got {groups!r}")
    groups = min(groups, len(specs))
    return [list(specs[g::groups]) for g in range(groups)]


@dataclass(frozen=True)
class Placement:
    """One inference actor and the decoder actors of its streams, all on ``node_id``."""

    node_id: str
    specs: list
    inference_cpus: float
    inference_gpus: float
    decoder_cpus: float


def _floor4(value: float) -> float:
    # Ray counts resources in units of 1e-4.
    return math.floor(value * 1e4) / 1e4


def plan_placement(nodes: Sequence[tuple[str, float, float]], specs: Sequence[StreamSpec],
                   groups: int | None = None, inference_cpus: float = 1.0,
                   decoder_cpus: float = 0.25) -> list[Placement]:
    """Inference actors over the nodes, streams over the inference actors.

    Parameters
    ----------
    nodes : sequence of (node_id, cpus, gpus)
        The alive nodes.
    specs : sequence of StreamSpec
        The streams.
    groups : int or None, default None
        Inference actors; None: one per GPU of each node, one per node without GPUs.
        More than that are dealt over the nodes again (sharing their GPUs).
    inference_cpus, decoder_cpus : float, default 1 and 0.25
        CPUs each inference actor and each decoder actor reserves; scaled down on a
        node that has fewer CPUs than its actors ask for, so a placement never waits
        for resources an empty cluster lacks.

    Returns
    -------
    list of Placement
        One per inference actor that has streams; streams dealt round-robin.
    """
    check_int("groups", groups, optional=True)
    if not inference_cpus >= 0 or not decoder_cpus >= 0:
        raise ValueError(f"inference_cpus, decoder_cpus: expected numbers >= 0, got "
                         f"{inference_cpus!r}, {decoder_cpus!r}")
    if not specs:
        raise ValueError("specs: no stream to ingest")
    slots = [(node_id, cpus, gpus) for node_id, cpus, gpus in nodes for _ in range(max(1, int(gpus)))
             if cpus > 0 or gpus > 0]
    if not slots:
        raise ValueError("Ray: no alive node with CPUs or GPUs")
    if groups is not None:
        slots = [slots[i % len(slots)] for i in range(groups)]
    dealt = place_streams(specs, len(slots))
    slots = slots[:len(dealt)]
    placements = []
    for (node_id, cpus, gpus), group in zip(slots, dealt):
        on_node = [g for s, g in zip(slots, dealt) if s[0] == node_id]
        actors, decoders = len(on_node), sum(len(g) for g in on_node)
        asked = actors * inference_cpus + decoders * decoder_cpus
        scale = min(1.0, cpus / asked) if asked > 0 else 1.0
        placements.append(Placement(node_id, group, _floor4(inference_cpus * scale),
                                    _floor4(min(1.0, gpus / actors)) if gpus > 0 else 0.0,
                                    _floor4(decoder_cpus * scale)))
    return placements
