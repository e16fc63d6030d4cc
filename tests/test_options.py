"""The options of a stream's run (streamface.ingest.options) and the one whole-number checker.

Synthetic values only: the stages these options build are run on real frames by test_cli_run,
test_ingest and test_ray_ingest, which build them through these same functions.
"""

from __future__ import annotations

import dataclasses
import functools
import pickle

import numpy as np
import pytest

from streamface.checks import check_int
from streamface.cli.stages import ingest as ingest_command
from streamface.cli.stages import run as run_command
from streamface.ingest.config import StreamSpec, stream_specs
from streamface.ingest.options import (
    ExtractionOptions,
    FrameOptions,
    IngestOptions,
    StreamOptions,
    build_capture,
    build_ingest,
    stream_name,
)


class _OwnError(ValueError):
    pass


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2)])
def test_check_int_returns_whole_numbers_at_or_above_the_minimum(value):
    assert check_int("batch_size", value) == value


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "3", None])
def test_check_int_refuses_the_rest_in_one_line_naming_the_parameter(value):
    with pytest.raises(ValueError, match=r"^batch_size must be an int >= 1, got "):
        check_int("batch_size", value)


def test_check_int_takes_a_minimum_none_when_optional_and_the_caller_s_error():
    assert check_int("backups", 0, minimum=0) == 0
    assert check_int("in_flight", None, optional=True) is None
    with pytest.raises(ValueError, match=r"in_flight must be an int >= 1 or None, got 0"):
        check_int("in_flight", 0, optional=True)
    with pytest.raises(_OwnError, match="k must be"):
        check_int("k", 0, error=_OwnError)


def _params(command, *args):
    return command.make_context(command.name, [*args]).params


def test_the_command_line_defaults_are_the_dataclass_defaults():
    """One default per option: what ``run`` and ``ingest`` parse when nothing is given is what
    the dataclasses hold when nothing is given (a drift between the two would make the Python
    API and the command line build different stages)."""
    assert StreamOptions.from_params(_params(run_command, "clip.mp4", "--store", "s.zarr")) == StreamOptions()
    assert IngestOptions.from_params(_params(ingest_command, "--store", "s.zarr")) == IngestOptions()


def test_from_params_maps_the_command_line_into_the_nested_options():
    options = IngestOptions.from_params(_params(
        ingest_command, "--store", "s.zarr", "--batch-size", "3", "--sample-fps", "5", "--detection", "scrfd",
        "--aligned-size", "112", "--representation", "sface", "--max-reconnects", "2", "--rotate", "day",
        "--index-threshold", "0.4"))
    assert options.batch_frames == 3 and options.frames.sample_fps == 5
    assert options.extraction == ExtractionOptions(detection="scrfd", aligned_size=112)
    assert options.analysis.representation == "sface"
    assert (options.max_reconnects, options.rotate, options.index_threshold) == (2, "day", 0.4)


def test_options_are_frozen_and_what_no_stage_checks_is_checked_when_made():
    options = IngestOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_frames = 4
    with pytest.raises(ValueError, match="max_frames must be an int >= 1"):
        FrameOptions(max_frames=0)
    with pytest.raises(ValueError, match="sample_fps must be > 0"):
        FrameOptions(sample_fps=0)
    with pytest.raises(ValueError, match="aligned_size must be an int >= 16"):
        ExtractionOptions(aligned_size=8)
    with pytest.raises(ValueError, match="rotate must be one of"):
        IngestOptions(rotate="week")


def test_a_threshold_the_stage_checks_is_refused_by_the_stage_it_builds(tmp_path):
    """One check per parameter: the capture's own validation refuses the bad threshold."""
    capture = build_capture("clip.mp4", str(tmp_path / "s.zarr"), None, FrameOptions(similarity_threshold=1.5), 8)
    with pytest.raises(ValueError, match=r"similarity_threshold must lie in \[0, 1\]"):
        capture.validate()


def test_a_config_table_overrides_the_command_line_for_its_stream_only(tmp_path):
    config = tmp_path / "streams.toml"
    config.write_text('[[stream]]\nname = "a"\nurl = "a.mp4"\nsample_fps = 2\nmax_reconnects = 1\n'
                      '[[stream]]\nname = "b"\nurl = "b.mp4"\n')
    specs = stream_specs(config, ["c=c.mp4"])
    assert [s.name for s in specs] == ["a", "b", "c"]
    job = build_ingest(specs, str(tmp_path / "s.zarr"), IngestOptions(frames=FrameOptions(sample_fps=5)),
                       decode=False)
    assert [c.sample_fps for c in job.captures] == [2, 5, 5]
    assert job.max_reconnects_by_stream == {"a": 1} and job.decode is False


def test_no_stream_is_one_clear_error():
    with pytest.raises(ValueError, match="no stream to ingest"):
        stream_specs(None, [])


def test_the_ray_factory_pickles_with_its_options(tmp_path):
    """Ray ships ``build_ingest`` bound to the store and the options to every inference actor."""
    make = functools.partial(build_ingest, store=str(tmp_path / "s.zarr"), options=IngestOptions(batch_frames=2))
    again = pickle.loads(pickle.dumps(make))
    job = again([StreamSpec("news", "news.mp4")], decode=False)
    assert job.batch_frames == 2 and [c.name for c in job.captures] == ["news"]


@pytest.mark.parametrize(("source", "name"), [
    ("/videos/Sky News 24.mp4", "Sky_News_24"),
    ("https://example.org/live/index.m3u8?token=1", "index"),
    ("rtsp://camera/", "stream"),
    ("/x/..mp4", "stream"),
])
def test_a_stream_is_named_after_its_source_in_the_characters_a_store_allows(source, name):
    assert stream_name(None, source) == name
    assert stream_name("given", source) == "given"
