"""Cannot-link (two faces of one frame) and must-link (a track) in the clustering (issue 19).

- Frame keys come from face ids; an id without a frame is a frame of its own.
- The constrained linkage equals SciPy's where no constraint applies, and never joins
  a cannot-link pair where one does, at every level of ``batched_hac`` and ``knn_hac``.
- Must-linked faces start in one cluster unless that would join two faces of a frame.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
from scipy.spatial.distance import pdist, squareform

from analysis_fixtures import same_partition
from streamface.identify.clustering import Links, batched_hac, frame_keys, has_conflict, knn_hac, make_identities
from streamface.identify.clustering.constraints import cannot_link_pairs, constrained_cut, join_unless_forbidden
from streamface.identify.clustering.merging import merge_matched_clusters


def test_frame_keys_follow_the_face_ids():
    names = ["a_frame_20230525100138412614_face_0", "a_frame_20230525100138412614_face_1.png",
             "b_frame_20230525100138412614_face_0", "photo_17", "photo_17", "x_face_y"]
    assert frame_keys(names).tolist() == [0, 0, 1, 2, 3, 4]  # photos and odd ids: a frame each
    i, j = cannot_link_pairs(np.array([5, 1, 5, 2, 5, 1]))
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 2), (0, 4), (1, 5), (2, 4)]
    assert has_conflict(np.array([0, 0, 1]), np.array([7, 7, 8]))
    assert not has_conflict(np.array([0, 1, 1]), np.array([7, 7, 8]))


@pytest.mark.parametrize("linkage", ["complete", "average", "single", "weighted"])
def test_constrained_cut_without_constraints_is_scipys(linkage):
    x, _ = make_identities(120, dim=16, n_identities=12, random_state=2)
    d = pdist(x, "cosine")
    for t in (0.2, 0.4, 0.6):
        ref = sch.fcluster(sch.linkage(d, method=linkage), t, criterion="distance")
        empty = Links(np.empty(0, np.int64), np.empty(0, np.int64))
        assert same_partition(constrained_cut(squareform(d), t, empty, linkage=linkage), ref)


def test_constrained_cut_keeps_cannot_links_apart_and_joins_must_links():
    # Four points on a line: a-b close, c-d close, b-c close enough at t = 1.5.
    x = np.array([0.0, 1.0, 2.0, 3.0])[:, None]
    d = squareform(pdist(x))
    none = Links(np.empty(0, np.int64), np.empty(0, np.int64))
    assert constrained_cut(d, 3.0, none, linkage="single").tolist() == [0, 0, 0, 0]
    cannot = Links(np.array([0]), np.array([3]))
    labels = constrained_cut(d, 3.0, cannot, linkage="single")
    assert labels[0] != labels[3] and len(set(labels.tolist())) == 2
    must = Links(np.empty(0, np.int64), np.empty(0, np.int64), np.array([0]), np.array([3]))
    assert constrained_cut(d, 0.5, must, linkage="complete").tolist() == [0, 1, 2, 0]
    both = Links(np.array([0]), np.array([3]), np.array([0]), np.array([3]))  # cannot wins
    assert constrained_cut(d, 0.5, both, linkage="complete").tolist() == [0, 1, 2, 3]


def test_join_unless_forbidden_skips_only_the_join_that_breaks_a_pair():
    groups = join_unless_forbidden(5, np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4]), np.array([0]), np.array([2]))
    assert groups.tolist() == [0, 0, 1, 1, 1]


@pytest.fixture(scope="module")
def crowded():
    """Generated identities in frames of 4 faces, where a loose cut would merge faces of one frame."""
    x, y = make_identities(800, dim=24, n_identities=60, random_state=4)
    frames = np.arange(len(x)) // 4
    return x.astype(np.float32), y, frames


@pytest.mark.parametrize("method", ["hac", "knn"])
def test_no_cluster_holds_two_faces_of_a_frame_at_any_level(crowded, method):
    x, _, frames = crowded
    links = Links.of_faces(frames)
    run = {"hac": lambda **kw: batched_hac(x, 0.7, batch_size=300, **kw),
           "knn": lambda **kw: knn_hac(x, 0.7, max_component=300, **kw)}[method]
    free = run(linkage="average")
    assert has_conflict(free, frames), "the cut should be loose enough to join faces of a frame"
    for linkage in ("average", "complete", "single"):
        labels = run(linkage=linkage, links=links)
        assert not has_conflict(labels, frames), linkage
    # Where no frame holds two faces, the links change nothing.
    alone = Links.of_faces(np.arange(len(x)))
    assert np.array_equal(run(linkage="average", links=alone), free)


def test_track_merging_keeps_cannot_links(crowded):
    x, _, frames = crowded
    labels = np.arange(8)
    # Faces 0-3 share a frame; matches would chain them all into one cluster.
    merged = merge_matched_clusters(x[:8], labels, np.array([0, 1, 2]), np.array([1, 2, 3]), threshold=9.0,
                                    links=Links.of_faces(frames[:8]))
    assert not has_conflict(merged, frames[:8])
    assert len(set(merged[:4].tolist())) == 4
