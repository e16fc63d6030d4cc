"""streamface.identify.clustering: the seed's batched HAC (exact), the knn method, merging and numbering."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch

from analysis_fixtures import same_partition, seed_batched_hac
from streamface.identify.clustering import (
    batched_hac,
    canonical_labels,
    knn_hac,
    make_identities,
    merge_matched_clusters,
    order_by_size,
    threshold_hac,
)
from streamface.identify.clustering.hac import cluster_means, condensed_distances
from streamface.identify.clustering.merging import mean_cluster_distances
from streamface.identify.clustering.neighbors import knn_search, radius_components
from streamface.evaluate.metrics import bcubed


@pytest.fixture(scope="module")
def faces():
    return make_identities(1500, random_state=11)


# ---- hac: the seed's algorithm, exactly ---------------------------------------------------------

@pytest.mark.parametrize("n, batch_size", [(1500, 20000), (1500, 400), (1501, 500)])
def test_batched_hac_equals_the_plain_scipy_seed_algorithm(n, batch_size):
    x, _ = make_identities(n, random_state=n + batch_size)
    ours = batched_hac(x, 0.3, batch_size=batch_size)
    seed = seed_batched_hac(x, 0.3, batch_size=batch_size)
    assert np.array_equal(ours, canonical_labels(seed))


@pytest.mark.parametrize("linkage, metric, t", [
    ("single", "cosine", 0.3), ("complete", "cosine", 0.3), ("average", "cosine", 0.35),
    ("weighted", "cosine", 0.35), ("complete", "euclidean", 0.75), ("average", "correlation", 0.35),
    ("complete", "cityblock", 6.0), ("ward", "euclidean", 1.0), ("centroid", "euclidean", 0.6),
])
def test_threshold_hac_equals_scipy_fcluster(faces, linkage, metric, t):
    x = faces[0][:500]
    ref = sch.fcluster(sch.linkage(x, method=linkage, metric=metric), t, criterion="distance")
    assert np.array_equal(threshold_hac(x, t, metric=metric, linkage=linkage), canonical_labels(ref))


def test_condensed_distances_match_pdist(faces):
    from scipy.spatial.distance import pdist

    x = faces[0][:200]
    for metric in ("cosine", "euclidean", "sqeuclidean", "correlation", "chebyshev"):
        assert np.allclose(condensed_distances(x, metric), pdist(x, metric), atol=1e-12)


def test_cluster_means_are_bit_identical_to_masked_means(faces):
    x, y = faces
    labels = canonical_labels(y)
    means = cluster_means(x, labels)
    for k in (0, 1, int(labels.max())):
        assert np.array_equal(means[k], x[labels == k].mean(axis=0))


def test_radius_components_never_split_a_pair_within_the_radius(faces):
    x = faces[0][:400]
    comp = radius_components(x, 0.3, "cosine", block_rows=37)
    d = condensed_distances(x, "cosine")
    i, j = np.triu_indices(len(x), 1)
    close = d <= 0.3
    assert np.all(comp[i[close]] == comp[j[close]])


def test_hac_recovers_generated_identities_with_full_precision(faces):
    x, y = faces
    p, r, f = bcubed(y, batched_hac(x, 0.3))
    assert p > 0.999 and r > 0.85


# ---- small and degenerate inputs ----------------------------------------------------------------

@pytest.mark.parametrize("method", [batched_hac, knn_hac])
def test_one_sample_is_one_cluster(method):
    assert method(np.ones((1, 8), np.float32), 0.3).tolist() == [0]


@pytest.mark.parametrize("method", [batched_hac, knn_hac])
def test_identical_samples_are_one_cluster(method):
    x = np.tile(np.arange(1, 9, dtype=np.float32), (50, 1))
    assert method(x, 0.3).tolist() == [0] * 50


@pytest.mark.parametrize("method", [batched_hac, knn_hac])
def test_far_apart_samples_stay_apart(method):
    x = np.eye(6, dtype=np.float32)
    assert method(x, 0.3).tolist() == list(range(6))


def test_empty_input_gives_no_labels():
    assert batched_hac(np.empty((0, 4), np.float32), 0.3).shape == (0,)


# ---- knn ------------------------------------------------------------------------------------------

def test_knn_equals_one_linkage_over_all_faces_when_the_graph_is_complete(faces):
    x = faces[0][:600]
    # Enough neighbours that every face's neighbours within t are all found: exactly complete linkage on all.
    ours = knn_hac(x, 0.3, n_neighbors=599, mean_levels=0, index="exact")
    assert np.array_equal(ours, threshold_hac(x, 0.3))


def test_knn_quality_close_to_hac_on_generated_identities(faces):
    x, y = faces
    stats = {}
    f_knn = bcubed(y, knn_hac(x, 0.3, stats=stats))[2]
    f_hac = bcubed(y, batched_hac(x, 0.3))[2]
    assert f_knn > f_hac - 0.01
    assert stats["levels"][0]["points"] == len(x) and stats["levels"][0]["index"] == "exact"


def test_knn_ivf_index_keeps_precision():
    x, y = make_identities(6000, random_state=5)
    labels = knn_hac(x, 0.3, index="ivf")
    p, r, _ = bcubed(y, labels)
    assert p > 0.995 and r > 0.8


def test_knn_components_larger_than_max_component_are_cut_and_rejoined(faces):
    x, y = faces
    small = knn_hac(x, 0.3, max_component=50)
    assert bcubed(y, small)[0] > 0.99  # cutting never merges


def test_numpy_and_faiss_neighbour_search_agree(faces):
    x = faces[0][:700]
    d1, i1, _ = knn_search(x, 10, "cosine", index="numpy")
    d2, i2, _ = knn_search(x, 10, "cosine", index="exact")
    assert np.allclose(d1, d2, atol=1e-5)
    assert np.mean(i1 == i2) > 0.99  # ties in float32 may swap neighbours


def test_knn_rejects_metrics_the_search_cannot_use(faces):
    with pytest.raises(ValueError, match="metric"):
        knn_search(faces[0][:10], 3, "cityblock")


# ---- merging and numbering ------------------------------------------------------------------------

def test_matched_clusters_merge_only_below_the_mean_distance(faces):
    x, y = faces
    labels = canonical_labels(y)
    a = int(np.flatnonzero(labels == 0)[0])
    b = int(np.flatnonzero(labels == 1)[0])
    d = mean_cluster_distances(x, labels, np.array([0]), np.array([1]), "cosine")[0]
    merged = merge_matched_clusters(x, labels, np.array([a]), np.array([b]), threshold=d + 1e-6)
    assert merged[a] == merged[b] and merged.max() == labels.max() - 1
    kept = merge_matched_clusters(x, labels, np.array([a]), np.array([b]), threshold=d - 1e-6)
    assert np.array_equal(kept, labels)


def test_mean_cluster_distances_match_the_seed_pairwise_mean(faces):
    from sklearn.metrics import pairwise_distances

    x, y = faces
    labels = canonical_labels(y)
    for metric in ("cosine", "euclidean", "sqeuclidean"):
        got = mean_cluster_distances(x, labels, np.array([0, 2]), np.array([3, 5]), metric)
        ref = [pairwise_distances(x[labels == p], x[labels == q], metric=metric).mean() for p, q in ((0, 3), (2, 5))]
        assert np.allclose(got, ref, atol=1e-6)


def test_order_by_size_numbers_the_largest_first_and_breaks_ties_by_first_face():
    labels = np.array([5, 7, 7, 9, 9, 9, 5, 4, -1])
    assert order_by_size(labels).tolist() == [1, 2, 2, 0, 0, 0, 1, 3, -1]


def test_canonical_labels_number_by_first_appearance():
    assert canonical_labels(np.array([9, 3, 9, 1])).tolist() == [0, 1, 0, 2]


def test_same_partition_helper():
    assert same_partition([0, 0, 1], [5, 5, 2]) and not same_partition([0, 0, 1], [0, 1, 1])
