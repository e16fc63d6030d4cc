"""``run`` and ``ingest`` report through logs, a live status and Prometheus metrics (issue 10)."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from click.testing import CliRunner

from engine_fixtures import engine_home  # noqa: F401 (pytest fixture)
from pipeline_fixtures import clip, ingest_options, model_home  # noqa: F401 (pytest fixtures)
from streamface.cli import main as cli
from streamface.ops.live_status import read_status
from streamface.ops.monitoring import Monitoring
from streamface.store import FaceStore
from streamface.ops.structured_logs import LogConfig


def test_ingest_writes_json_logs_and_a_finished_status_with_its_counts(clip, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(cli, ["ingest", "--source", f"news={clip}", "--store", str(store), "--no-progress",
                                      "--max-frames", "10", "--log-json", "--metrics-port", "0"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in (tmp_path / "logs" / "streamface.jsonl").read_text().splitlines()]
    served = [e for e in events if e["event"] == "metrics_served"]
    assert served and served[0]["fields"]["url"].startswith("http://127.0.0.1:")
    (report,) = read_status(store)
    stored = FaceStore.open(store).stream("news")
    assert report.state == "finished" and report.stream == "news"
    assert report.snapshot["counters"]["keyframes"] == stored.num_frames > 0
    assert report.snapshot["counters"]["faces"] == stored.num_faces


def test_run_reports_its_stream_in_the_status(clip, model_home, tmp_path):  # noqa: F811
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(cli, ["run", str(clip), "--store", str(store), "--name", "news", "--no-progress",
                                      "--max-frames", "6"])
    assert result.exit_code == 0, result.output
    status = CliRunner().invoke(cli, ["status", str(store), "--json"])
    doc = json.loads(status.output)
    assert status.exit_code == 0  # finished cleanly: nothing needs attention
    assert [s["stream"] for s in doc] == ["news"] and doc[0]["state"] == "finished"
    assert doc[0]["counters"]["frames_decoded"] == 6


def test_metrics_are_scraped_while_monitoring(tmp_path):
    class Counters:
        name, frames, keyframes, faces, reconnects, dropped = "news", 12, 3, 5, 1, 0

    with Monitoring(tmp_path / "s.zarr", ["news"], metrics_address=("127.0.0.1", 0),
                    log_config=LogConfig(log_dir=tmp_path / "logs")) as monitoring:
        monitoring.record([Counters()], {"inference": 4, "commits/news": 2})
        monitoring.record_batch("detection", 8, 0.25)
        text = urllib.request.urlopen(monitoring.metrics_url, timeout=10).read().decode()
    assert 'streamface_keyframes_total{stream="news"} 3.0' in text
    assert 'streamface_queue_depth{queue="commits",stream="news"} 2.0' in text
    assert 'streamface_queue_depth{queue="inference",stream="*"} 4.0' in text
    assert 'streamface_batch_size_count{stage="detection",stream="*"} 1.0' in text
    assert 'streamface_model_latency_seconds_sum{model="detection",stream="*"} 0.25' in text
    with pytest.raises(OSError):  # the exporter is gone with the monitoring
        urllib.request.urlopen(monitoring.metrics_url, timeout=2)
    assert [r.stream for r in read_status(tmp_path / "s.zarr")] == ["news"]  # "*" is no stream
    assert threading.active_count() >= 1


def test_ingest_reports_every_model_call(clip, model_home, tmp_path):  # noqa: F811
    from streamface.ingest.options import build_ingest
    from streamface.ingest.config import StreamSpec

    o = ingest_options("--max-frames", "12")
    calls = []
    job = build_ingest([StreamSpec("news", str(clip))], str(tmp_path / "s.zarr"), o)
    job.on_batch = lambda stage, size, seconds: calls.append((stage, size, seconds))
    summary = job.call()
    (news,) = summary.streams
    assert sum(size for stage, size, _ in calls if stage == "detection") == news.keyframes > 0
    assert sum(size for stage, size, _ in calls if stage == "embedding") == news.faces > 0
    assert all(seconds > 0 for *_, seconds in calls)
