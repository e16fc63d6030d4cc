"""Stages 4, 6, 7: FeatureEvaluation, ClusterEvaluation, ClusterMatching; and the features loader."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import pairwise_distances

from analysis_fixtures import make_store, write_npz
from streamface.identify.annotations import Annotations, write_annotations
from streamface.cli import main as cli
from streamface.evaluate.cluster_evaluation import ClusterEvaluation
from streamface.identify.cluster_matching import ClusterMatching, select_matches, top_clusters
from streamface.identify.clustering import batched_hac, make_identities, order_by_size
from streamface.evaluate.feature_evaluation import FeatureEvaluation, knn_distance_stats
from streamface.identify.features import load_features


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """600 generated faces, their features .npz and an annotations.json of their clustering."""
    root = tmp_path_factory.mktemp("clustered")
    x, y = make_identities(600, random_state=9)
    features = write_npz(root / "f.npz", x)
    names = load_features(features).names
    labels = order_by_size(batched_hac(x, 0.25))
    write_annotations(root / "annotations.json", Annotations(names, labels))
    return root, x, labels, names


def seed_matches(x, labels, *, mode, topk, min_t, max_t):
    """The seed's ClusterMatching.match_clusters written with loops (reference; triu for every mode)."""
    clusters = np.array(sorted(set(labels[labels >= 0].tolist())))[:topk]
    xd = x.astype(np.float64)
    m = len(clusters)
    dst = np.full((m, m), np.inf)
    cent = np.array([x[labels == c].mean(axis=0) for c in clusters])
    reps = []
    for c in clusters:
        e = xd[labels == c]
        d = pairwise_distances(e, metric="cosine")
        i, j = np.unravel_index(np.argmax(d), d.shape)
        reps.append((e[i], e[j]))
    for i in range(m):
        for j in range(i + 1, m):
            if mode == "average":
                v = pairwise_distances(cent[i:i + 1], cent[j:j + 1], metric="cosine")[0, 0]
            elif mode == "single":
                v = pairwise_distances(xd[labels == clusters[i]], xd[labels == clusters[j]], metric="cosine").min()
            else:
                a = np.stack([cent[i], *reps[i]])
                b = np.stack([cent[j], *reps[j]])
                v = pairwise_distances(a, b, metric="cosine").min()
            dst[i, j] = v
    out = {}
    for i in range(m):
        row = sorted((dst[i, j], clusters[j]) for j in range(i + 1, m) if dst[i, j] <= max_t)
        if row and row[0][0] < min_t:
            out.update({f"{clusters[i]},{c}": round(float(v), 4) for v, c in row})
    return out


# ---- cluster matching -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["average", "single", "triplet"])
def test_matching_equals_the_seed_rules(clustered, mode):
    root, x, labels, _ = clustered
    got = ClusterMatching(root / "f.npz", root / "annotations.json", root / "evals.json", topk=40,
                          min_threshold=0.5, max_threshold=0.7, mode=mode, verbose=False).match()
    ref = seed_matches(x, labels, mode=mode, topk=40, min_t=0.5, max_t=0.7)
    assert list(got) == list(ref)  # same pairs in the same order
    assert all(abs(got[k] - ref[k]) <= 1.5e-4 for k in ref)  # float32 means, as the seed's
    assert json.loads((root / "evals.json").read_text()) == {"matches": got}


def test_matching_honours_ignore(clustered, tmp_path):
    root, x, labels, names = clustered
    base = ClusterMatching(root / "f.npz", root / "annotations.json", tmp_path / "e.json", topk=40,
                           min_threshold=0.5, max_threshold=0.7, verbose=False).match()
    dropped = list(base)[:2]
    write_annotations(tmp_path / "a.json", Annotations(names, labels, ignore=dropped))
    again = ClusterMatching(root / "f.npz", tmp_path / "a.json", tmp_path / "e.json", topk=40,
                            min_threshold=0.5, max_threshold=0.7, verbose=False).match()
    assert list(again) == [k for k in base if k not in dropped]


def test_matching_skips_noise_and_takes_the_largest_clusters():
    labels = np.array([3, 3, 3, 1, 1, 0, -1, -1, -1, -1, 2, 2])
    assert top_clusters(labels, 2).tolist() == [1, 3]
    assert top_clusters(labels, 10).tolist() == [0, 1, 2, 3]


def test_select_matches_orders_by_cluster_then_distance_and_applies_both_thresholds():
    a = np.array([0, 0, 0, 1, 1, 2])
    b = np.array([3, 1, 2, 2, 3, 3])
    d = np.array([0.2, 0.4, 0.3, 0.36, 0.45, 0.1])
    got = select_matches(a, b, d, min_threshold=0.35, max_threshold=0.42)
    # cluster 1's closest is 0.36, not below 0.35: dropped; 0,1 at 0.4 kept (<= 0.42).
    assert got == {"0,3": 0.2, "0,2": 0.3, "0,1": 0.4, "2,3": 0.1}


def test_matching_single_mode_on_many_clusters_is_fast():
    import time

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, 64))
    x = np.repeat(centres, 3, axis=0) + 0.2 * rng.standard_normal((6000, 64))
    labels = np.repeat(np.arange(2000), 3)
    from streamface.identify.clustering.cluster_distances import cluster_pair_distances

    start = time.perf_counter()
    a, b, d = cluster_pair_distances(x.astype(np.float32), labels, np.arange(2000), mode="single",
                                     metric="cosine", max_distance=0.5)
    assert time.perf_counter() - start < 10
    assert np.all(a < b) and np.all(d <= 0.5)


# ---- cluster evaluation ---------------------------------------------------------------------------

def test_cluster_evaluation_writes_json_scores_and_two_pngs(clustered, tmp_path):
    root, x, labels, _ = clustered
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    scores = ClusterEvaluation("syn", root / "f.npz", root / "annotations.json", tmp_path / "scores.pkl",
                               tmp_path / "plots", verbose=False).evaluate()
    assert scores["Davies-Bouldin"] == pytest.approx(davies_bouldin_score(x, labels))
    assert scores["Silhouette"] == pytest.approx(silhouette_score(x, labels, metric="cosine"), abs=1e-6)
    assert json.loads((tmp_path / "scores.json").read_text())["clusters"] == labels.max() + 1  # .pkl -> .json
    for name in ("class_distribution.png", "membership_distribution.png"):
        assert (tmp_path / "plots" / name).read_bytes().startswith(b"\x89PNG")


def test_cluster_evaluation_samples_the_silhouette_above_the_limit(clustered, tmp_path):
    root, *_ = clustered
    scores = ClusterEvaluation("syn", root / "f.npz", root / "annotations.json", tmp_path / "s.json", tmp_path,
                               silhouette_samples=200, verbose=False).evaluate()
    assert scores["silhouette_samples"] == 200 and -1 <= scores["Silhouette"] <= 1


def test_cluster_evaluation_ignores_noise_and_reports_undefined_scores(tmp_path):
    x = np.eye(4, dtype=np.float32)
    write_npz(tmp_path / "f.npz", x)
    names = load_features(tmp_path / "f.npz").names
    write_annotations(tmp_path / "a.json", Annotations(names, np.array([0, 0, -1, -1])))
    scores = ClusterEvaluation("one", tmp_path / "f.npz", tmp_path / "a.json", tmp_path / "s.json", tmp_path,
                               verbose=False).evaluate()
    assert scores["noise"] == 2 and scores["clusters"] == 1
    assert scores["Silhouette"] is None and scores["Davies-Bouldin"] is None


def test_annotations_without_features_are_a_clear_error(tmp_path):
    write_npz(tmp_path / "f.npz", np.eye(3))
    write_annotations(tmp_path / "a.json", Annotations(np.array(["other"]), np.array([0])))
    with pytest.raises(ValueError, match="no face in common"):
        ClusterEvaluation("x", tmp_path / "f.npz", tmp_path / "a.json", tmp_path / "s.json", tmp_path,
                          verbose=False).evaluate()


def test_partly_matching_names_warn(tmp_path):
    write_npz(tmp_path / "f.npz", np.eye(3))
    names = load_features(tmp_path / "f.npz").names.tolist()
    write_annotations(tmp_path / "a.json", Annotations(np.array(names + ["other"]), np.array([0, 0, 1, 1])))
    with pytest.warns(UserWarning, match="1 of 4 annotated faces have no features"):
        ClusterMatching(tmp_path / "f.npz", tmp_path / "a.json", tmp_path / "e.json", verbose=False).match()


# ---- feature evaluation ---------------------------------------------------------------------------

def test_knn_distance_stats_equal_brute_force():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 16)).astype(np.float32)
    dist, thr = knn_distance_stats(x, 10, "cosine", [0.8], block_rows=17)
    d = pairwise_distances(x.astype(np.float64), metric="cosine")
    np.fill_diagonal(d, np.inf)
    near = np.sort(d, axis=1)[:, :10]
    assert np.allclose(dist["Minimum"], near[:, 0], atol=1e-5)
    assert np.allclose(dist["Mean"], near.mean(axis=1), atol=1e-5)
    assert np.allclose(dist["Maximum"], near[:, -1], atol=1e-5)
    below = np.ma.masked_greater(near, 0.8)
    assert np.allclose(thr["0.8"]["Mean-B"], below.mean(axis=1).filled(0.8), atol=1e-5)
    above = np.ma.masked_less_equal(near, 0.8)
    assert np.allclose(thr["0.8"]["Maximum-A"], above.max(axis=1).filled(0.8), atol=1e-5)


def test_feature_evaluation_writes_json_and_pngs(clustered, tmp_path):
    root, *_ = clustered
    report = FeatureEvaluation("syn", root / "f.npz", "cosine", max_samples=300, k=5000, thresholds=[0.2, 0.3],
                               output=tmp_path, verbose=False).evaluate()
    assert report["samples"] == 300 and report["k"] == 299  # k clamped to the sample
    doc = json.loads((tmp_path / "feature_evaluation.json").read_text())
    assert set(doc["thresholds"]) == {"0.2", "0.3"}
    assert 0 <= doc["thresholds"]["0.3"]["share_with_neighbour_below"] <= 1
    assert sum(doc["distances"]["Minimum"]["histogram"]["counts"]) == 300
    for name in ("knn_distances.png", "thresholded_distances.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_feature_evaluation_needs_two_faces(tmp_path):
    write_npz(tmp_path / "f.npz", np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        FeatureEvaluation("x", tmp_path / "f.npz", output=tmp_path, verbose=False).evaluate()


def test_feature_evaluation_validates_thresholds(tmp_path):
    write_npz(tmp_path / "f.npz", np.eye(3))
    with pytest.raises(ValueError, match="thresholds"):
        FeatureEvaluation("x", tmp_path / "f.npz", thresholds=["a"], output=tmp_path, verbose=False).evaluate()


# ---- features loader ------------------------------------------------------------------------------

def test_loader_reads_dict_and_pair_pickles(tmp_path):
    x = np.eye(3, dtype=np.float32)
    with open(tmp_path / "d.pkl", "wb") as fp:
        pickle.dump({"a.png": x[0], "b.png": x[1]}, fp)
    with open(tmp_path / "p.pkl", "wb") as fp:
        pickle.dump((["a", "b", "c"], x), fp)
    d = load_features(tmp_path / "d.pkl")
    assert d.names.tolist() == ["a", "b"] and d.files == ["a.png", "b.png"]
    assert load_features(tmp_path / "p.pkl").embeddings.shape == (3, 3)


def test_loader_reads_a_store_by_option_or_by_path(tmp_path):
    x = np.eye(4, dtype=np.float32)
    make_store(tmp_path / "s.zarr", x)
    assert load_features(tmp_path / "s.zarr").stream == "cam"  # the only stream
    assert np.array_equal(load_features(tmp_path / "s.zarr", stream="cam").embeddings, x)
    with pytest.raises(ValueError, match="stream"):
        load_features(f"{tmp_path / 's.zarr'}::nope")


@pytest.mark.parametrize("content, message", [
    ({"a": [1, 2], "b": [1, 2, 3]}, "one width"),
    ({}, "empty dict"),
    (42, "expected a dict"),
    ({"a.png": [1, 2], "a": [3, 4]}, "duplicate face names"),
])
def test_loader_rejects_malformed_pickles(tmp_path, content, message):
    with open(tmp_path / "bad.pkl", "wb") as fp:
        pickle.dump(content, fp)
    with pytest.raises(ValueError, match=message):
        load_features(tmp_path / "bad.pkl")


def test_loader_rejects_unknown_files(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="neither a face store"):
        load_features(tmp_path / "f.txt")
    with pytest.raises(FileNotFoundError, match="features_path"):
        load_features(tmp_path / "none.pkl")


# ---- CLI ------------------------------------------------------------------------------------------

def test_cli_evaluation_commands(clustered, tmp_path):
    root, *_ = clustered
    runner = CliRunner()
    r1 = runner.invoke(cli, ["evaluate-features", str(root / "f.npz"), "--output", str(tmp_path), "-k", "20",
                             "--thresholds", "0.2,0.3"])
    r2 = runner.invoke(cli, ["evaluate-clusters", str(root / "f.npz"), str(root / "annotations.json"),
                             "--scores", str(tmp_path / "s.json"), "--plots", str(tmp_path)])
    r3 = runner.invoke(cli, ["match-clusters", str(root / "f.npz"), str(root / "annotations.json"),
                             "--evals", str(tmp_path / "e.json"), "--mode", "single"])
    for r in (r1, r2, r3):
        assert r.exit_code == 0, r.output
        assert len(r.output.strip().splitlines()) == 1
    assert (tmp_path / "e.json").is_file() and (tmp_path / "s.json").is_file()


def test_cli_evaluation_bad_input(tmp_path):
    write_npz(tmp_path / "f.npz", np.eye(3))
    (tmp_path / "a.json").write_text('{"labels": {}}')
    r = CliRunner().invoke(cli, ["match-clusters", str(tmp_path / "f.npz"), str(tmp_path / "a.json")])
    assert r.exit_code == 1 and r.output.startswith("Error:") and "Traceback" not in r.output
