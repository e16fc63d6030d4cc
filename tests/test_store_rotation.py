"""streamface.store.rotation and ``streamface info`` across rotated stores (real Zarr stores)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import fsspec
import numpy as np
import pytest
from click.testing import CliRunner

from streamface.cli import main as cli
from streamface.store import FaceRecords, FaceStore, FrameRecords
from streamface.store.rotation import StoreRotation, expand_store_locations, rotated_stores

CROP, ALIGNED = 16, 8


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def at(when: datetime):
    """A clock fixed at ``when``."""
    return lambda: when.timestamp()


def append(store: FaceStore, stream: str, times: list[datetime], faces_per_frame: int = 1) -> None:
    """Append one frame per time, each with ``faces_per_frame`` faces, through the real writer."""
    with store.writer(stream, create=True, crop_size=CROP, aligned_size=ALIGNED) as writer:
        n, first = len(times), writer.num_frames
        frames = FrameRecords(time_us=np.array([int(t.timestamp() * 1e6) for t in times], np.int64),
                              width=np.full(n, 64), height=np.full(n, 48))
        frame_rows = np.repeat(np.arange(first, first + n), faces_per_frame)
        m = len(frame_rows)
        faces = FaceRecords(frame=frame_rows - first, face=np.tile(np.arange(faces_per_frame), n),
                            score=np.full(m, 0.9), box=np.zeros((m, 4), np.float32),
                            landmarks=np.zeros((m, 5, 2)), crop=np.zeros((m, CROP, CROP, 3), np.uint8),
                            aligned=np.zeros((m, ALIGNED, ALIGNED, 3), np.uint8))
        writer.append(frames, faces)


# ---- naming ---------------------------------------------------------------------------------------


def test_the_daily_store_changes_name_at_midnight_utc():
    before = StoreRotation("data/news.zarr", "day", clock=at(utc(2026, 11, 28, 23, 59, 59)))
    after = StoreRotation("data/news.zarr", "day", clock=at(utc(2026, 11, 29, 0, 0, 0)))
    assert before.location() == "data/news-2026-11-28.zarr"
    assert after.location() == "data/news-2026-11-29.zarr"
    assert before.next_boundary() == utc(2026, 11, 29)


def test_the_period_is_utc_whatever_the_clocks_time_zone():
    from datetime import timedelta

    tokyo = timezone(timedelta(hours=9))
    rotation = StoreRotation("news.zarr", "day")
    assert rotation.location_at(datetime(2026, 11, 29, 8, 30, tzinfo=tokyo)) == "news-2026-11-28.zarr"
    with pytest.raises(ValueError, match="timezone-aware"):
        rotation.location_at(datetime(2026, 11, 29, 8, 30))


def test_hourly_rotation_names_the_hour_without_a_colon():
    rotation = StoreRotation("s3://bucket/archive/news.zarr", "hour", clock=at(utc(2026, 11, 28, 13, 59, 59)))
    assert rotation.location() == "s3://bucket/archive/news-2026-11-28T13.zarr"
    assert rotation.next_boundary() == utc(2026, 11, 28, 14)


def test_no_rotation_keeps_the_base_name():
    rotation = StoreRotation("news.zarr", "none", clock=at(utc(2026, 11, 28, 12)))
    assert rotation.location() == "news.zarr" and rotation.next_boundary() is None


def test_a_base_without_suffix_gets_the_date_at_its_end():
    assert StoreRotation("/data/news/", "day").location_at(utc(2026, 1, 2)) == "/data/news-2026-01-02"


@pytest.mark.parametrize("base, period, message", [
    ("news.zarr", "week", "period must be one of"),
    ("/", "day", "base must end in a store name"),
])
def test_a_bad_rotation_is_refused_when_made(base, period, message):
    with pytest.raises(ValueError, match=message):
        StoreRotation(base, period)


# ---- an ingest across a boundary, and listing -----------------------------------------------------


def test_an_ingest_crossing_midnight_writes_each_frame_into_its_days_store(tmp_path):
    now = [utc(2026, 11, 28, 23, 59, 58)]
    rotation = StoreRotation(tmp_path / "news.zarr", "day", clock=lambda: now[0].timestamp())
    location = rotation.location()
    for second in range(4):  # 23:59:58, 23:59:59, 00:00:00, 00:00:01: one frame each
        now[0] = utc(2026, 11, 28, 23, 59, 58 + second) if second < 2 else utc(2026, 11, 29, 0, 0, second - 2)
        if rotation.location() != location:  # the check an ingest makes at each commit
            location = rotation.location()
        append(FaceStore.open(location, mode="a"), "news", [now[0]])
    assert [p.rsplit("/", 1)[-1] for p in rotated_stores(tmp_path / "news.zarr")] == \
        ["news-2026-11-28.zarr", "news-2026-11-29.zarr"]
    assert FaceStore.open(tmp_path / "news-2026-11-28.zarr").stream("news").num_frames == 2
    assert FaceStore.open(tmp_path / "news-2026-11-29.zarr").stream("news").num_frames == 2


def test_rotated_stores_are_listed_oldest_first_and_nothing_else(tmp_path):
    for name in ("news-2026-11-29.zarr", "news-2026-11-28T23.zarr", "news-2026-11-28.zarr",
                 "news-old.zarr", "newsroom-2026-11-28.zarr", ".news.zarr.status"):
        (tmp_path / name).mkdir()
    assert [p.rsplit("/", 1)[-1] for p in rotated_stores(str(tmp_path / "news.zarr"))] == \
        ["news-2026-11-28.zarr", "news-2026-11-28T23.zarr", "news-2026-11-29.zarr"]


def test_a_glob_keeps_only_the_stores_it_matches(tmp_path):
    FaceStore.create(tmp_path / "news-2026-11-28.zarr")
    (tmp_path / "news-notes.zarr").mkdir()
    assert expand_store_locations([str(tmp_path / "news-*.zarr")]) == [str(tmp_path / "news-2026-11-28.zarr")]


# ---- streamface info across stores -------------------------------------------------------------


@pytest.fixture
def rotated(tmp_path):
    day1 = FaceStore.create(tmp_path / "news-2026-11-27.zarr")
    append(day1, "news", [utc(2026, 11, 27, 8), utc(2026, 11, 27, 20)], faces_per_frame=2)
    day2 = FaceStore.create(tmp_path / "news-2026-11-28.zarr")
    append(day2, "news", [utc(2026, 11, 28, 1), utc(2026, 11, 28, 2), utc(2026, 11, 28, 23)])
    append(day2, "sport", [utc(2026, 11, 28, 12)])
    return tmp_path


def test_info_on_the_base_name_totals_the_rotated_stores(rotated):
    result = CliRunner().invoke(cli, ["info", str(rotated / "news.zarr"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["paths"] == [str(rotated / "news-2026-11-27.zarr"), str(rotated / "news-2026-11-28.zarr")]
    news = doc["streams"]["news"]
    assert (news["stores"], news["frames"], news["faces"]) == (2, 5, 7)
    assert news["first_capture"] == "2026-11-27T08:00:00.000000+00:00"
    assert news["last_capture"] == "2026-11-28T23:00:00.000000+00:00"
    assert news["bytes"] == sum(s["streams"]["news"]["bytes"] for s in doc["stores"]) > 0
    assert doc["streams"]["sport"]["stores"] == 1 and doc["stores"][1]["streams"]["sport"]["frames"] == 1


def test_info_on_a_glob_and_on_several_stores_prints_each_then_the_total(rotated):
    by_glob = CliRunner().invoke(cli, ["info", str(rotated / "news-*.zarr")])
    by_list = CliRunner().invoke(cli, ["info", str(rotated / "news-2026-11-27.zarr"),
                                       str(rotated / "news-2026-11-28.zarr")])
    assert by_glob.exit_code == 0 and by_glob.output == by_list.output
    blocks = by_glob.output.strip().split("\n\n")
    assert len(blocks) == 3 and blocks[2].startswith("total across 2 stores (2 streams)")
    total_news = next(line.split() for line in blocks[2].splitlines() if line.startswith("news "))
    assert total_news[1:3] == ["5", "7"]


def test_info_on_one_store_keeps_its_one_store_shape(rotated):
    result = CliRunner().invoke(cli, ["info", str(rotated / "news-2026-11-27.zarr"), "--json"])
    doc = json.loads(result.output)
    assert set(doc) == {"path", "version", "streams"} and doc["streams"]["news"]["frames"] == 2


def test_info_on_a_glob_matching_no_store_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "none-*.zarr")])
    assert result.exit_code == 1 and result.stderr.strip().startswith("Error: no Streamface store matches")


def test_info_names_the_bad_one_among_several_stores(rotated):
    result = CliRunner().invoke(cli, ["info", str(rotated / "news-2026-11-27.zarr"), str(rotated / "gone.zarr")])
    assert result.exit_code == 1 and f"no Streamface store at {rotated / 'gone.zarr'}" in result.stderr


def test_info_on_the_base_name_of_rotated_url_stores():
    root = f"memory://rotation-{uuid.uuid4().hex}"
    try:
        for day in (27, 28):
            append(FaceStore.create(f"{root}/news-2026-11-{day}.zarr"), "news", [utc(2026, 11, day, 9)])
        result = CliRunner().invoke(cli, ["info", f"{root}/news.zarr", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["streams"]["news"]["frames"] == 2
    finally:
        fs, path = fsspec.core.url_to_fs(root)
        fs.rm(path, recursive=True)


def test_the_base_of_a_rotated_name_drops_its_stamp():
    from streamface.store.rotation import base_of

    assert base_of("/d/news-2026-11-28.zarr") == "/d/news.zarr"
    assert base_of("s3://b/my-news-2026-11-28T13.zarr") == "s3://b/my-news.zarr"
    assert base_of("/d/news.zarr") is None and base_of("/d/news-old.zarr") is None
