"""Fixtures shared by the stage 1-3 tests (decode, capture, extraction, analysis, ``run``).

The sample clip is captured once per session and its 24 frames extracted once; models
come from the session's temporary cache (``engine_home``), never the user's.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine_fixtures import engine_home  # noqa: F401 (pytest fixture)


def scene_starts(skynews: Path, kind: str = "scene") -> list[float]:
    """Start seconds of the clip's segments of ``kind`` (scene, blurred, empty)."""
    with open(skynews / "skynews_sample_segments.csv", newline="") as f:
        return [float(r["start_s"]) for r in csv.DictReader(f) if r["kind"] == kind]


def seed_boxes(path: Path) -> dict[str, np.ndarray]:
    """Boxes of a seed-style detections.csv, by frame stem."""
    out: dict[str, list] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            frame = row["name"].rsplit("_face_", 1)[0]
            out.setdefault(frame, []).append([float(v) for v in row["box"].strip("[]").split(",")])
    return {k: np.array(v, np.float32) for k, v in out.items()}


@pytest.fixture(scope="session")
def model_home(engine_home):  # noqa: F811
    """Point the stages' model loading at the session's prepared cache."""
    old = os.environ.get("STREAMFACE_HOME")
    os.environ["STREAMFACE_HOME"] = str(engine_home)
    yield engine_home
    if old is None:
        os.environ.pop("STREAMFACE_HOME", None)
    else:
        os.environ["STREAMFACE_HOME"] = old


@pytest.fixture(scope="session")
def clip(skynews) -> Path:
    path = skynews / "skynews_sample.mp4"
    if not path.is_file():
        pytest.skip(f"sample clip not found at {path}")
    return path


@pytest.fixture(scope="session")
def cut_clip(clip, tmp_path_factory) -> Path:  # noqa: F811
    """The first 30% of the sample clip, with its index at the front (as a download that
    stopped, or ``head -c`` of a web-optimised mp4, leaves it): the header announces 55 s."""
    import av

    folder = tmp_path_factory.mktemp("cut")
    whole = folder / "whole.mp4"
    with av.open(str(clip)) as src, av.open(str(whole), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = whole.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: len(data) * 30 // 100])
    return cut


@pytest.fixture(scope="session")
def captured(clip, tmp_path_factory):
    """The clip captured once with the default (seed) parameters: (output_dir, summary)."""
    from streamface.ingest.capture import StreamCapture

    out = tmp_path_factory.mktemp("capture")
    summary = StreamCapture("skynews", str(clip), out).call()
    return out, summary


@pytest.fixture(scope="session")
def extracted(skynews, model_home, tmp_path_factory):
    """The seed's 24 frames folder extracted once: (output_dir, summary)."""
    from streamface.ingest.extraction import FaceExtraction

    out = tmp_path_factory.mktemp("extraction")
    summary = FaceExtraction(skynews, out).call()
    return out, summary


@pytest.fixture
def extracted_copy(extracted, tmp_path):
    """A private copy of the extraction's output, safe to modify."""
    dst = tmp_path / "copy"
    shutil.copytree(extracted[0], dst)
    return dst


def ingest_options(*args: str):
    """The :class:`~streamface.ingest.options.IngestOptions` ``streamface ingest`` builds its streams
    with (its defaults, plus the command-line ``args``)."""
    from streamface.cli.stages import ingest as ingest_command
    from streamface.ingest.options import IngestOptions

    return IngestOptions.from_params(ingest_command.make_context("ingest", ["--store", "unused", *args]).params)
