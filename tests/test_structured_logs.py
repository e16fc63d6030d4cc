"""streamface.ops.structured_logs: JSON lines, rotation, idempotent setup, the click options."""

from __future__ import annotations

import json
import logging
import logging.handlers

import click
import pytest
from click.testing import CliRunner

from streamface.ops.structured_logs import LogConfig, close_logging, configure_logging, log_event, log_options

log = logging.getLogger("streamface.test")


@pytest.fixture(autouse=True)
def clean_logging():
    yield
    close_logging()


def managed_handlers():
    return [h for h in logging.getLogger("streamface").handlers if getattr(h, "_streamface_structured_logs", False)]


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_event_is_one_json_object_per_line(tmp_path):
    [path] = configure_logging(LogConfig(json=True, log_dir=tmp_path))
    log_event(log, "reconnect", stream="news", after_s=2.5, url="http://127.0.0.1/x.m3u8")
    log.info("%s: %d frames, %d keyframes", "sport", 100, 7)  # the stages' message convention
    log.warning("multi\nline \"quoted\" message")
    for handler in managed_handlers():
        handler.flush()
    first, second, third = read_lines(path)
    assert path.name == "streamface.jsonl"
    assert first["event"] == "reconnect" and first["stream"] == "news" and first["level"] == "INFO"
    assert first["fields"] == {"after_s": 2.5, "url": "http://127.0.0.1/x.m3u8"}
    assert first["time"].endswith("+00:00") and first["logger"] == "streamface.test"
    assert second["stream"] == "sport" and second["event"] == "log"
    assert second["message"] == "sport: 100 frames, 7 keyframes"
    assert third["stream"] is None and third["message"] == 'multi\nline "quoted" message'


def test_an_exception_is_kept_in_its_json_line(tmp_path):
    [path] = configure_logging(LogConfig(json=True, log_dir=tmp_path))
    try:
        raise RuntimeError("decoder died")
    except RuntimeError:
        log.exception("%s: capture failed", "news")
    managed_handlers()[0].flush()
    [entry] = read_lines(path)
    assert entry["level"] == "ERROR" and "RuntimeError: decoder died" in entry["exception"]


def test_the_log_rotates_at_the_size_limit_keeping_the_backups(tmp_path):
    [path] = configure_logging(LogConfig(json=True, log_dir=tmp_path, max_bytes=2000, backups=2))
    for i in range(200):
        log_event(log, "frame", stream="news", index=i)
    for handler in managed_handlers():
        handler.flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["streamface.jsonl", "streamface.jsonl.1", "streamface.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 2000
        assert all(entry["event"] == "frame" for entry in read_lines(tmp_path / name))
    # The newest events are in the current file, in order, none torn across files.
    indices = [e["fields"]["index"] for e in read_lines(tmp_path / "streamface.jsonl.1") + read_lines(path)]
    assert indices == list(range(indices[0], 200))


def test_time_rotation_uses_a_timed_handler_in_utc(tmp_path):
    configure_logging(LogConfig(log_dir=tmp_path, rotate="daily", backups=3))
    [handler] = managed_handlers()
    assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    assert handler.when == "MIDNIGHT" and handler.utc and handler.backupCount == 3


def test_configuring_twice_replaces_its_own_handlers_and_keeps_others(tmp_path):
    other = logging.NullHandler()
    logging.getLogger("streamface").addHandler(other)
    try:
        configure_logging(LogConfig(log_dir=tmp_path))
        configure_logging(LogConfig(json=True, log_dir=tmp_path, rotate="hourly"))
        handlers = managed_handlers()
        assert len(handlers) == 1 and isinstance(handlers[0], logging.handlers.TimedRotatingFileHandler)
        assert other in logging.getLogger("streamface").handlers
    finally:
        logging.getLogger("streamface").removeHandler(other)


def test_text_logs_append_the_event_fields(tmp_path):
    [path] = configure_logging(LogConfig(log_dir=tmp_path))
    log_event(log, "store_rotated", stream="news", store="news-2026-11-28.zarr")
    managed_handlers()[0].flush()
    line = path.read_text().strip()
    assert path.name == "streamface.log"
    assert line.endswith("INFO streamface.test: news: store_rotated store=news-2026-11-28.zarr")


def test_a_stream_file_gets_only_that_streams_events(tmp_path):
    paths = configure_logging(LogConfig(json=True, log_dir=tmp_path), streams=["news", "sport"])
    assert [p.name for p in paths] == ["streamface.jsonl", "news.log", "sport.log"]
    log_event(log, "reconnect", stream="news")
    log.info("%s: %d frames", "sport", 10)
    for handler in managed_handlers():
        handler.flush()
    assert [e["stream"] for e in read_lines(tmp_path / "news.log")] == ["news"]
    assert [e["stream"] for e in read_lines(tmp_path / "sport.log")] == ["sport"]
    assert len(read_lines(tmp_path / "streamface.jsonl")) == 2


def test_the_capture_logs_to_the_rotating_stream_file_instead_of_adding_its_own(tmp_path, shared_data):
    from streamface.ingest.capture import StreamCapture

    video = shared_data / "videos" / "hamilton_clip.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    configure_logging(LogConfig(json=True, log_dir=tmp_path / "logs", max_bytes=10**6), streams=["hamilton"])
    StreamCapture("hamilton", str(video), tmp_path, max_frames=6, log_interval=2).call()
    at_path = [h for h in logging.getLogger("streamface").handlers
               if getattr(h, "baseFilename", None) == str(tmp_path / "logs" / "hamilton.log")]
    assert len(at_path) == 1 and isinstance(at_path[0], logging.handlers.RotatingFileHandler)
    at_path[0].flush()
    entries = read_lines(tmp_path / "logs" / "hamilton.log")
    assert [e["message"].split(",")[0] for e in entries] == ["hamilton: 2 frames", "hamilton: 4 frames",
                                                              "hamilton: 6 frames"]
    assert all(e["stream"] == "hamilton" for e in entries)


def test_stderr_is_used_without_a_folder(capsys):
    assert configure_logging(LogConfig(json=True)) == []
    log_event(log, "started", stream="news")
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["event"] == "started"


@pytest.mark.parametrize("field, value, message", [
    ("rotate", "weekly", "rotate must be one of"),
    ("max_bytes", -1, "max_bytes must be"),
    ("backups", 1.5, "backups must be"),
    ("level", "LOUD", "level must be"),
])
def test_a_bad_setting_names_itself(field, value, message):
    with pytest.raises(ValueError, match=message):
        configure_logging(LogConfig(**{field: value}))


def test_the_options_reach_the_command_as_one_log_config(tmp_path):
    seen = {}

    @click.command()
    @click.argument("store")
    @log_options
    def ingest(store, log_config):
        seen["store"], seen["config"] = store, log_config

    result = CliRunner().invoke(ingest, ["s.zarr", "--log-json", "--log-dir", str(tmp_path), "--log-max-bytes",
                                         "1000", "--log-backups", "2", "--log-level", "debug"])
    assert result.exit_code == 0, result.output
    assert seen == {"store": "s.zarr", "config": LogConfig(json=True, log_dir=str(tmp_path), rotate="size",
                                                           max_bytes=1000, backups=2, level="DEBUG")}
    help_text = CliRunner().invoke(ingest, ["--help"], terminal_width=200).output
    assert "--log-rotate [size|daily|hourly]" in help_text and "--log-max-bytes" in help_text
