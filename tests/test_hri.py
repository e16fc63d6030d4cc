"""The Hierarchical Retrieval Index against a plain reference of the seed's algorithm.

``ReferenceHRI`` below is written from SEED_NOTES ("HRI") and the choices documented
in ``streamface.identify.hri``: one Python object per node and per-node NumPy calls, like the
seed. The C index must give the same labels (and the same tree) on the same inputs
in the same order. ``benchmarks/bench_hri.py`` imports it as the speed baseline.
"""

from __future__ import annotations

import glob
import math
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from streamface.identify.hri import (
    CorruptIndexError,
    EmptyIndexError,
    HierarchicalRetrievalIndex,
    HierarchicalRetrievalIndexMatching,
    HRIError,
    index_path_for_store,
)
from streamface.identify.stream_index import build_stream_index

# ---- the reference ---------------------------------------------------------------------------


class _Node:
    __slots__ = ("value", "count", "parent", "children", "label")

    def __init__(self, value, count, parent, label):
        self.value = value
        self.count = count
        self.parent = parent
        self.children = []
        self.label = label  # None for internal nodes


class ReferenceHRI:
    """The seed's HRI, straightforwardly: Python nodes, NumPy per node."""

    def __init__(self, metric: str, threshold: float):
        self.metric = metric
        self.threshold = threshold
        self.root = None
        self.num_labels = 0

    def distance(self, a, b) -> float:
        if self.metric == "cosine":
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            if na == 0 or nb == 0:
                return 1.0
            return 1.0 - np.dot(a, b) / (na * nb)
        return np.linalg.norm(a - b)

    def search(self, x):
        """Greedy descent; the earlier child wins a tie."""
        node, best_d = self.root, math.inf
        while node.label is None:
            best, best_d = None, math.inf
            for child in node.children:
                d = self.distance(x, child.value)
                if d < best_d:
                    best, best_d = child, d
            node = best
        return node, best_d

    @staticmethod
    def absorb(node, x) -> None:
        while node is not None:
            node.value = (node.value * node.count + x) / (node.count + 1)
            node.count += 1
            node = node.parent

    def new_end(self, x, parent):
        end = _Node(x.copy(), 1, parent, self.num_labels)
        self.num_labels += 1
        return end

    def insert(self, x) -> int:
        x = np.asarray(x, dtype=np.float64)
        if self.root is None:
            self.root = _Node(np.zeros_like(x), 0, None, None)
        if not self.root.children:
            end = self.new_end(x, self.root)
            self.root.children.append(end)
            self.absorb(self.root, x)
            return end.label
        e, d = self.search(x)
        if d <= self.threshold:
            self.absorb(e, x)
            return e.label
        parent = e.parent
        siblings = [c for c in parent.children if c is not e]
        s = min((self.distance(e.value, c.value) for c in siblings), default=math.inf)
        if siblings and d < s:
            inner = _Node(e.value.copy(), e.count, parent, None)
            parent.children[parent.children.index(e)] = inner
            e.parent = inner
            end = self.new_end(x, inner)
            inner.children = [e, end]
            self.absorb(inner, x)
        else:
            end = self.new_end(x, parent)
            parent.children.append(end)
            self.absorb(parent, x)
        return end.label

    def match(self, features) -> list[int]:
        return [self.insert(f) for f in features]

    def leaf_depths(self) -> np.ndarray:
        depths = np.zeros(self.num_labels, dtype=np.int64)
        stack = [(self.root, 0)]
        while stack:
            node, depth = stack.pop()
            if node.label is not None:
                depths[node.label] = depth
            stack.extend((c, depth + 1) for c in node.children)
        return depths


# ---- data ------------------------------------------------------------------------------------


def identity_vectors(n, dim, identities, spread, seed, *, unit=True):
    """``n`` noisy copies of ``identities`` random centres, in random order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, identities, n)] + spread / math.sqrt(dim) * rng.normal(size=(n, dim))
    if unit:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


@pytest.fixture(scope="module")
def seed_embeddings():
    """SFace embeddings of the seed's 37 aligned skynews faces (resized 128 -> 112)."""
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).parent))
    from engine_fixtures import _prepared_home, _recognizer, require_kernels

    files = sorted(glob.glob("/work/shared/data/skynews/aligned_faces/*.png"))
    if not files:
        pytest.skip("seed aligned faces not available")
    require_kernels("align_faces")
    faces = np.stack([np.asarray(Image.open(f).convert("RGB").resize((112, 112),
                                                                      Image.BILINEAR))
                      for f in files])
    return _recognizer(_prepared_home()).embed_aligned(faces)


def assert_same_as_reference(x, metric, threshold):
    ref = ReferenceHRI(metric, threshold)
    expected = ref.match(x)
    index = HierarchicalRetrievalIndex(threshold, metric, mode="greedy")
    labels = index.insert(x)
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(index.leaf_depths(), ref.leaf_depths())
    return index, ref


# ---- same labels as the reference ------------------------------------------------------------


@pytest.mark.parametrize("metric,threshold", [("cosine", 0.25), ("cosine", 0.6),
                                              ("euclidean", 0.7), ("euclidean", 1.1)])
def test_generated_clusters_match_reference(metric, threshold):
    x = identity_vectors(1500, 32, 60, spread=0.5, seed=1)
    index, _ = assert_same_as_reference(x, metric, threshold)
    assert index.num_labels > 20 and index.leaf_depths().max() >= 3  # a real tree


def test_unnormalised_euclidean_vectors_match_reference():
    x = identity_vectors(800, 16, 30, spread=1.0, seed=2, unit=False) * 7.0
    assert_same_as_reference(x, "euclidean", 3.0)


@pytest.mark.parametrize("metric,thresholds", [("cosine", (0.3, 0.5, 0.7)),
                                               ("euclidean", (0.8, 1.0, 1.2))])
def test_real_embeddings_match_reference(seed_embeddings, metric, thresholds):
    rng = np.random.default_rng(0)
    for threshold in thresholds:
        for order in (np.arange(len(seed_embeddings)), rng.permutation(len(seed_embeddings))):
            assert_same_as_reference(seed_embeddings[order], metric, threshold)


def test_real_embeddings_group_the_same_person(seed_embeddings):
    labels = HierarchicalRetrievalIndex(0.6, "cosine").insert(seed_embeddings)
    assert 1 < len(set(labels.tolist())) < len(seed_embeddings)


def test_ties_go_to_the_earlier_child():
    # Exactly representable: [1, 0] is at distance 1 from both [0, 0] and [2, 0].
    x = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    index, _ = assert_same_as_reference(x, "euclidean", 1.0)
    assert index.insert(np.array([[1.0, 0.0]])).tolist() == [0]
    # Cosine: [1, 0] is equally far from [1, 1] and [1, -1].
    c = np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 0.0]])
    assert_same_as_reference(c, "cosine", 0.5)


def test_duplicate_vectors_match_reference():
    base = identity_vectors(40, 8, 10, spread=0.3, seed=3)
    rng = np.random.default_rng(4)
    x = base[rng.integers(0, 40, 400)]
    for metric, threshold in (("euclidean", 0.0), ("euclidean", 0.2), ("cosine", 1e-9),
                              ("cosine", 0.05)):
        assert_same_as_reference(x, metric, threshold)


def test_exact_duplicates_share_a_label_at_zero_threshold():
    x = np.repeat(np.eye(3), 4, axis=0)
    assert HierarchicalRetrievalIndex(0.0, "euclidean").insert(x).tolist() == \
        [0] * 4 + [1] * 4 + [2] * 4


def test_first_far_vector_is_placed_beside_the_only_end_node():
    index = HierarchicalRetrievalIndex(0.1, "euclidean", mode="greedy")
    index.insert(np.array([[0.0], [10.0], [10.5]]))
    # 10 joins the root beside 0; 10.5 is closer to 10 than 10 is to 0: they get paired.
    assert index.leaf_depths().tolist() == [1, 2, 2]


# ---- the index API ---------------------------------------------------------------------------


def test_search_finds_the_inserted_label():
    x = identity_vectors(500, 32, 20, spread=0.3, seed=5)
    index = HierarchicalRetrievalIndex(0.4, "cosine")
    labels = index.insert(x)
    assert index.search(x[7]) == (labels[7], pytest.approx(index.search(x[7])[1]))
    found, dist = index.search_batch(x)
    assert found.shape == (500, 1) and (dist >= -1e-12).all()
    np.testing.assert_array_equal(found[:, 0], [index.search(v)[0] for v in x])


def test_batch_search_matches_reference_descent():
    x = identity_vectors(600, 16, 25, spread=0.6, seed=6)
    index, ref = assert_same_as_reference(x, "euclidean", 0.6)
    queries = identity_vectors(200, 16, 25, spread=0.6, seed=7)
    labels, dists = index.search_batch(queries, threads=2)
    expected = [ref.search(q) for q in queries]
    np.testing.assert_array_equal(labels[:, 0], [e.label for e, _ in expected])
    np.testing.assert_allclose(dists[:, 0], [d for _, d in expected], rtol=1e-12, atol=1e-12)


def test_k_nearest_end_nodes_start_with_the_greedy_answer():
    x = identity_vectors(800, 16, 40, spread=0.5, seed=8)
    index = HierarchicalRetrievalIndex(0.3, "cosine")
    index.insert(x)
    one, d_one = index.search_batch(x[:50], k=1)
    five, d_five = index.search_batch(x[:50], k=5)
    assert five.shape == (50, 5)
    np.testing.assert_array_equal(five[:, 0], one[:, 0])
    np.testing.assert_array_equal(d_five[:, 0], d_one[:, 0])
    assert (np.diff(d_five[:, 1:], axis=1) >= 0).all()
    assert all(len(set(row)) == 5 for row in five.tolist())


def test_a_wider_search_beam_finds_the_exact_nearest_end_node():
    x = identity_vectors(6000, 32, 1500, spread=0.3, seed=15)
    index = HierarchicalRetrievalIndex(0.1, "cosine", beam=2, max_children=8)
    index.insert(x[:5000])
    tree = index.to_arrays()
    ends = tree["labels"] >= 0
    means = tree["values"][ends] / np.linalg.norm(tree["values"][ends], axis=1, keepdims=True)
    queries = x[5000:]
    exact = tree["labels"][ends][np.argmax(queries @ means.T, axis=1)]
    recall = {w: (index.search_batch(queries, beam=w)[0][:, 0] == exact).mean() for w in (1, 2, 64)}
    assert recall[1] < recall[2] < recall[64] and recall[64] >= 0.99, recall
    # The default width is the insert's: column 0 is what an insert would join.
    np.testing.assert_array_equal(index.search_batch(queries)[0], index.search_batch(queries, beam=2)[0])
    with pytest.raises(HRIError, match="beam must be"):
        index.search_batch(queries, beam=0)


def test_k_beyond_the_number_of_labels_is_padded():
    index = HierarchicalRetrievalIndex(0.1, "euclidean")
    index.insert(np.array([[0.0, 0.0], [5.0, 0.0]]))
    labels, dists = index.search_batch([0.1, 0.0], k=4)
    assert labels.tolist() == [[0, 1, -1, -1]]
    assert np.isinf(dists[0, 2:]).all()


def test_matching_is_seed_compatible_and_resets():
    x = identity_vectors(300, 16, 10, spread=0.4, seed=9)
    matcher = HierarchicalRetrievalIndexMatching(metric="cosine", threshold=0.35, mode="greedy")
    first, times = matcher.match(x[:100])
    second, _ = matcher.match(x[100:])
    assert times.shape == (100,) and (times >= 0).all()
    np.testing.assert_array_equal(np.concatenate([first, second]),
                                  ReferenceHRI("cosine", 0.35).match(x))
    matcher.reset()
    np.testing.assert_array_equal(matcher.match(x[:100])[0], first)


# ---- persistence -----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_loaded_index_continues_like_one_that_never_stopped(tmp_path, metric):
    x = identity_vectors(1200, 24, 50, spread=0.5, seed=10)
    threshold = 0.3 if metric == "cosine" else 0.8
    whole = HierarchicalRetrievalIndex(threshold, metric).insert(x)
    first = HierarchicalRetrievalIndex(threshold, metric)
    head = first.insert(x[:700])
    path = first.save(tmp_path / "index")
    loaded = HierarchicalRetrievalIndex.load(path)
    assert (loaded.size, loaded.num_labels, loaded.metric) == (700, first.num_labels, metric)
    np.testing.assert_array_equal(np.concatenate([head, loaded.insert(x[700:])]), whole)


def test_index_saved_before_modes_loads_as_greedy(tmp_path):
    x = identity_vectors(300, 16, 12, spread=0.5, seed=12)
    old = HierarchicalRetrievalIndex(0.3, "cosine", mode="greedy")
    old.insert(x[:200])
    arrays = old.to_arrays()
    for name in ("mode", "beam", "max_children"):  # what format 1 files held before modes
        del arrays[name]
    np.savez(tmp_path / "old.npz", **arrays)
    loaded = HierarchicalRetrievalIndex.load(tmp_path / "old.npz")
    assert (loaded.mode, loaded.beam) == ("greedy", 1)
    np.testing.assert_array_equal(loaded.insert(x[200:]), old.insert(x[200:]))


@pytest.mark.parametrize("mode", ["balanced", "greedy"])
def test_saved_index_keeps_its_mode(tmp_path, mode):
    x = identity_vectors(900, 16, 40, spread=0.5, seed=13)
    whole = HierarchicalRetrievalIndex(0.3, mode=mode, beam=4).insert(x)
    first = HierarchicalRetrievalIndex(0.3, mode=mode, beam=4)
    head = first.insert(x[:500])
    loaded = HierarchicalRetrievalIndex.load(first.save(tmp_path / "i"))
    assert (loaded.mode, loaded.beam, loaded.max_children) == \
        (mode, 4, first.max_children)
    np.testing.assert_array_equal(np.concatenate([head, loaded.insert(x[500:])]), whole)


def test_saved_balanced_index_with_an_over_full_node_is_corrupt(tmp_path):
    x = identity_vectors(400, 16, 60, spread=0.3, seed=17)
    index = HierarchicalRetrievalIndex(0.1, max_children=32)
    index.insert(x)
    arrays = index.to_arrays()
    assert np.diff(arrays["child_ptr"]).max() > 8
    arrays["max_children"] = np.int64(8)
    np.savez(tmp_path / "i.npz", **arrays)
    with pytest.raises(CorruptIndexError, match="more than max_children"):
        HierarchicalRetrievalIndex.load(tmp_path / "i.npz")


def test_balanced_tree_splits_full_nodes_and_keeps_end_nodes_level():
    x = identity_vectors(3000, 16, 400, spread=0.2, seed=14)
    index = HierarchicalRetrievalIndex(0.05, "cosine", max_children=8)
    index.insert(x)
    tree = index.to_arrays()
    fanout = np.diff(tree["child_ptr"])
    assert index.num_labels > 300 and fanout.max() <= 8
    depths = index.leaf_depths()
    assert depths.min() == depths.max() >= 3  # a B-tree: every end node at one depth
    # A vector inserted again finds its own end node.
    labels = index.insert(x[:200])
    np.testing.assert_array_equal(labels, index.search_batch(x[:200])[0][:, 0])


@pytest.mark.parametrize("metric,threshold", [("cosine", 0.3), ("euclidean", 0.8)])
def test_original_mode_continues_after_a_save(tmp_path, metric, threshold):
    x = identity_vectors(800, 16, 40, spread=0.5, seed=16)
    whole = HierarchicalRetrievalIndex(threshold, metric, mode="original").insert(x)
    first = HierarchicalRetrievalIndex(threshold, metric, mode="original")
    head = first.insert(x[:450])
    loaded = HierarchicalRetrievalIndex.load(first.save(tmp_path / "i"))
    assert loaded.mode == "original"
    np.testing.assert_array_equal(np.concatenate([head, loaded.insert(x[450:])]), whole)
    # Its tree is the greedy rule's shape, flatter where the self-distance test misses.
    assert loaded.leaf_depths().max() >= 2
    with pytest.raises(HRIError, match="beam 1"):
        HierarchicalRetrievalIndex(threshold, metric, mode="original", beam=4)


def test_empty_index_round_trips(tmp_path):
    path = HierarchicalRetrievalIndex(0.5, "euclidean").save(tmp_path / "empty.npz")
    loaded = HierarchicalRetrievalIndex.load(path)
    assert loaded.size == 0 and loaded.insert([[1.0, 2.0]]).tolist() == [0]


def make_store(path, x):
    """A store with one stream 'cam' of len(x) faces (one per frame) embedded as ``x``."""
    from streamface.store import FaceRecords, FaceStore, FrameRecords

    n = len(x)
    store = FaceStore.create(path)
    store.create_stream("cam", crop_size=16, aligned_size=8)
    with store.writer("cam") as w:
        w.append(FrameRecords(time_us=np.arange(n) * 40_000 + 1_684_998_098_412_614,
                              width=np.full(n, 64), height=np.full(n, 64)),
                 FaceRecords(frame=np.arange(n), face=np.zeros(n, np.int32),
                             score=np.ones(n), box=np.zeros((n, 4), np.float32),
                             landmarks=np.zeros((n, 5, 2)),
                             crop=np.zeros((n, 16, 16, 3), np.uint8),
                             aligned=np.zeros((n, 8, 8, 3), np.uint8)))
        w.write_embeddings(0, x, model="sface")
    return store


@pytest.fixture
def store_vectors():
    return identity_vectors(60, 16, 5, spread=0.3, seed=11).astype(np.float32)


def test_store_index_labels_written_and_saved_beside_the_store(tmp_path, store_vectors):
    from streamface.store import FaceStore

    store = make_store(tmp_path / "s.zarr", store_vectors)
    clusters = np.arange(60) % 3 - 1  # cluster labels from elsewhere, noise (-1) included
    with store.writer("cam") as writer:
        writer.write_labels(clusters)
    index, labels = build_stream_index(store, "cam", 0.3)
    np.testing.assert_array_equal(
        labels, HierarchicalRetrievalIndex(0.3).insert(store_vectors))
    stream = FaceStore.open(tmp_path / "s.zarr").stream("cam")
    # The store keeps both kinds: the index labels beside the untouched cluster labels.
    np.testing.assert_array_equal(stream.read_labels(kind="index"), labels)
    assert stream.num_index_labelled == stream.num_labelled == 60
    np.testing.assert_array_equal(stream.read_labels(), clusters)
    np.testing.assert_array_equal(stream.read_labels(kind="cluster"), clusters)
    path = index_path_for_store(tmp_path / "s.zarr", "cam")
    assert path == tmp_path / "s.zarr.hri" / "cam.npz" and path.exists()
    assert HierarchicalRetrievalIndex.load_from_store(tmp_path / "s.zarr", "cam").size == 60


def test_store_keeps_cluster_and_index_labels_apart(tmp_path, store_vectors):
    from streamface.store import UNSET_LABEL, FaceStore

    store = make_store(tmp_path / "s.zarr", store_vectors)
    stream = store.stream("cam")
    # A stream written before index labels existed reads them as unset.
    assert stream.num_index_labelled == 0
    assert (stream.read_labels(kind="index") == UNSET_LABEL).all()
    with store.writer("cam") as writer:
        writer.write_labels(np.arange(20) % 4, kind="index")
        writer.write_labels(np.full(30, 7))
        writer.write_labels(np.arange(20, 40) % 4, start=20, kind="index")
        writer.write_labels(np.full(10, 5))  # a new cluster labelling replaces the old one
    stream = FaceStore.open(tmp_path / "s.zarr").stream("cam")
    assert (stream.num_labelled, stream.num_index_labelled) == (10, 40)
    np.testing.assert_array_equal(stream.read_labels(kind="index")[:40], np.arange(40) % 4)
    np.testing.assert_array_equal(stream.read_labels(10, 45, kind="index")[30:], [UNSET_LABEL] * 5)
    np.testing.assert_array_equal(stream.read_labels(), [5] * 10 + [UNSET_LABEL] * 50)
    with pytest.raises(ValueError, match="label kind must be one of"):
        stream.read_labels(kind="hri")
    with store.writer("cam") as writer, pytest.raises(ValueError, match="label kind"):
        writer.write_labels(np.zeros(3, int), kind="clusters")


def test_index_beside_a_remote_store_is_refused():
    with pytest.raises(HRIError, match="local store"):
        index_path_for_store("s3://bucket/s.zarr", "cam")


def test_cli_builds_and_queries_by_face_id(tmp_path, store_vectors):
    from click.testing import CliRunner

    from streamface.cli import main
    from streamface.store import FaceStore

    make_store(tmp_path / "s.zarr", store_vectors)
    runner = CliRunner()
    done = runner.invoke(main, ["index", "build", "--store", str(tmp_path / "s.zarr"),
                                "--threshold", "0.3"])
    assert done.exit_code == 0, done.output
    assert "cam: 60 faces" in done.output
    stream = FaceStore.open(tmp_path / "s.zarr").stream("cam")
    assert stream.num_labelled == 0  # index build writes index labels only
    face_id = str(stream.face_ids(7, 8)[0])
    label = int(stream.read_labels(kind="index")[7])
    done = runner.invoke(main, ["index", "query", "--store", str(tmp_path / "s.zarr"),
                                "--face-id", face_id, "-k", "2", "--faces", "3"])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].startswith(f"label {label}\t")
    assert lines[2].split("\t")[0].strip() == face_id  # the face itself is the nearest
    assert len(lines) == 2 + 3


def test_cli_errors_are_one_line(tmp_path, store_vectors):
    from click.testing import CliRunner

    from streamface.cli import main

    make_store(tmp_path / "s.zarr", store_vectors)
    runner = CliRunner()
    query = ["index", "query", "--store", str(tmp_path / "s.zarr")]
    done = runner.invoke(main, query + ["--face-id", "cam_frame_20230525070138412614_face_0"])
    assert done.exit_code == 1 and "no saved index" in done.output
    done = runner.invoke(main, query)
    assert done.exit_code == 1 and "exactly one of" in done.output
    done = runner.invoke(main, query + ["--face-id", "nonsense"])
    assert done.exit_code == 1 and "not a face id" in done.output
    done = runner.invoke(main, ["index", "build", "--store", str(tmp_path / "s.zarr"),
                                "--threshold", "0.3", "--stream", "nope"])
    assert done.exit_code == 1 and done.output.count("\n") == 1
    # A face id of the stream that it does not hold: the message keeps its closing quote.
    assert runner.invoke(main, ["index", "build", "--store", str(tmp_path / "s.zarr"),
                                "--threshold", "0.3"]).exit_code == 0
    done = runner.invoke(main, query + ["--face-id", "cam_frame_20230525070138412614_face_3"])
    assert done.exit_code == 1
    assert done.output == ("Error: no face 'cam_frame_20230525070138412614_face_3' "
                           "in stream 'cam'\n")


# ---- bad input -------------------------------------------------------------------------------


def test_errors_are_value_errors():
    assert issubclass(EmptyIndexError, HRIError) and issubclass(CorruptIndexError, HRIError)
    assert issubclass(HRIError, ValueError)


def test_empty_index_queries_raise():
    index = HierarchicalRetrievalIndex(0.5)
    with pytest.raises(EmptyIndexError, match="empty"):
        index.search([1.0, 0.0])
    with pytest.raises(EmptyIndexError):
        index.search_batch(np.ones((3, 2)), k=2)


@pytest.mark.parametrize("bad,match", [
    (np.ones((2, 5)), "dimension 4"),
    (np.array([[1.0, 2, 3, 4], [1, np.nan, 3, 4]]), "row 1 is not finite"),
    (np.array([[1.0, 2, 3, 4], [np.inf, 0, 0, 0]]), "not finite"),
    (np.array([[1.0, 2, 3, 4], [0, 0, 0, 0]]), "zero vector"),
    (np.array([[1.0, 2, 3, 4], [1e300, 0, 0, 0]]), "row 1 is too large"),
    (np.array([["a", "b", "c", "d"]]), "real numbers"),
    (np.ones((2, 2, 4)), "shape"),
])
def test_bad_vectors_insert_nothing(bad, match):
    index = HierarchicalRetrievalIndex(0.5, "cosine")
    index.insert(np.eye(4)[:2])
    with pytest.raises(HRIError, match=match):
        index.insert(bad)
    assert (index.size, index.num_labels) == (2, 2)
    assert index.insert(np.eye(4)[2:3]).tolist() == [2]


def test_bad_queries_raise():
    index = HierarchicalRetrievalIndex(0.5, "euclidean")
    index.insert(np.eye(3))
    with pytest.raises(HRIError, match="dimension 3"):
        index.search([1.0, 0.0])
    with pytest.raises(HRIError, match="not finite"):
        index.search_batch([[np.nan, 0, 0]])
    with pytest.raises(HRIError, match="k must be"):
        index.search_batch(np.eye(3), k=0)


@pytest.mark.parametrize("kwargs,match", [
    ({"metric": "manhattan", "threshold": 0.5}, "metric must be one of"),
    ({"metric": "cosine", "threshold": -1}, "threshold"),
    ({"metric": "cosine", "threshold": float("nan")}, "threshold"),
    ({"metric": "cosine", "threshold": "x"}, "threshold"),
])
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(HRIError, match=match):
        HierarchicalRetrievalIndexMatching(**kwargs)
    with pytest.raises(HRIError, match=match):
        HierarchicalRetrievalIndex(kwargs["threshold"], kwargs["metric"])


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "fast"}, "mode must be one of"),
    ({"beam": 0}, "beam must be"),
    ({"beam": 2.5}, "beam must be"),
    ({"max_children": 4}, "max_children must be"),
    ({"max_children": True}, "max_children must be"),
])
def test_bad_insert_rules_raise(kwargs, match):
    with pytest.raises(HRIError, match=match):
        HierarchicalRetrievalIndex(0.5, **kwargs)
    with pytest.raises(HRIError, match=match):
        HierarchicalRetrievalIndexMatching(threshold=0.5, **kwargs)


@pytest.fixture
def saved(tmp_path):
    index = HierarchicalRetrievalIndex(0.3, "cosine")
    index.insert(identity_vectors(200, 8, 10, spread=0.5, seed=12))
    return index, index.save(tmp_path / "good.npz")


def test_garbage_file_is_corrupt(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(os.urandom(300))
    with pytest.raises(CorruptIndexError, match="cannot read"):
        HierarchicalRetrievalIndex.load(path)


def test_truncated_file_is_corrupt(saved, tmp_path):
    _, path = saved
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptIndexError):
        HierarchicalRetrievalIndex.load(cut)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        HierarchicalRetrievalIndex.load(tmp_path / "nothing.npz")


@pytest.mark.parametrize("tamper,match", [
    (lambda a: a.pop("parents"), "lacks"),
    (lambda a: a.__setitem__("format_version", np.int64(99)), "format version"),
    (lambda a: a.__setitem__("metric", np.array("manhattan")), "invalid parameters"),
    (lambda a: a["parents"].__setitem__(3, 3), "parent/child"),
    (lambda a: a["child_idx"].__setitem__(0, a["child_idx"][1]), "parent/child"),
    (lambda a: a["labels"].__setitem__(np.flatnonzero(a["labels"] >= 0)[0], 10**6), "labels"),
    (lambda a: a["counts"].__setitem__(0, 5), "counts"),
    (lambda a: a["values"].__setitem__((1, 0), np.nan), "non-finite"),
    (lambda a: a.__setitem__("values", a["values"][:, :3]), "values must be"),
    (lambda a: a.__setitem__("child_ptr", a["child_ptr"][:-1]), "number of nodes"),
])
def test_tampered_tree_is_corrupt(saved, tmp_path, tamper, match):
    index, _ = saved
    arrays = {k: np.array(v, copy=True) for k, v in index.to_arrays().items()}
    tamper(arrays)
    path = tmp_path / "tampered.npz"
    np.savez(path, **arrays)
    with pytest.raises(CorruptIndexError, match=match):
        HierarchicalRetrievalIndex.load(path)


def test_zip_without_arrays_is_corrupt(tmp_path):
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CorruptIndexError):
        HierarchicalRetrievalIndex.load(path)
