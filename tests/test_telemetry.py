"""streamface.ops.telemetry: per-stream metrics, the Prometheus exporter over real HTTP on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamface.store import FaceStore
from streamface.ops.telemetry import Telemetry, resident_memory_bytes

# One sample line of the text format: name{labels} value (labels optional).
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$')


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read().decode("utf-8")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, parsed by the reference parser: {(name, labels): value}."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_exporter_serves_per_stream_metrics_over_http_on_127_0_0_1():
    telemetry = Telemetry()
    news, sport = telemetry.stream("news"), telemetry.stream("sport")
    news.update(decoded=120, kept=7, faces=11, reconnects=2, empty=30, blurred=40, similar=43)
    sport.keyframes.inc(3)
    news.queue_depth("inference").set(4)
    news.batch_size("detection").observe(8)
    telemetry.stream("*").model_latency("sface").observe(0.02)
    with telemetry.serve(port=0) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        content_type, text = scrape(server.url)
    assert content_type.startswith("text/plain")
    for line in text.splitlines():
        assert line.startswith("#") or SAMPLE.match(line), line
    got = samples(text)
    assert got[("streamface_frames_decoded_total", frozenset({("stream", "news")}))] == 120
    assert got[("streamface_keyframes_total", frozenset({("stream", "news")}))] == 7
    assert got[("streamface_keyframes_total", frozenset({("stream", "sport")}))] == 3
    assert got[("streamface_faces_total", frozenset({("stream", "news")}))] == 11
    assert got[("streamface_reconnects_total", frozenset({("stream", "news")}))] == 2
    assert got[("streamface_frames_dropped_total", frozenset({("stream", "news"), ("reason", "similar")}))] == 43
    assert got[("streamface_queue_depth", frozenset({("stream", "news"), ("queue", "inference")}))] == 4
    assert got[("streamface_batch_size_count", frozenset({("stream", "news"), ("stage", "detection")}))] == 1
    assert got[("streamface_batch_size_bucket",
                frozenset({("stream", "news"), ("stage", "detection"), ("le", "8.0")}))] == 1
    assert got[("streamface_model_latency_seconds_sum", frozenset({("stream", "*"), ("model", "sface")}))] == \
        pytest.approx(0.02)
    assert got[("streamface_process_rss_bytes", frozenset())] > 10 * 2**20


def test_exporter_binds_the_requested_port_and_frees_it_on_close():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Telemetry().serve("127.0.0.1", port)
    assert server.port == port
    server.close()
    with pytest.raises(urllib.error.URLError):
        scrape(f"http://127.0.0.1:{port}/metrics")


def test_a_port_in_use_is_an_os_error():
    with Telemetry().serve() as first:
        with pytest.raises(OSError):
            Telemetry().serve("127.0.0.1", first.port)


def test_two_telemetries_share_no_counters():
    a, b = Telemetry(), Telemetry()
    a.stream("news").faces.inc(5)
    assert b.snapshot()["streams"] == {}
    assert "streamface_faces_total{" not in b.render().decode()


def test_update_turns_running_totals_into_monotonic_counters():
    telemetry = Telemetry()
    news = telemetry.stream("news")
    news.update(10, 2, 3)
    news.update(25, 4, 3)
    news.update(5, 1, 0)  # a restarted stage counts from zero again: 5 new frames, 1 new keyframe
    news.update(30, 5, 6)  # then +25 frames, +4 keyframes, +6 faces
    counters = telemetry.snapshot()["streams"]["news"]
    assert (counters["frames_decoded"], counters["keyframes"], counters["faces"]) == (55, 9, 9)


def test_fps_is_the_decoded_frame_rate_over_the_last_second():
    clock = iter([100.0, 100.5, 102.0])
    telemetry = Telemetry(clock=lambda: next(clock))
    news = telemetry.stream("news")  # window starts at t=100
    news.update(10, 0, 0)            # t=100.5: under a second, fps not yet set
    assert telemetry.snapshot()["streams"]["news"]["fps"] == 0
    news.update(60, 0, 0)            # t=102: 60 frames in 2 s
    assert telemetry.snapshot()["streams"]["news"]["fps"] == pytest.approx(30.0)


def test_counters_are_exact_under_concurrent_increments():
    telemetry = Telemetry()
    faces = telemetry.stream("news").faces
    workers = [threading.Thread(target=lambda: [faces.inc() for _ in range(20000)]) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert telemetry.snapshot()["streams"]["news"]["faces"] == 80000


def test_an_unknown_drop_reason_names_the_allowed_ones():
    with pytest.raises(ValueError, match="reason must be one of"):
        Telemetry().stream("news").dropped("bored")


def test_store_bytes_are_the_bytes_of_a_real_store_and_are_recomputed_after_the_interval(tmp_path):
    location = tmp_path / "s.zarr"
    store = FaceStore.create(location)
    telemetry = Telemetry(store_interval=0)
    telemetry.watch_store(location)
    before = samples(telemetry.render().decode())[("streamface_store_bytes", frozenset({("store", str(location))}))]
    assert before == store.nbytes() > 0
    with store.writer("news", create=True, aligned_size=8, crop_size=16):
        pass
    after = samples(telemetry.render().decode())[("streamface_store_bytes", frozenset({("store", str(location))}))]
    assert after == store.nbytes() > before


def test_store_bytes_are_cached_between_walks(tmp_path):
    location = tmp_path / "s.zarr"
    store = FaceStore.create(location)
    telemetry = Telemetry(store_interval=3600)
    telemetry.watch_store(location)
    first = samples(telemetry.render().decode())
    with store.writer("news", create=True, aligned_size=8, crop_size=16):
        pass
    assert samples(telemetry.render().decode())[("streamface_store_bytes", frozenset({("store", str(location))}))] \
        == first[("streamface_store_bytes", frozenset({("store", str(location))}))]


def test_resident_memory_grows_with_an_allocation():
    import mmap

    before = resident_memory_bytes()
    # Fresh anonymous pages (not heap the allocator may already hold resident), each touched.
    with mmap.mmap(-1, 64 * 2**20) as block:
        for offset in range(0, len(block), mmap.PAGESIZE):
            block[offset] = 1
        assert resident_memory_bytes() - before > 48 * 2**20


def test_snapshot_lists_every_counter_of_a_stream():
    telemetry = Telemetry()
    telemetry.stream("news").dropped("queue_full").inc(2)
    snap = telemetry.snapshot()
    assert snap["streams"]["news"]["dropped"] == {"empty": 0, "blurred": 0, "similar": 0, "queue_full": 2}
    assert snap["process"]["rss_bytes"] > 0


def test_a_bad_port_is_refused_before_binding():
    with pytest.raises(ValueError, match="port must be"):
        Telemetry().serve(port=70000)


def test_record_takes_an_ingests_live_counters():
    ingest = pytest.importorskip("streamface.ingest.multi_stream", reason="the multi-stream ingest is not here")
    StreamCounters = ingest.StreamCounters

    telemetry = Telemetry()
    telemetry.record([StreamCounters("news", frames=90, keyframes=9, faces=12, reconnects=1, dropped=3),
                      StreamCounters("sport", frames=5)])
    telemetry.record([StreamCounters("news", frames=100, keyframes=10, faces=12, reconnects=1, dropped=3)])
    snap = telemetry.snapshot()["streams"]
    assert (snap["news"]["frames_decoded"], snap["news"]["keyframes"], snap["news"]["dropped"]["queue_full"]) == \
        (100, 10, 3)
    assert snap["sport"]["frames_decoded"] == 5


def test_metrics_options_reach_the_command_as_one_address():
    import click
    from click.testing import CliRunner

    from streamface.ops.telemetry import metrics_options

    seen = []

    @click.command()
    @metrics_options
    def ingest(metrics_address):
        seen.append(metrics_address)

    assert CliRunner().invoke(ingest, []).exit_code == 0
    assert CliRunner().invoke(ingest, ["--metrics-port", "0"]).exit_code == 0
    assert CliRunner().invoke(ingest, ["--metrics-port", "9100", "--metrics-host", "::1"]).exit_code == 0
    assert seen == [None, ("127.0.0.1", 0), ("::1", 9100)]
    assert CliRunner().invoke(ingest, ["--metrics-port", "70000"]).exit_code == 2
