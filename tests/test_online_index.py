"""``streamface run|ingest --index-threshold``: a live HRI label for every face as it is stored."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from engine_fixtures import engine_home  # noqa: F401
from pipeline_fixtures import clip, model_home  # noqa: F401

from streamface.cli import main
from streamface.identify.hri import HierarchicalRetrievalIndex, index_path_for_store
from streamface.store import FaceStore

THRESHOLD = 0.5
STREAM = "skynews_sample"


def run(clip, store, *extra):  # noqa: F811
    return CliRunner().invoke(main, ["run", str(clip), "--store", str(store),
                                     "--index-threshold", str(THRESHOLD), *extra])


def in_two_parts(command, store, streams) -> dict:
    """``command(*extra)`` on the clip's first 20 s, then on the rest into the same store:
    each stream's labelled faces after the first part."""
    first = command("--duration", "20")
    assert first.exit_code == 0, first.output
    labelled_first = {name: FaceStore.open(store).stream(name).num_index_labelled for name in streams}
    second = command()
    assert second.exit_code == 0, second.output
    return labelled_first


@pytest.fixture(scope="module")
def resumed(clip, model_home, tmp_path_factory):  # noqa: F811
    """The clip's first 20 s, then the rest in a second run on the same store."""
    store = tmp_path_factory.mktemp("online") / "sky.zarr"
    labelled_first = in_two_parts(lambda *extra: run(clip, store, *extra), store, [STREAM])
    return store, labelled_first[STREAM]


def test_every_stored_face_gets_a_live_label(resumed):
    store, labelled_first = resumed
    stream = FaceStore.open(store).stream(STREAM)
    assert 0 < labelled_first < stream.num_faces
    assert stream.num_index_labelled == stream.num_embedded == stream.num_faces
    assert (stream.read_labels(kind="index") >= 0).all()
    assert stream.num_labelled == 0  # the cluster labels are another kind, left unset


def test_live_labels_use_the_default_insert_rule(resumed):
    store, _ = resumed
    saved = HierarchicalRetrievalIndex.load(index_path_for_store(store, STREAM))
    default = HierarchicalRetrievalIndex(THRESHOLD)
    assert (saved.mode, saved.beam, saved.max_children) == \
        (default.mode, default.beam, default.max_children) == ("balanced", 16, 32)


def test_live_labels_equal_one_index_over_all_faces_in_order(resumed):
    store, _ = resumed
    stream = FaceStore.open(store).stream(STREAM)
    offline = HierarchicalRetrievalIndex(THRESHOLD, "cosine").insert(stream.read_embeddings())
    np.testing.assert_array_equal(stream.read_labels(kind="index"), offline)


def test_the_index_is_saved_beside_the_store_and_continues(resumed):
    store, _ = resumed
    stream = FaceStore.open(store).stream(STREAM)
    saved = HierarchicalRetrievalIndex.load(index_path_for_store(store, STREAM))
    assert saved.size == stream.num_faces
    assert saved.num_labels == len(np.unique(stream.read_labels(kind="index")))
    assert_saved_face_labels_are_the_stored_ones(store, STREAM)


def assert_saved_face_labels_are_the_stored_ones(store, name):
    with np.load(index_path_for_store(store, name)) as saved:
        np.testing.assert_array_equal(saved["face_labels"], FaceStore.open(store).stream(name).read_labels(kind="index"))


def test_labels_from_another_threshold_are_not_mixed(clip, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "sky.zarr"
    assert run(clip, store, "--duration", "20").exit_code == 0
    before = FaceStore.open(store).stream(STREAM).read_labels(kind="index")
    result = CliRunner().invoke(main, ["run", str(clip), "--store", str(store),
                                       "--index-threshold", "0.05"])
    assert result.exit_code != 0
    assert "did not make" in result.output and "Traceback" not in result.output
    after = FaceStore.open(store).stream(STREAM)
    assert after.num_faces == len(before)  # refused before anything was added
    np.testing.assert_array_equal(after.read_labels(kind="index"), before)


# ---- ingest: one index per stream ----------------------------------------------------------------

INGEST_STREAMS = ("news", "replay")


def ingest(clip, store, *extra, threshold=THRESHOLD):  # noqa: F811
    sources = [arg for name in INGEST_STREAMS for arg in ("--source", f"{name}={clip}")]
    return CliRunner().invoke(main, ["ingest", *sources, "--store", str(store),
                                     "--index-threshold", str(threshold), *extra])


@pytest.fixture(scope="module")
def ingested(clip, model_home, tmp_path_factory):  # noqa: F811
    """Two streams of the clip: the first 20 s, then the rest in a second ingest."""
    store = tmp_path_factory.mktemp("online-ingest") / "news.zarr"
    return store, in_two_parts(lambda *extra: ingest(clip, store, *extra), store, INGEST_STREAMS)


@pytest.mark.parametrize("name", INGEST_STREAMS)
def test_ingest_labels_every_face_of_each_stream_as_one_index_over_it(ingested, name):
    store, labelled_first = ingested
    stream = FaceStore.open(store).stream(name)
    assert 0 < labelled_first[name] < stream.num_faces
    assert stream.num_index_labelled == stream.num_embedded == stream.num_faces
    offline = HierarchicalRetrievalIndex(THRESHOLD, "cosine").insert(stream.read_embeddings())
    np.testing.assert_array_equal(stream.read_labels(kind="index"), offline)
    saved = HierarchicalRetrievalIndex.load(index_path_for_store(store, name))
    assert saved.size == stream.num_faces
    assert_saved_face_labels_are_the_stored_ones(store, name)


def test_ingest_labels_equal_runs(ingested, resumed):
    """The same clip, batched across two streams or alone: the same live labels."""
    ingest_store, _ = ingested
    run_store, _ = resumed
    ran = FaceStore.open(run_store).stream(STREAM).read_labels(kind="index")
    for name in INGEST_STREAMS:
        np.testing.assert_array_equal(FaceStore.open(ingest_store).stream(name).read_labels(kind="index"), ran)


def test_ingest_refuses_labels_from_another_threshold_and_keeps_the_stream(clip, model_home,  # noqa: F811
                                                                         tmp_path):
    store = tmp_path / "news.zarr"
    assert ingest(clip, store, "--duration", "20").exit_code == 0
    saved = {n: index_path_for_store(store, n).read_bytes() for n in INGEST_STREAMS}
    before = {n: FaceStore.open(store).stream(n).read_labels(kind="index") for n in INGEST_STREAMS}
    result = ingest(clip, store, threshold=0.05)
    assert result.exit_code != 0
    assert "did not make" in result.output and "Traceback" not in result.output
    for name in INGEST_STREAMS:
        after = FaceStore.open(store).stream(name)
        assert after.num_faces == len(before[name])  # refused before anything was added
        np.testing.assert_array_equal(after.read_labels(kind="index"), before[name])
        assert index_path_for_store(store, name).read_bytes() == saved[name]


def test_ingest_index_needs_the_analysis_stage(tmp_path):
    from streamface.ingest.extraction import FaceExtraction
    from streamface.ingest.multi_stream import Ingest
    from streamface.ingest.capture import StreamCapture

    capture = StreamCapture("news", "clip.mp4", tmp_path)
    job = Ingest([capture], FaceExtraction(None, None), None, store=tmp_path / "s.zarr", index_threshold=0.5)
    with pytest.raises(ValueError, match="needs the analysis stage"):
        job.call()
