"""``ingest --ray`` across two Ray nodes, one of which leaves mid-run (issue 10).

A real two-node cluster on this machine (``ray.cluster_utils.Cluster``: a head node
and a worker node, each its own raylet and worker processes). Two live HLS streams
on 127.0.0.1: one inference actor per node, each with its stream's decoder beside it.
The worker node is then removed (its raylet and every process on it are killed):
its two actors restart on the head node, which has room for them, and its stream
continues after what the store holds, with no frame stored twice.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine_fixtures import engine_home  # noqa: F401 (pytest fixture)
from pipeline_fixtures import clip, model_home  # noqa: F401 (pytest fixtures)
from streamface.ops.ray_pool import RayPool

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

from ray_fixtures import kept_counts, live_ingest  # noqa: E402


@pytest.fixture
def two_nodes(model_home):  # noqa: F811 - the raylets inherit STREAMFACE_HOME at start
    # Logical CPUs: the head has room for the worker node's actors once it is gone.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    try:
        with RayPool(cluster.address) as pool:
            yield cluster, worker, pool
    finally:
        cluster.shutdown()


@pytest.mark.slow
def test_a_stream_whose_node_leaves_restarts_on_another_node_without_duplicates(two_nodes, clip,  # noqa: F811
                                                                              tmp_path):
    cluster, worker, pool = two_nodes
    head_id, worker_id = cluster.head_node.node_id, worker.node_id
    seen = {}

    def remove_worker_node(job):
        # One inference actor per node (no GPUs), a stream each, its decoder beside it.
        nodes = {p.node_id: [s.name for s in p.specs] for p in job.placements}
        assert set(nodes) == {head_id, worker_id}, nodes
        (moved,) = nodes[worker_id]
        actors = [job.inference[job._inference_of[moved]], job.decoders[moved]]
        assert all(ray.get(a.node.remote()) == worker_id for a in actors)
        seen["moved"], seen["removed_us"] = moved, time.time() * 1e6
        removed = time.monotonic()
        cluster.remove_node(worker)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if all(ray.get(a.node.remote(), timeout=10) == head_id for a in actors):
                    break
            except ray.exceptions.RayError:
                pass  # dead or restarting
            time.sleep(0.2)
        else:
            raise AssertionError(f"{moved}'s actors did not restart on the head node")
        seen["down_s"] = time.monotonic() - removed
        assert not any(n["Alive"] for n in ray.nodes() if n["NodeID"] == worker_id)

    times, summary = live_ingest(pool, clip, tmp_path, None, remove_worker_node)
    moved = seen["moved"]
    stayed = next(name for name in times if name != moved)
    after = times[moved][times[moved] > seen["removed_us"]]
    assert len(after) >= 3, f"{moved} stored nothing after its node left"
    # Both streams publish the same scenes at the same times, so the one that stayed
    # says what the moved one could have stored: all of it, less the scenes in flight
    # when its node left (decoded up to one latency before), those published until
    # its first frame after the restart, and 2 for the keyframe selection starting afresh.
    in_flight_us = max(c.latency_max_s for c in summary.streams) * 1e6
    missed = int(np.sum((times[stayed] > seen["removed_us"] - in_flight_us) & (times[stayed] < after[0])))
    kept = kept_counts(times, summary)
    print(f"{moved} moved; actors back after {seen['down_s']:.1f} s, first frame after "
          f"{(after[0] - seen['removed_us']) / 1e6:.1f} s; kept {kept}, {missed} published meanwhile")
    assert kept[stayed] >= 15
    assert kept[moved] >= kept[stayed] - missed - 2, (kept, missed)
