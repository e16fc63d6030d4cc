"""streamface.ops.live_status and ``streamface status``: atomic snapshots, running / stale / not running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest
from click.testing import CliRunner

from streamface.cli import main as cli
from streamface.ops.live_status import StatusWriter, read_status, status_dir
from streamface.store import FaceStore
from streamface.store.summary import store_summary
from streamface.ops.telemetry import Telemetry


@pytest.fixture
def store(tmp_path):
    location = tmp_path / "news.zarr"
    FaceStore.create(location)
    return location


def busy_telemetry() -> Telemetry:
    telemetry = Telemetry()
    telemetry.stream("news").update(decoded=500, kept=40, faces=73, reconnects=1, empty=100, blurred=200,
                                    similar=160)
    telemetry.stream("sport").update(decoded=20, kept=2, faces=0)
    return telemetry


def test_a_running_ingest_shows_its_live_counters(store):
    with StatusWriter(store, busy_telemetry(), interval=60):
        result = CliRunner().invoke(cli, ["status", str(store)])
        as_json = CliRunner().invoke(cli, ["status", str(store), "--json"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{store}: 2 streams"
    news = next(line.split() for line in lines if line.startswith("news "))
    # "dropped": kept frames lost because inference was behind, not the selection's rejects.
    assert news[1] == "running" and news[6:11] == ["500", "40", "73", "1", "0"]
    assert as_json.exit_code == 0
    reports = {r["stream"]: r for r in json.loads(as_json.output)}
    assert reports["news"]["state"] == "running" and reports["news"]["counters"]["faces"] == 73
    assert reports["sport"]["counters"]["keyframes"] == 2 and reports["news"]["process"]["rss_bytes"] > 0


def test_the_status_is_refreshed_every_interval(store):
    telemetry = busy_telemetry()
    with StatusWriter(store, telemetry, interval=0.05):
        telemetry.stream("news").faces.inc(7)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            [news] = [r for r in read_status(store) if r.stream == "news"]
            if news.snapshot["counters"]["faces"] == 80:
                break
            time.sleep(0.02)
    assert news.snapshot["counters"]["faces"] == 80


def test_an_ingest_killed_without_closing_reads_as_not_running(store):
    script = textwrap.dedent("""
        import sys
        from streamface.ops.live_status import StatusWriter
        from streamface.ops.telemetry import Telemetry
        telemetry = Telemetry()
        telemetry.stream("news").update(decoded=50, kept=5, faces=9)
        StatusWriter(sys.argv[1], telemetry, interval=60).start()
        # exits with the daemon thread still started and no close(): as if killed
    """)
    subprocess.run([sys.executable, "-c", script, str(store)], check=True, timeout=60)
    result = CliRunner().invoke(cli, ["status", str(store)])
    assert result.exit_code == 3, result.output
    row = next(line.split() for line in result.output.splitlines() if line.startswith("news "))
    assert row[1:3] == ["not", "running"] and row[7:10] == ["50", "5", "9"]


def test_a_snapshot_older_than_stale_after_reads_as_stale(store):
    writer = StatusWriter(store, busy_telemetry(), interval=1, clock=lambda: time.time() - 120)
    writer.write()
    result = CliRunner().invoke(cli, ["status", str(store), "--json"])
    assert result.exit_code == 3
    assert {r["state"] for r in json.loads(result.output)} == {"stale"}
    fresh = CliRunner().invoke(cli, ["status", str(store), "--json", "--stale-after", "600"])
    assert fresh.exit_code == 0 and {r["state"] for r in json.loads(fresh.output)} == {"running"}


def test_a_clean_end_reads_as_finished_and_exits_0(store):
    with StatusWriter(store, busy_telemetry(), interval=60):
        pass
    assert {r.state for r in read_status(store)} == {"finished"}
    assert CliRunner().invoke(cli, ["status", str(store)]).exit_code == 0


@pytest.mark.parametrize("outcome,note", [("interrupted", "interrupted by SIGINT"),
                                          ("truncated", "truncated at 16.0 s of 55.0 s"),
                                          ("failed", "clip.mp4: read error")])
def test_an_end_that_is_not_clean_reads_as_its_outcome_with_its_note_and_exits_3(store, outcome, note):
    writer = StatusWriter(store, busy_telemetry(), interval=60).start()
    writer.close({"news": (outcome, note)})
    result = CliRunner().invoke(cli, ["status", str(store)])
    assert result.exit_code == 3, result.output
    news = next(line for line in result.output.splitlines() if line.startswith("news "))
    assert news.split()[1] == outcome and news.endswith(note)
    sport = next(line for line in result.output.splitlines() if line.startswith("sport "))
    assert sport.split()[1] == "finished"


def test_an_unknown_outcome_is_refused(store):
    writer = StatusWriter(store, busy_telemetry(), interval=60).start()
    with pytest.raises(ValueError, match="outcome must be one of"):
        writer.close({"news": ("done", "")})


def test_a_stream_name_that_is_not_one_never_becomes_a_status_file(store):
    telemetry = Telemetry()
    telemetry.stream("../../evil").update(1, 1, 0)
    with pytest.raises(ValueError, match="invalid stream name"):
        StatusWriter(store, telemetry, interval=60).start()
    assert not (store.parent.parent / "evil.json").exists() and not list(store.parent.parent.glob("*.json"))


def test_a_store_without_status_is_not_running(store):
    result = CliRunner().invoke(cli, ["status", str(store)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {store}: not running (no ingest status was written for this store)"


def test_a_url_store_has_no_status_and_says_so():
    result = CliRunner().invoke(cli, ["status", "memory://x/news.zarr"])
    assert result.exit_code == 1 and "no live status for a store at a URL" in result.stderr
    assert StatusWriter("memory://x/news.zarr", busy_telemetry()).start().write() == []


def test_snapshots_are_replaced_atomically_never_torn(store):
    telemetry = busy_telemetry()
    writer = StatusWriter(store, telemetry, interval=60)
    writer.write()
    target = status_dir(store) / "news.json"
    stop, torn, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            try:
                json.loads(target.read_text())
                reads[0] += 1
            except ValueError as exc:
                torn.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    inodes = set()
    for _ in range(200):
        telemetry.stream("news").faces.inc()
        writer.write()
        inodes.add(target.stat().st_ino)
    stop.set()
    thread.join()
    assert torn == [] and reads[0] > 0
    assert len(inodes) > 1  # each write is a new file renamed over the old one
    assert sorted(p.name for p in status_dir(store).iterdir()) == ["news.json", "sport.json"]  # no temp left


def test_the_status_lives_beside_the_store_and_leaves_it_untouched(store):
    before = FaceStore.open(store).nbytes()
    StatusWriter(store, busy_telemetry(), interval=60).write()
    assert status_dir(store) == store.parent / ".news.zarr.status"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Zarr warns about foreign directories inside a store
        reopened = FaceStore.open(store)
        assert reopened.streams == [] and store_summary(reopened)["streams"] == {}
    assert reopened.nbytes() == before


def test_a_bad_interval_is_refused(store):
    with pytest.raises(ValueError, match="interval must be > 0"):
        StatusWriter(store, Telemetry(), interval=0)


def test_a_real_capture_reports_its_summary_counts_through_status_and_metrics(tmp_path, shared_data):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from streamface.ingest.capture import StreamCapture

    video = shared_data / "videos" / "hamilton_clip.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    store = tmp_path / "news.zarr"
    telemetry = Telemetry(store_interval=0)
    telemetry.watch_store(store)
    metrics = telemetry.stream("hamilton")

    def on_frame(stats, counts):
        metrics.update(stats.yielded, counts.kept, 0, stats.reconnects, empty=counts.empty,
                       blurred=counts.blurred, similar=counts.similar - counts.replaced)

    with telemetry.serve() as server, StatusWriter(store, telemetry, interval=0.2):
        summary = StreamCapture("hamilton", str(video), tmp_path, max_frames=12, store=store).call(on_frame=on_frame)
        time.sleep(0.3)  # one periodic write after the last frame
        [live] = read_status(store)
        with urllib.request.urlopen(server.url, timeout=10) as response:
            scraped = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for f in text_string_to_metric_families(response.read().decode()) for s in f.samples}
    counters = live.snapshot["counters"]
    assert live.state == "running" and live.snapshot["pid"] == os.getpid()
    assert (counters["frames_decoded"], counters["keyframes"]) == (summary.decoded, summary.kept)
    assert summary.decoded > 0 and summary.kept > 0
    assert (counters["dropped"]["empty"], counters["dropped"]["blurred"], counters["dropped"]["similar"]) == (
        summary.empty, summary.blurred, summary.similar)
    assert scraped[("streamface_keyframes_total", (("stream", "hamilton"),))] == summary.kept
    assert scraped[("streamface_store_bytes", (("store", str(store)),))] == FaceStore.open(store).nbytes() > 0
    assert [r.state for r in read_status(store)] == ["finished"]


def test_a_rotated_stores_name_finds_the_status_of_its_rotating_ingest(tmp_path):
    from streamface.store.rotation import StoreRotation

    rotation = StoreRotation(tmp_path / "news.zarr", "day")
    with StatusWriter(tmp_path / "news.zarr", busy_telemetry(), interval=60, current_store=rotation.location):
        result = CliRunner().invoke(cli, ["status", rotation.location(), "--json"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.output)
    assert {r["current_store"] for r in reports} == {rotation.location()}
    assert {r["store"] for r in reports} == {str(tmp_path / "news.zarr")}


def test_every_run_into_a_store_stays_listed_with_how_it_ended(store):
    old = Telemetry()
    old.stream("gone").update(5, 1, 0)
    StatusWriter(store, old, interval=60).start().close()  # finished
    live = StatusWriter(store, busy_telemetry(), interval=60).start()  # this process: alive
    try:
        with StatusWriter(store, Telemetry(), interval=60):
            pass
        states = {r.stream: r.state for r in read_status(store)}
        assert states == {"gone": "finished", "news": "running", "sport": "running"}
        assert CliRunner().invoke(cli, ["status", str(store)]).exit_code == 0
    finally:
        live.close()
