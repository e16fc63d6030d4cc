"""ProcessExecutor: the per-component linkages of the knn clustering on forked workers give the
labels of one process (synthetic embeddings with identity structure; real faces go through the
same function in test_clustering_stage)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from streamface.identify.clustering import knn_hac
from streamface.identify.clustering.synthetic import make_identities
from streamface.ops.processes import ProcessExecutor


def _pid_and_sum(shared, rows):
    return os.getpid(), float(shared[rows].sum())


def test_results_come_in_item_order_from_other_processes():
    shared = np.arange(10.0)
    items = [[0, 1], [2, 3], [4], [5, 6, 7], [8, 9]]
    out = ProcessExecutor(2).map(_pid_and_sum, items, shared=shared)
    assert [s for _, s in out] == [1.0, 5.0, 4.0, 18.0, 17.0]
    assert os.getpid() not in {pid for pid, _ in out}


def test_one_worker_or_one_item_runs_here():
    shared = np.arange(3.0)
    assert ProcessExecutor(1).map(_pid_and_sum, [[0, 1], [2]], shared=shared) == [
        (os.getpid(), 1.0), (os.getpid(), 2.0)]
    assert ProcessExecutor(4).map(_pid_and_sum, [[2]], shared=shared) == [(os.getpid(), 2.0)]


def test_knn_clustering_on_workers_gives_the_labels_of_one_process():
    x, _ = make_identities(6000, n_identities=60, random_state=3)
    alone = knn_hac(x, 0.3, max_component=400)
    assert len(np.unique(alone)) > 1
    assert np.array_equal(knn_hac(x, 0.3, max_component=400, executor=ProcessExecutor(2)), alone)


def test_a_bad_worker_count_is_one_clear_error():
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        ProcessExecutor(0)
