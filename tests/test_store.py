"""streamface.store: layout, appends, commits, updates, errors, locking on URLs, ``streamface info``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import fsspec
import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from streamface.cli import main as cli
from streamface.store import (
    STORE_VERSION,
    UNSET_LABEL,
    FaceRecords,
    FaceStore,
    FrameRecords,
    NotAStoreError,
    StoreError,
    StoreExistsError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreVersionError,
    StreamNotFoundError,
    format_face_ids,
    parse_face_id,
    validate_stream_name,
)
from streamface.store import stream as stream_module
from streamface.store.table import GrowingArray

CROP, ALIGNED = 16, 8
T0 = 1_684_998_098_412_614  # 2023-05-25 07:01:38.412614 UTC


def frames(first: int, n: int) -> FrameRecords:
    rows = np.arange(first, first + n)
    return FrameRecords(time_us=T0 + rows * 40_000, width=np.full(n, 640), height=np.full(n, 360))


def faces(first_row: int, frame_rows: np.ndarray) -> FaceRecords:
    """One face per entry of ``frame_rows``, content a function of the face row."""
    n = len(frame_rows)
    rows = np.arange(first_row, first_row + n)
    face_index = np.zeros(n, np.int32)
    for i in range(1, n):
        face_index[i] = face_index[i - 1] + 1 if frame_rows[i] == frame_rows[i - 1] else 0
    return FaceRecords(
        frame=np.asarray(frame_rows), face=face_index, score=(rows % 100) / 100.0,
        box=np.tile(rows[:, None], (1, 4)).astype(np.float32), landmarks=np.ones((n, 5, 2)) * rows[:, None, None],
        crop=(np.ones((n, CROP, CROP, 3)) * (rows % 256)[:, None, None, None]).astype(np.uint8),
        aligned=(np.ones((n, ALIGNED, ALIGNED, 3)) * ((rows * 3) % 256)[:, None, None, None]).astype(np.uint8),
    )


def write_rows(writer, n_frames: int, faces_per_frame: int = 2) -> None:
    """Append ``n_frames`` frames with ``faces_per_frame`` faces each (one ``append`` call)."""
    first = writer.num_faces + writer.pending_faces
    batch = faces(first, np.repeat(np.arange(n_frames), faces_per_frame))
    writer.append(frames(writer.num_frames + writer.pending_frames, n_frames), batch)


@pytest.fixture
def store(tmp_path):
    return FaceStore.create(tmp_path / "s.zarr")


@pytest.fixture
def memory_url():
    url = f"memory://streamface-test-{uuid.uuid4().hex}/s.zarr"
    yield url
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def new_writer(store, name="cam", **kw):
    return store.writer(name, create=True, crop_size=CROP, aligned_size=ALIGNED, **kw)


# ---- appends and reads ---------------------------------------------------------------------------


def test_appended_rows_read_back_with_their_values(store):
    with new_writer(store) as w:
        write_rows(w, 5)
    s = store.stream("cam")
    assert (s.num_frames, s.num_faces) == (5, 10)
    got = s.read_faces()
    want = faces(0, np.repeat(np.arange(5), 2)).validate(CROP, ALIGNED)
    for name in ("frame", "face", "score", "box", "landmarks", "crop", "aligned", "crop_size"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    np.testing.assert_array_equal(got.row, np.arange(10))
    assert np.isnan(got.blur).all() and (got.match == -1).all()
    fr = s.read_frames(1, 3)
    np.testing.assert_array_equal(fr.time_us, T0 + np.array([1, 2]) * 40_000)
    assert fr.width.dtype == np.int32 and fr.pts.dtype == np.float64


def test_read_faces_returns_only_requested_columns(store):
    with new_writer(store) as w:
        write_rows(w, 2)
    got = store.stream("cam").read_faces(1, 3, columns=["score", "crop"])
    assert got.box is None and got.aligned is None
    assert got.crop.shape == (2, CROP, CROP, 3) and got.crop_size.shape == (2, 2)
    with pytest.raises(ValueError, match="unknown face columns"):
        store.stream("cam").read_faces(columns=["nope"])


def test_small_crops_are_padded_and_come_back_at_true_size(store):
    crops = [np.full((12, 14, 3), 7, np.uint8), np.full((16, 9, 3), 9, np.uint8)]
    packed, sizes = FaceRecords.pack_crops(crops, CROP)
    with new_writer(store) as w:
        w.append(frames(0, 1), FaceRecords(frame=[0, 0], face=[0, 1], score=[0.9, 0.8], box=np.zeros((2, 4)),
                                   landmarks=np.zeros((2, 5, 2)), crop=packed, crop_size=sizes,
                                   aligned=np.zeros((2, ALIGNED, ALIGNED, 3), np.uint8)))
    back = store.stream("cam").read_faces(columns=["crop"]).crop_images()
    assert [c.shape for c in back] == [(12, 14, 3), (16, 9, 3)]
    for a, b in zip(back, crops):
        np.testing.assert_array_equal(a, b)


def test_a_list_of_crops_of_varying_size_is_packed_on_append(store):
    crops = [np.full((12, 14, 3), 7, np.uint8), np.full((16, 9, 3), 9, np.uint8)]
    with new_writer(store) as w:
        w.append(frames(0, 1), FaceRecords(frame=[0, 0], face=[0, 1], score=[0.9, 0.8], box=np.zeros((2, 4)),
                                   landmarks=np.zeros((2, 5, 2)), crop=crops,
                                   aligned=np.zeros((2, ALIGNED, ALIGNED, 3), np.uint8)))
    back = store.stream("cam").read_faces(columns=["crop"]).crop_images()
    for a, b in zip(back, crops, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_list_of_crops_must_have_one_crop_per_face(store):
    with new_writer(store) as w, pytest.raises(ValueError, match="expected 2 crops"):
        w.append(frames(0, 1), FaceRecords(frame=[0, 0], face=[0, 1], score=[0.9, 0.8], box=np.zeros((2, 4)),
                                   landmarks=np.zeros((2, 5, 2)), crop=[np.zeros((4, 4, 3), np.uint8)],
                                   aligned=np.zeros((2, ALIGNED, ALIGNED, 3), np.uint8)))


def test_reading_past_the_committed_rows_is_an_index_error(store):
    with new_writer(store) as w:
        write_rows(w, 2)
    s = store.stream("cam")
    with pytest.raises(IndexError, match="4 committed"):
        s.read_faces(0, 5)
    with pytest.raises(IndexError):
        s.read_frames(3)


def test_face_ids_follow_the_seed_naming_and_map_back_to_rows(store):
    with new_writer(store, name="skynews") as w:
        write_rows(w, 2)
    s = store.stream("skynews")
    ids = s.face_ids()
    assert ids.tolist() == ["skynews_frame_20230525070138412614_face_0", "skynews_frame_20230525070138412614_face_1",
                            "skynews_frame_20230525070138452614_face_0", "skynews_frame_20230525070138452614_face_1"]
    np.testing.assert_array_equal(s.rows_of([ids[3] + ".png", ids[0]]), [3, 0])
    with pytest.raises(KeyError):
        s.rows_of(["skynews_frame_20230525070138412614_face_9"])


def test_face_id_parsing_inverts_formatting():
    name = "skynews_frame_20230525100138412614_face_1.png"
    fid = parse_face_id(name)
    assert (fid.stream, fid.face) == ("skynews", 1)
    assert format_face_ids("skynews", np.array([fid.time_us]), np.array([1]))[0] + ".png" == name
    with pytest.raises(ValueError):
        parse_face_id("skynews_frame_2023_face_1")


def test_kept_frame_images_round_trip(store):
    png = io.BytesIO()
    Image.new("RGB", (4, 3), (1, 2, 3)).save(png, format="PNG")
    blobs = [png.getvalue(), b"\xff\xd8jpeg-ish"]
    with new_writer(store) as w:
        w.append_frames(frames(0, 1))  # kept without an image
        f = frames(1, 2)
        f.images = blobs
        w.append_frames(f)
    s = store.stream("cam")
    assert s.has_images
    assert s.read_frame_images() == [b""] + blobs
    assert s.read_frames(1, 3, images=True).images == blobs


# ---- buffering and commits -----------------------------------------------------------------------


def test_buffered_rows_are_invisible_until_flushed(store):
    w = new_writer(store, flush_rows=100)
    reader = store.stream("cam")
    write_rows(w, 10)  # 20 faces buffered
    assert w.pending_faces == 20 and w.num_faces == 0
    assert reader.refresh().num_faces == 0
    write_rows(w, 45)  # 110 faces: flushes
    assert w.pending_faces == 0
    assert reader.num_faces == 0, "a reader's snapshot does not move by itself"
    assert reader.refresh().num_faces == 110
    write_rows(w, 1)
    w.close()
    assert reader.refresh().num_faces == 112


def test_faces_must_refer_to_appended_frames(store):
    with new_writer(store) as w:
        w.append_frames(frames(0, 1))
        with pytest.raises(ValueError, match="append the frames first"):
            w.append_faces(faces(0, np.array([1])))
        with pytest.raises(ValueError, match="counts within the batch"):
            w.append(frames(1, 1), faces(0, np.array([1])))


def test_frames_and_the_faces_appended_after_them_share_a_commit(store):
    with new_writer(store, flush_rows=2) as w:
        rows = w.append_frames(frames(0, 3))
        w.append_faces(faces(0, np.repeat(rows, 2)))
        assert w.num_frames == 0, "nothing commits between a frame and its faces"
        rows = w.append_frames(frames(3, 1))  # flushes the 3 frames and 6 faces before buffering
        assert (w.num_frames, w.num_faces, w.pending_frames) == (3, 6, 1)
        w.append_faces(faces(6, rows))
    s = store.stream("cam")
    assert (s.num_frames, s.num_faces) == (4, 7)
    np.testing.assert_array_equal(s.read_faces(columns=["frame"]).frame, [0, 0, 1, 1, 2, 2, 3])


@pytest.mark.parametrize("field, value, message", [
    ("crop", np.zeros((1, CROP, CROP, 3), np.float32), "crop: expected dtype uint8"),
    ("aligned", np.zeros((1, ALIGNED + 1, ALIGNED + 1, 3), np.uint8), "aligned: expected shape"),
    ("box", np.zeros((2, 4)), "box: has 2 rows, expected 1"),
    ("landmarks", np.zeros((1, 4, 2)), "landmarks: expected shape"),
    ("crop", np.zeros((1, CROP + 1, CROP, 3), np.uint8), "exceed the stream's crop_size"),
    ("aligned", np.zeros((1, ALIGNED, ALIGNED, 3), np.uint16), "aligned: expected dtype uint8"),
])
def test_malformed_face_records_are_refused_before_anything_is_written(store, field, value, message):
    good = faces(0, np.array([0]))
    setattr(good, field, value)
    with new_writer(store) as w:
        with pytest.raises(ValueError, match=message):
            w.append(frames(0, 1), good)
    assert store.stream("cam").num_faces == 0


def test_a_writer_dying_between_writing_arrays_and_committing_leaves_the_last_commit(store, monkeypatch):
    with new_writer(store, flush_rows=0) as w:
        write_rows(w, 3)
    w = new_writer(store, flush_rows=0)
    original = stream_module.write_rows

    def dies_at_crops(writes):
        writes = list(writes)
        original([w for w in writes if w[0].spec.path != "faces/crop"])
        raise KeyboardInterrupt("killed mid-append")

    monkeypatch.setattr(stream_module, "write_rows", dies_at_crops)
    with pytest.raises(KeyboardInterrupt):
        write_rows(w, 4)  # frames and the other face columns were written past the counters
    w._lock.release()  # what the kernel does for a dead process
    monkeypatch.setattr(stream_module, "write_rows", original)

    s = store.stream("cam")
    assert (s.num_frames, s.num_faces) == (3, 6)
    with new_writer(store, flush_rows=0) as w:  # resumes: cuts the arrays back, appends after row 6
        assert w._faces["frame"].capacity == 6
        write_rows(w, 2)
    s = store.stream("cam")
    want = faces(0, np.repeat(np.arange(5), 2)).validate(CROP, ALIGNED)
    got = s.read_faces()
    for name in ("frame", "face", "score", "crop", "aligned"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    np.testing.assert_array_equal(s.read_frames().time_us, T0 + np.arange(5) * 40_000)


@settings(max_examples=15, deadline=None)
@given(batches=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3)), min_size=1, max_size=8),
       flush_rows=st.integers(0, 20))
def test_any_sequence_of_batches_reads_back_in_order(batches, flush_rows):
    url = f"memory://streamface-hyp-{uuid.uuid4().hex}/s.zarr"
    store = FaceStore.create(url)
    with new_writer(store, flush_rows=flush_rows) as w:
        for n_frames, per_frame in batches:
            write_rows(w, n_frames, per_frame)
    s = store.stream("cam")
    n_faces = sum(n * k for n, k in batches)
    assert (s.num_frames, s.num_faces) == (sum(n for n, _ in batches), n_faces)
    got = s.read_faces(columns=["score", "crop", "frame"])
    np.testing.assert_array_equal(got.crop[:, 0, 0, 0], (np.arange(n_faces) % 256).astype(np.uint8))
    assert (np.diff(got.frame) >= 0).all()
    fs, path = fsspec.core.url_to_fs(url)
    fs.rm(path, recursive=True)


# ---- columns filled later: embeddings, labels, attributes ----------------------------------------


def test_embeddings_fill_a_committed_prefix(store):
    emb = np.random.default_rng(0).random((10, 32), np.float32)
    with new_writer(store) as w:
        write_rows(w, 5)
        w.write_embeddings(0, emb[:4], model="sface")
        w.write_embeddings(4, emb[4:7], model="sface")
        with pytest.raises(IndexError, match="gap"):
            w.write_embeddings(8, emb[8:], model="sface")
        with pytest.raises(IndexError, match="10 faces are committed"):
            w.write_embeddings(7, np.zeros((4, 32), np.float32), model="sface")
    s = store.stream("cam")
    assert (s.num_embedded, s.embedding_dim, s.embedding_model) == (7, 32, "sface")
    np.testing.assert_array_equal(s.read_embeddings(), emb[:7])
    with pytest.raises(IndexError):
        s.read_embeddings(0, 8)


def test_rewriting_embeddings_inside_the_prefix_keeps_the_rest(store):
    emb = np.ones((6, 4), np.float32)
    with new_writer(store) as w:
        write_rows(w, 3)
        w.write_embeddings(0, emb, model="m")
        w.write_embeddings(2, emb[:2] * 5, model="m")
    got = store.stream("cam").read_embeddings()
    np.testing.assert_array_equal(got[:, 0], [1, 1, 5, 5, 1, 1])


def test_another_embedding_model_replaces_embeddings_only_from_row_zero(store):
    with new_writer(store) as w:
        write_rows(w, 3)
        w.write_embeddings(0, np.ones((6, 4), np.float32), model="a")
        with pytest.raises(ValueError, match="from row 0"):
            w.write_embeddings(2, np.ones((1, 8), np.float32), model="b")
        with pytest.raises(IndexError, match="6 faces are committed"):
            w.write_embeddings(0, np.ones((7, 8), np.float32), model="b")
        assert (w.num_embedded, w.embedding_model) == (6, "a"), "a refused write drops nothing"
        w.write_embeddings(0, np.full((2, 8), 2, np.float32), model="b")
    s = store.stream("cam")
    assert (s.num_embedded, s.embedding_dim, s.embedding_model) == (2, 8, "b")


def test_a_kill_while_overwriting_embeddings_leaves_the_untouched_prefix(store, monkeypatch):
    with new_writer(store) as w:
        write_rows(w, 5)
        w.write_embeddings(0, np.ones((10, 4), np.float32), model="m")
    w = new_writer(store)

    def dies(self, start, values):
        raise KeyboardInterrupt("killed mid-update")

    monkeypatch.setattr(GrowingArray, "write", dies)
    with pytest.raises(KeyboardInterrupt):
        w.write_embeddings(6, np.zeros((2, 4), np.float32), model="m")
    w._lock.release()
    s = store.stream("cam")
    assert s.num_embedded == 6
    np.testing.assert_array_equal(s.read_embeddings(), np.ones((6, 4), np.float32))


def test_labels_are_written_wholesale_and_new_faces_are_unset(store):
    with new_writer(store) as w:
        write_rows(w, 2)
        w.write_labels(np.array([0, 0, 1, -1]))
        write_rows(w, 1)
        w.flush()
    s = store.stream("cam")
    assert (s.num_faces, s.num_labelled) == (6, 4)
    np.testing.assert_array_equal(s.read_labels(), [0, 0, 1, -1, UNSET_LABEL, UNSET_LABEL])
    with new_writer(store) as w:
        w.write_labels(np.array([3, 3]))
    s = store.stream("cam")
    assert s.num_labelled == 2
    np.testing.assert_array_equal(s.read_labels(), [3, 3] + [UNSET_LABEL] * 4)


def test_a_kill_while_relabelling_leaves_no_labels_rather_than_a_mix(store, monkeypatch):
    with new_writer(store) as w:
        write_rows(w, 2)
        w.write_labels(np.array([0, 1, 2, 3]))
    w = new_writer(store)
    monkeypatch.setattr(GrowingArray, "write", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        w.write_labels(np.array([9, 9, 9, 9]))
    w._lock.release()
    s = store.stream("cam")
    assert s.num_labelled == 0
    assert (s.read_labels() == UNSET_LABEL).all()


def test_named_attributes_keep_their_class_names(store):
    ages = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
    probs = np.round(np.random.default_rng(1).dirichlet(np.ones(9), 4), 2)
    with new_writer(store) as w:
        write_rows(w, 2)
        w.write_attribute("age", 0, probs, classes=ages)
        w.write_attribute("mask", 0, np.array([0.0, 0.1, 0.0]))
        w.write_attribute("pose", 0, np.zeros((4, 3)), classes=["yaw", "pitch", "roll"])
        with pytest.raises(ValueError, match="classes"):
            w.write_attribute("gender", 0, np.zeros((4, 2)), classes=["Male"])
        with pytest.raises(ValueError, match="invalid attribute name"):
            w.write_attribute("../x", 0, np.zeros(4))
    s = store.stream("cam")
    assert s.attribute_names == ["age", "mask", "pose"]
    assert s.attribute_classes("age") == ages and s.attribute_classes("mask") is None
    assert s.num_attribute_rows("mask") == 3
    np.testing.assert_allclose(s.read_attribute("age"), probs.astype(np.float32))
    with pytest.raises(KeyError):
        s.read_attribute("race")


# ---- opening: versions, not-a-store, read-only, names --------------------------------------------


def test_unknown_newer_version_is_refused(tmp_path):
    FaceStore.create(tmp_path / "s.zarr")
    zarr.open_group(tmp_path / "s.zarr", mode="r+").attrs["streamface_store_version"] = STORE_VERSION + 1
    with pytest.raises(StoreVersionError, match=f"format version {STORE_VERSION + 1}"):
        FaceStore.open(tmp_path / "s.zarr")


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "path does not exist"),
    (lambda p: p.mkdir(), "directory is empty"),
    (lambda p: p.write_text("x"), "it is a file"),
    (lambda p: (p.mkdir(), (p / "a.txt").write_text("x")), "no zarr.json"),
    (lambda p: zarr.open_group(p, mode="w"), "without 'streamface_store_version'"),
    (lambda p: zarr.create_array(p, shape=(3,), dtype="i4"), "not a Zarr group"),
])
def test_locations_without_a_store_give_one_clear_error(tmp_path, make, message):
    path = tmp_path / "x.zarr"
    make(path)
    with pytest.raises(NotAStoreError, match=message) as err:
        FaceStore.open(path, mode="r")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_opening_a_missing_store_read_only_creates_nothing(tmp_path):
    with pytest.raises(NotAStoreError):
        FaceStore.open(tmp_path / "missing.zarr", mode="r+")
    assert not (tmp_path / "missing.zarr").exists()


def test_create_refuses_to_write_over_other_data(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(StoreExistsError):
        FaceStore.open(tmp_path / "d", mode="a")
    FaceStore.create(tmp_path / "s.zarr")
    with pytest.raises(StoreExistsError):
        FaceStore.create(tmp_path / "s.zarr")
    assert FaceStore.open(tmp_path / "s.zarr", mode="a").version == STORE_VERSION


def _snapshot(root):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def test_read_only_opening_changes_nothing_and_cannot_write(store, tmp_path):
    with new_writer(store) as w:
        write_rows(w, 3)
        w.write_labels(np.zeros(6, np.int32))
    before = _snapshot(tmp_path / "s.zarr")
    ro = FaceStore.open(tmp_path / "s.zarr", mode="r")
    s = ro.stream("cam")
    s.read_faces(), s.read_frames(), s.read_labels(), s.face_ids(), ro.nbytes()
    with pytest.raises(StoreReadOnlyError):
        ro.writer("cam")
    with pytest.raises(StoreReadOnlyError):
        ro.create_stream("other")
    assert _snapshot(tmp_path / "s.zarr") == before


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "a..b", "", "with space", "zarr.json",
                                  "__reserved", "back\\slash", "ünï", "nul\x00", "/abs", "x" * 201])
def test_stream_names_that_could_leave_the_store_are_refused(store, name):
    with pytest.raises(ValueError, match="stream name"):
        validate_stream_name(name)
    with pytest.raises(ValueError, match="stream name"):
        store.create_stream(name)
    with pytest.raises(ValueError, match="stream name"):
        store.writer(name, create=True)
    with pytest.raises(ValueError, match="stream name"):
        store.stream(name)


def test_valid_stream_names_are_accepted(store):
    for name in ("skynews", "BBC-News.1_HD", "a"):
        store.create_stream(name)
    assert store.streams == ["BBC-News.1_HD", "a", "skynews"]


def test_unknown_stream_names_the_streams_there_are(store):
    store.create_stream("skynews")
    with pytest.raises(StreamNotFoundError, match=r"no stream 'bbc'.*\['skynews'\]"):
        store.stream("bbc")
    with pytest.raises(StreamNotFoundError, match="create=True"):
        store.writer("bbc")


def test_stream_configuration_is_fixed_at_creation(store):
    store.create_stream("cam", aligned_size=128)
    assert store.stream("cam").config.aligned_size == 128
    with pytest.raises(StoreError, match="aligned_size=128"):
        store.writer("cam", aligned_size=112)
    with pytest.raises(ValueError, match="crop_size"):
        store.create_stream("x", crop_size=4)


# ---- fsspec URLs and leases ----------------------------------------------------------------------


def test_memory_url_store_round_trips(memory_url):
    store = FaceStore.create(memory_url)
    with new_writer(store) as w:
        write_rows(w, 3)
        w.write_embeddings(0, np.ones((6, 4), np.float32), model="m")
    again = FaceStore.open(memory_url)
    s = again.stream("cam")
    assert (s.num_frames, s.num_faces, s.num_embedded) == (3, 6, 6)
    np.testing.assert_array_equal(s.read_faces(columns=["crop"]).crop[:, 0, 0, 0], np.arange(6))
    assert again.nbytes("cam") > 0


def test_memory_url_without_a_store_gives_one_clear_error(memory_url):
    with pytest.raises(NotAStoreError, match="path does not exist"):
        FaceStore.open(memory_url)
    fs, path = fsspec.core.url_to_fs(memory_url)
    fs.pipe_file(f"{path}/other.txt", b"x")
    with pytest.raises(NotAStoreError, match="no zarr.json"):
        FaceStore.open(memory_url, mode="r+")
    with pytest.raises(StoreExistsError):
        FaceStore.open(memory_url, mode="a")


def test_file_url_is_a_local_store_with_an_os_lock(tmp_path):
    store = FaceStore.create(f"file://{tmp_path}/s.zarr")
    with new_writer(store) as w:
        write_rows(w, 1)
        assert (tmp_path / "s.zarr" / "cam" / "writer.lock").is_file()
    assert FaceStore.open(tmp_path / "s.zarr").stream("cam").num_faces == 2


def test_info_reads_a_url_store(memory_url):
    with new_writer(FaceStore.create(memory_url)) as w:
        write_rows(w, 2)
    result = CliRunner().invoke(cli, ["info", memory_url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["streams"]["cam"]["faces"] == 4


def test_lease_refuses_a_second_writer_and_is_released_on_close(memory_url):
    store = FaceStore.create(memory_url)
    w = new_writer(store)
    with pytest.raises(StoreLockedError, match=f"pid {os.getpid()} on host .*force=True"):
        store.writer("cam")
    w.close()
    store.writer("cam").close()


def test_forced_takeover_stops_the_old_writer_at_its_next_commit(memory_url):
    store = FaceStore.create(memory_url)
    old = new_writer(store)
    new = store.writer("cam", force=True)
    write_rows(old, 1)
    with pytest.raises(StoreLockedError, match="taken over"):
        old.flush()
    new.close()


def _write_lease(url, holder):
    fs, path = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{path}/cam/writer.lease", json.dumps(holder).encode())


def test_lease_of_a_dead_process_on_this_host_is_taken_over(memory_url):
    store = FaceStore.create(memory_url)
    store.create_stream("cam")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    _write_lease(memory_url, {"host": socket.gethostname(), "pid": int(dead.stdout), "heartbeat": time.time()})
    store.writer("cam").close()


def test_lease_of_another_host_holds_until_it_expires(memory_url):
    store = FaceStore.create(memory_url)
    store.create_stream("cam")
    _write_lease(memory_url, {"host": "elsewhere", "pid": 1, "since": "x", "heartbeat": time.time()})
    with pytest.raises(StoreLockedError, match="pid 1 on host elsewhere"):
        store.writer("cam")
    _write_lease(memory_url, {"host": "elsewhere", "pid": 1, "heartbeat": time.time() - 1000})
    store.writer("cam", lease_ttl=300).close()


# ---- streamface info -----------------------------------------------------------------------------


def test_info_json_has_the_shape_external_checks_read(store, tmp_path):
    with new_writer(store) as w:
        write_rows(w, 3)
        w.write_embeddings(0, np.ones((5, 4), np.float32), model="m")
        w.write_labels(np.zeros(2, np.int32))
    store.create_stream("empty")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "s.zarr"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    cam = doc["streams"]["cam"]
    assert {k: cam[k] for k in ("frames", "faces", "embedded", "labelled")} == \
        {"frames": 3, "faces": 6, "embedded": 5, "labelled": 2}
    assert all(isinstance(cam[k], int) for k in ("frames", "faces", "embedded", "labelled", "bytes"))
    assert cam["first_capture"] == "2023-05-25T07:01:38.412614+00:00" and cam["bytes"] > 0
    assert doc["streams"]["empty"]["faces"] == 0 and doc["streams"]["empty"]["first_capture"] is None
    assert doc["version"] == STORE_VERSION


def test_info_prints_a_table(store, tmp_path):
    with new_writer(store) as w:
        write_rows(w, 3)
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "s.zarr")])
    assert result.exit_code == 0
    assert "cam" in result.output and "2023-05-25 07:01:38" in result.output


def test_info_on_a_bad_store_is_one_line_on_stderr(tmp_path):
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "nothing.zarr"), "--json"])
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "no Streamface store" in result.stderr
    assert "Traceback" not in result.stderr


def _open_at_once(path, mode: str, openers: int = 4) -> list:
    """``FaceStore.open(path, mode)`` from ``openers`` threads released together: results or errors."""
    start = threading.Barrier(openers)
    results: list = []

    def open_store():
        start.wait()
        try:
            results.append(FaceStore.open(path, mode=mode))
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_creating_one_local_store_at_once_from_many_openers_gives_them_all_the_store(tmp_path):
    # The inference actors of ``ingest --ray`` (or two ingests sharing a store) start together:
    # each must open the one store, never find it half made (before creation was atomic, a
    # thread failed with "a non-empty directory is there" about once in 16 trials).
    for trial in range(40):
        path = tmp_path / f"s{trial}.zarr"
        results = _open_at_once(path, "a")
        assert all(isinstance(r, FaceStore) for r in results), [r for r in results if not isinstance(r, FaceStore)][:2]
        assert not [p for p in tmp_path.iterdir() if ".creating-" in p.name]  # no staging left


def test_exclusive_creation_at_once_lets_exactly_one_opener_create(tmp_path):
    for trial in range(10):
        results = _open_at_once(tmp_path / f"s{trial}.zarr", "w-")
        assert sum(isinstance(r, FaceStore) for r in results) == 1
        assert all(isinstance(r, StoreExistsError) for r in results if not isinstance(r, FaceStore))
