"""``streamface run --index-threshold``: a live HRI label for every face as it is stored."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from engine_fixtures import engine_home  # noqa: F401
from pipeline_fixtures import clip, model_home  # noqa: F401

from streamface.cli import main
from streamface.hri import HierarchicalRetrievalIndex, index_path_for_store
from streamface.store import FaceStore

THRESHOLD = 0.5
STREAM = "skynews_sample"


def run(clip, store, *extra):  # noqa: F811
    return CliRunner().invoke(main, ["run", str(clip), "--store", str(store),
                                     "--index-threshold", str(THRESHOLD), *extra])


@pytest.fixture(scope="module")
def resumed(clip, model_home, tmp_path_factory):  # noqa: F811
    """The clip's first 20 s, then the rest in a second run on the same store."""
    store = tmp_path_factory.mktemp("online") / "sky.zarr"
    first = run(clip, store, "--duration", "20")
    assert first.exit_code == 0, first.output
    labelled_first = FaceStore.open(store).stream(STREAM).num_labelled
    second = run(clip, store)
    assert second.exit_code == 0, second.output
    return store, labelled_first


def test_every_stored_face_gets_a_live_label(resumed):
    store, labelled_first = resumed
    stream = FaceStore.open(store).stream(STREAM)
    assert 0 < labelled_first < stream.num_faces
    assert stream.num_labelled == stream.num_embedded == stream.num_faces
    assert (stream.read_labels() >= 0).all()


def test_live_labels_equal_one_index_over_all_faces_in_order(resumed):
    store, _ = resumed
    stream = FaceStore.open(store).stream(STREAM)
    offline = HierarchicalRetrievalIndex(THRESHOLD, "cosine").insert(stream.read_embeddings())
    np.testing.assert_array_equal(stream.read_labels(), offline)


def test_the_index_is_saved_beside_the_store_and_continues(resumed):
    store, _ = resumed
    stream = FaceStore.open(store).stream(STREAM)
    saved = HierarchicalRetrievalIndex.load(index_path_for_store(store, STREAM))
    assert saved.size == stream.num_faces
    assert saved.num_labels == len(np.unique(stream.read_labels()))


def test_labels_from_another_threshold_are_not_mixed(clip, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "sky.zarr"
    assert run(clip, store, "--duration", "20").exit_code == 0
    before = FaceStore.open(store).stream(STREAM).read_labels()
    result = CliRunner().invoke(main, ["run", str(clip), "--store", str(store),
                                       "--index-threshold", "0.05"])
    assert result.exit_code != 0
    assert "did not make" in result.output and "Traceback" not in result.output
    after = FaceStore.open(store).stream(STREAM)
    assert after.num_faces == len(before)  # refused before anything was added
    np.testing.assert_array_equal(after.read_labels(), before)
