"""Clustering as Ray tasks (issue 10): a real local Ray instance gives exactly the labels of one process.

The pieces (the seed's batches, groups of graph components) are the same with and
without Ray, so the partitions must be identical, not merely close.
"""

from __future__ import annotations

import operator

import numpy as np
import pytest
from click.testing import CliRunner

from analysis_fixtures import make_store
from streamface.cli import main as cli
from streamface.identify.clustering import batched_hac, knn_hac, make_identities
from streamface.ops.ray_pool import LocalExecutor, RayPool
from streamface.store import FaceStore

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")


@pytest.fixture(scope="module")
def pool():
    with RayPool(num_cpus=2) as pool:
        yield pool


@pytest.fixture(scope="module")
def faces():
    x, _ = make_identities(3000, n_identities=120, random_state=3)
    return x


def test_pool_maps_in_item_order_with_one_shared_copy(pool):
    # Ray workers import the function by module: use one they can import.
    out = pool.map(operator.getitem, range(5), shared=np.arange(10, 15))
    assert out == [10, 11, 12, 13, 14]
    assert pool.cpus == 2


@pytest.mark.parametrize("linkage", ["complete", "average", "single"])
def test_batched_hac_on_ray_equals_one_process(pool, faces, linkage):
    local = batched_hac(faces, 0.5, linkage=linkage, batch_size=700)
    assert np.array_equal(batched_hac(faces, 0.5, linkage=linkage, batch_size=700, executor=pool), local)
    assert np.array_equal(batched_hac(faces, 0.5, linkage=linkage, batch_size=700,
                                      executor=LocalExecutor()), local)
    assert len(np.unique(local)) > 50  # a real partition, not all-in-one or all apart


def test_knn_hac_on_ray_equals_one_process(pool, faces):
    local = knn_hac(faces, 0.5, n_neighbors=16, max_component=200)
    assert np.array_equal(knn_hac(faces, 0.5, n_neighbors=16, max_component=200, executor=pool), local)


def test_cli_cluster_ray_writes_the_same_labels(pool, faces, tmp_path):
    # The CLI joins the instance the fixture started (ray.init is already done in this process).
    features = make_store(tmp_path / "s.zarr", faces[:800])
    runner = CliRunner()
    plain = runner.invoke(cli, ["cluster", features, "--batch-size", "300"])
    assert plain.exit_code == 0, plain.output
    expected = FaceStore.open(tmp_path / "s.zarr").stream("cam").read_labels()
    # --full: the first run recorded its identities, and a second would only add new faces (none).
    on_ray = runner.invoke(cli, ["cluster", features, "--batch-size", "300", "--ray", "--full"])
    assert on_ray.exit_code == 0, on_ray.output
    assert np.array_equal(FaceStore.open(tmp_path / "s.zarr").stream("cam").read_labels(), expected)
    assert ray.is_initialized()  # a pool never shuts down an instance it did not start


def test_unreachable_cluster_is_one_clear_line(tmp_path, faces):
    import subprocess
    import sys

    features = make_store(tmp_path / "s.zarr", faces[:50])
    # A fresh process: in this one Ray is already initialised by the fixture.
    out = subprocess.run([sys.executable, "-m", "streamface.cli", "cluster", features, "--ray", "127.0.0.1:9"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Ray" in lines[0] and "127.0.0.1:9" in lines[0], out.stderr
    assert FaceStore.open(tmp_path / "s.zarr").stream("cam").num_labelled == 0


def test_pool_rejects_impossible_parameters():
    with pytest.raises(ValueError, match="num_cpus"):
        RayPool(num_cpus=0)
    with pytest.raises(ValueError, match="task_cpus"):
        RayPool(task_cpus=0)
    with pytest.raises(RuntimeError, match="inside 'with RayPool"):
        RayPool().map(operator.getitem, [1])
