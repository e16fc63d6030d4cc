"""Stage 5 (FaceClustering): seed-format output, store round trip, matches, copies, bad input, CLI."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from analysis_fixtures import make_store, same_partition, seed_batched_hac, write_npz
from streamface.cli import main as cli
from streamface.identify.clustering import make_identities
from streamface.identify.face_clustering import FaceClustering
from streamface.identify.features import load_features
from streamface.store import FaceStore


@pytest.fixture(scope="module")
def faces():
    return make_identities(400, random_state=3)


def run(features, output_dir, **kw):
    kw.setdefault("verbose", False)
    return FaceClustering(features, kw.pop("matches_path", None), kw.pop("faces_dir", None), output_dir, **kw).call()


# ---- results and formats ------------------------------------------------------------------------

def test_labels_equal_the_seed_algorithm_numbered_by_size(faces, tmp_path):
    x, _ = faces
    result = run(write_npz(tmp_path / "f.npz", x), tmp_path, matching_batchsize=150, linkage="complete")
    assert same_partition(result.labels, seed_batched_hac(x, 0.3, batch_size=150))
    average = run(write_npz(tmp_path / "f.npz", x), tmp_path, matching_batchsize=150)  # the default linkage
    assert same_partition(average.labels, seed_batched_hac(x, 0.3, batch_size=150, linkage="average"))
    sizes = np.bincount(result.labels)
    assert np.all(np.diff(sizes) <= 0)  # label 0 is the largest


@pytest.mark.parametrize("method", ["hac", "knn"])
def test_annotations_json_is_in_the_seed_format(faces, tmp_path, method):
    x, _ = faces
    result = run(write_npz(tmp_path / "f.npz", x), tmp_path, method=method)
    doc = json.loads((tmp_path / "metadata" / "annotations.json").read_text())
    assert list(doc) == ["labels"]
    assert len(doc["labels"]) == len(x)
    first = next(iter(doc["labels"]))
    assert first == "f_frame_00000000000000000000_face_0" and doc["labels"][first] == {"label": int(result.labels[0])}
    assert result.annotations_path == tmp_path / "metadata" / "annotations.json"
    assert result.silhouette is not None and -1 <= result.silhouette <= 1


def test_seed_pickle_features_keep_their_attributes(faces, tmp_path):
    x, _ = faces
    attrs = {"age": {"30-39": 0.7}, "gender": {"Male": 1.0, "Female": 0.0}, "race": {"White": 0.9}}
    data = {f"s_frame_{i:020d}_face_0.png": (x[i], attrs, {"happy": 0.2}, 0.01, {"yaw": 1.0, "pitch": 2.0, "roll": 3.0})
            for i in range(len(x))}
    with open(tmp_path / "features.pkl", "wb") as fp:
        pickle.dump(data, fp)
    run(tmp_path / "features.pkl", tmp_path)
    labels = json.loads((tmp_path / "metadata" / "annotations.json").read_text())["labels"]
    record = labels["s_frame_00000000000000000000_face_0"]
    assert list(record) == ["label", "mask", "attributes"]
    assert record["mask"] == 0.01
    pose = {"yaw": 1.0, "pitch": 2.0, "roll": 3.0}
    assert record["attributes"] == {**attrs, "expression": {"happy": 0.2}, "pose": pose}


def test_store_features_write_labels_back_and_attributes_out(faces, tmp_path):
    x, _ = faces
    path = make_store(tmp_path / "s.zarr", x, faces_per_frame=2)
    result = run(path, tmp_path / "out")
    stream = FaceStore.open(tmp_path / "s.zarr").stream("cam")
    assert np.array_equal(stream.read_labels(), result.labels) and result.store_written
    record = json.loads((tmp_path / "out" / "metadata" / "annotations.json").read_text())["labels"]
    first = record["cam_frame_20230525070138412614_face_0"]
    assert list(first) == ["label", "mask", "attributes"]
    assert set(first["attributes"]) == {"age", "pose"} and set(first["attributes"]["pose"]) == {"yaw", "pitch", "roll"}


def test_store_output_dir_is_optional(faces, tmp_path):
    path = make_store(tmp_path / "s.zarr", faces[0][:50])
    result = run(path, None)
    assert result.annotations_path is None and result.store_written


def test_only_embedded_faces_are_clustered_and_labelled(faces, tmp_path):
    x, _ = faces
    path = make_store(tmp_path / "s.zarr", x[:60], embed=40, attributes=False)
    result = run(path, None)
    labels = FaceStore.open(tmp_path / "s.zarr").stream("cam").read_labels()
    assert len(result.labels) == 40 and np.all(labels[40:] == -2) and np.array_equal(labels[:40], result.labels)


# ---- merging by track matches -------------------------------------------------------------------

def two_tight_groups(d: float = 0.3):
    """Two groups of faces whose mutual distance exceeds the matching threshold but not the merging one."""
    rng = np.random.default_rng(0)
    a = np.array([1.0, 0, 0, 0]) + 0.01 * rng.standard_normal((5, 4))
    angle = np.arccos(1 - 0.4)  # cosine distance 0.4 between the group centres
    b = np.array([np.cos(angle), np.sin(angle), 0, 0]) + 0.01 * rng.standard_normal((5, 4))
    return np.concatenate([a, b]).astype(np.float32)


def test_matches_csv_joins_clusters_below_the_merging_threshold(tmp_path):
    x = two_tight_groups()
    features = write_npz(tmp_path / "f.npz", x)
    csv = tmp_path / "matches.csv"
    csv.write_text("Face 1,Face 2\nf_frame_00000000000000000000_face_0.png,f_frame_00000000000000000007_face_0.png\n")
    assert run(features, tmp_path).n_clusters == 2
    joined = run(features, tmp_path, matches_path=csv)
    assert joined.n_clusters == 1 and joined.clusters_before_merging == 2 and joined.matches == 1
    assert run(features, tmp_path, matches_path=csv, merging_threshold=0.3).n_clusters == 2


def test_store_track_ids_are_the_default_matches(tmp_path):
    x = two_tight_groups()
    match = np.full(len(x), -1)
    match[[0, 7]] = 5
    path = make_store(tmp_path / "s.zarr", x, match=match)
    assert run(path, None).n_clusters == 1


def test_matches_naming_unknown_faces_warn(tmp_path):
    features = write_npz(tmp_path / "f.npz", two_tight_groups())
    csv = tmp_path / "matches.csv"
    csv.write_text("Face 1,Face 2\nnobody.png,f_frame_00000000000000000001_face_0.png\n")
    with pytest.warns(UserWarning, match="1 of 1 track matches"):
        assert run(features, tmp_path, matches_path=csv).n_clusters == 2


# ---- copying faces ------------------------------------------------------------------------------

def test_copy_faces_from_a_folder(tmp_path):
    x = two_tight_groups()
    features = write_npz(tmp_path / "f.npz", x)
    faces_dir = tmp_path / "faces"
    faces_dir.mkdir()
    names = load_features(features).files
    for name in names[:-1]:  # one image missing
        (faces_dir / name).write_bytes(b"png")
    with pytest.warns(UserWarning, match="1 face images were not found"):
        result = run(features, tmp_path, faces_dir=faces_dir, copy_faces=True)
    assert result.labeled_faces == len(x) - 1
    assert sorted(p.name for p in (tmp_path / "labeled_faces" / "0").iterdir()) == sorted(names[:5])


def test_copy_faces_from_store_crops(tmp_path):
    x = two_tight_groups()
    path = make_store(tmp_path / "s.zarr", x)
    result = run(path, tmp_path / "out", copy_faces=True)
    files = sorted((tmp_path / "out" / "labeled_faces").rglob("*.png"))
    assert result.labeled_faces == len(x) == len(files)
    assert files[0].read_bytes().startswith(b"\x89PNG")


# ---- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (np.array([[1.0, np.nan], [1.0, 2.0]]), "NaN"),
    (np.array([[0.0, 0.0], [1.0, 2.0]]), "zero vectors"),
])
def test_bad_vectors_are_clear_errors(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        run(write_npz(tmp_path / "f.npz", bad), tmp_path)


@pytest.mark.parametrize("kw, message", [
    ({"metric": "manhattan"}, "metric: expected one of"),
    ({"linkage": "fastest"}, "linkage: expected one of"),
    ({"method": "dbscan"}, "method: expected one of"),
    ({"linkage": "ward"}, "needs metric='euclidean'"),
    ({"method": "knn", "metric": "cityblock"}, "method='knn' supports"),
    ({"matching_batchsize": 0}, "matching_batchsize"),
    ({"matching_threshold": -1}, "matching_threshold"),
    ({"merging_threshold": "x"}, "merging_threshold"),
])
def test_bad_parameters_name_themselves(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        run(write_npz(tmp_path / "f.npz", np.eye(3, dtype=np.float32)), tmp_path, **kw)


def test_none_thresholds_mean_the_seed_values(faces, tmp_path):
    features = write_npz(tmp_path / "f.npz", faces[0])
    a = run(features, tmp_path, matching_threshold=None, merging_threshold=None)
    b = run(features, tmp_path)
    assert np.array_equal(a.labels, b.labels)


def test_one_sample_and_identical_samples(tmp_path):
    one = run(write_npz(tmp_path / "one.npz", np.ones((1, 4))), tmp_path)
    assert one.labels.tolist() == [0] and one.silhouette is None
    same = run(write_npz(tmp_path / "same.npz", np.ones((5, 4))), tmp_path)
    assert same.labels.tolist() == [0] * 5 and same.silhouette is None


def test_store_without_embeddings_is_a_clear_error(tmp_path):
    path = make_store(tmp_path / "s.zarr", np.ones((3, 4), np.float32), embed=0)
    with pytest.raises(ValueError, match="has no embeddings yet"):
        run(path, tmp_path)


def test_output_dir_is_required_without_a_store(tmp_path):
    with pytest.raises(ValueError, match="output_dir"):
        run(write_npz(tmp_path / "f.npz", np.eye(3)), None)


def test_copy_faces_needs_a_source_of_images(tmp_path):
    with pytest.raises(ValueError, match="faces_dir"):
        run(write_npz(tmp_path / "f.npz", np.eye(3)), tmp_path, copy_faces=True)


# ---- CLI ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["hac", "knn"])
def test_cli_cluster_prints_one_line(faces, tmp_path, method):
    features = write_npz(tmp_path / "f.npz", faces[0])
    result = CliRunner().invoke(cli, ["cluster", str(features), "--output-dir", str(tmp_path), "--method", method])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 1 and "clusters" in result.output
    assert (tmp_path / "metadata" / "annotations.json").is_file()


def test_cli_cluster_bad_input_is_one_clear_line(tmp_path):
    features = write_npz(tmp_path / "f.npz", np.array([[np.nan, 1.0]]))
    result = CliRunner().invoke(cli, ["cluster", str(features), "--output-dir", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: features_path: 1 embeddings hold NaN")
