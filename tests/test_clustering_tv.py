"""Identities on hard TV faces (issue 19): ``tv/fotb`` through the seed API with every threshold at its default.

FaceExtraction (YuNet) -> FaceAnalysis (SFace) -> FaceClustering over the 41 frames, scored
as ``tv/README.md`` says: each of the 52 named boxes takes the detected face of highest
IoU (>= 0.5; a box without one is a cluster of its own), then BCubed and pairwise scores
over the named faces. The frames are linked into a seed ``frames/`` folder with
seed-style names (``fotb_frame_<time>.jpg``, the time its second in the clip), so face ids
name their frame.

Two extractions: the defaults (1 named face missed, by the detector), where the issue's
targets apply, and the seed's size filter (``size_threshold=0.005``), which drops 3 named
faces of 46-50 px (under 0.5 % of a 720p frame) and so caps BCubed F at 0.945 — why the
default is 0.002. With both, every named face that reached the store is clustered right
(precision 1, recall lost only to faces the extraction did not keep), and no cluster holds
two faces of one frame.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from engine_fixtures import engine_home  # noqa: F401 (pytest fixture)
from pipeline_fixtures import model_home  # noqa: F401 (pytest fixture)
from streamface.identify.clustering import frame_keys, has_conflict
from streamface.identify.face_clustering import FaceClustering
from streamface.evaluate.metrics import evaluate_labels
from streamface.store.names import frame_name, parse_capture_time

#: The clip's first frame is taken at this (arbitrary) wall-clock time.
START = parse_capture_time("20261207000000000000")


def _seconds(stem: str) -> int:
    """``fotb_t013p00`` -> its time in the clip in microseconds (13.00 s)."""
    return int(stem[6:9]) * 1_000_000 + int(stem[10:12]) * 10_000


@pytest.fixture(scope="module")
def fotb(shared_data):
    path = shared_data / "tv" / "fotb"
    if not (path / "frames").is_dir() or not (path / "labels.csv").is_file():
        pytest.skip(f"tv/fotb not found at {path}")
    return path


@pytest.fixture(scope="module")
def fotb_frames(fotb, tmp_path_factory):
    """A seed ``frames/`` folder of links to the 41 frames, named ``fotb_frame_<time>.jpg``."""
    root = tmp_path_factory.mktemp("fotb-in")
    (root / "frames").mkdir()
    for path in sorted((fotb / "frames").glob("fotb_t*.jpg")):
        os.symlink(path, root / "frames" / f"{frame_name('fotb', START + _seconds(path.stem))}.jpg")
    return root


def _extract(frames_dir, out, **options):
    from streamface.ingest.analysis import FaceAnalysis
    from streamface.ingest.extraction import FaceExtraction

    FaceExtraction(frames_dir, out, export=False, **options).call()
    FaceAnalysis(out, out).call()
    return f"{out / 'streamface.zarr'}::fotb"


@pytest.fixture(scope="module")
def extracted(fotb_frames, model_home, tmp_path_factory):  # noqa: F811
    """The store stream of each extraction: {"default": ..., "seed size": ...}."""
    return {"default": _extract(fotb_frames, tmp_path_factory.mktemp("fotb-default")),
            "seed size": _extract(fotb_frames, tmp_path_factory.mktemp("fotb-seed"), size_threshold=0.005)}


def named_rows(fotb, features_path):
    """Per named box: the stream row of its matched face (-1: none) and the identity (index)."""
    from streamface.engine import box_iou
    from streamface.store import FaceStore

    store, stream = features_path.split("::")
    source = FaceStore.open(store).stream(stream)
    ids = source.face_ids().tolist()
    boxes = source.read_faces(columns=("box",)).box
    by_frame: dict[str, list[int]] = {}
    for row, face in enumerate(ids):
        by_frame.setdefault(face.rsplit("_face_", 1)[0], []).append(row)
    people: dict[str, int] = {}
    rows, truth = [], []
    with open(fotb / "labels.csv", newline="") as fp:
        for line in csv.DictReader(fp):
            if line["identity"] == "unknown":
                continue
            truth.append(people.setdefault(line["identity"], len(people)))
            mine = by_frame.get(frame_name("fotb", START + _seconds(line["frame"])), [])
            iou = box_iou(np.array([[float(line[k]) for k in "xywh"]]), boxes[mine])[0] if mine else np.zeros(0)
            best = int(np.argmax(iou)) if len(iou) else -1
            rows.append(mine[best] if best >= 0 and iou[best] >= 0.5 else -1)
    assert len(truth) == 52 and len(people) == 6
    return np.array(rows), np.array(truth)


def score(labels, rows, truth):
    """BCubed and pairwise scores over the named faces; a named face not found is a cluster of its own."""
    fresh = int(labels.max()) + 1 + np.arange(len(rows))
    return evaluate_labels(truth, np.where(rows >= 0, labels[np.maximum(rows, 0)], fresh))


@pytest.mark.parametrize("method", ["hac", "knn"])
def test_fotb_identities_with_every_threshold_at_its_default(fotb, extracted, method, tmp_path):
    results = {}
    for kind, path in extracted.items():
        result = FaceClustering(path, output_dir=tmp_path / kind.replace(" ", "-"), method=method,
                                write_store=False, verbose=False).call()
        assert result.model == "sface" and not result.warnings
        assert result.thresholds == {"matching_threshold": 0.5, "merging_threshold": 0.6}
        assert not has_conflict(result.labels, frame_keys(result.names))  # no cluster holds two faces of a frame
        rows, truth = named_rows(fotb, path)
        results[kind] = (score(result.labels, rows, truth), int(np.sum(rows < 0)), rows, truth)
        s = results[kind][0]
        print(f"\n{method} {kind}: {results[kind][1]} named faces missed; BCubed P/R/F "
              f"{s.bcubed[0]:.3f}/{s.bcubed[1]:.3f}/{s.bcubed[2]:.3f}, pairwise F {s.pairwise[2]:.3f}, "
              f"{result.n_clusters} clusters")
    for kind, (s, missed, rows, truth) in results.items():
        # Every named face the extraction kept is with its own people, and only with them.
        perfect = score(_ideal(rows, truth), rows, truth)
        assert s.bcubed[0] == 1.0 and s.bcubed == pytest.approx(perfect.bcubed), kind
    default, seed_size = results["default"], results["seed size"]
    assert default[1] == 1 and seed_size[1] == 3  # the detector; the seed's size filter drops 2 more
    s = default[0]
    assert s.bcubed[2] >= 0.97 and s.pairwise[2] >= 0.95 and s.bcubed[0] >= 0.99  # the targets
    assert seed_size[0].bcubed[2] >= 0.945 - 1e-3  # the best the seed filter's 49 faces allow


def _ideal(rows, truth):
    """Labels (per stream row) that put each matched named face with its identity: the best clustering."""
    labels = np.full(int(rows.max()) + 1, -1, np.int64)
    labels[rows[rows >= 0]] = truth[rows >= 0]
    free = labels < 0
    labels[free] = 1000 + np.arange(int(free.sum()))
    return labels


def test_the_seeds_complete_linkage_splits_the_same_faces(fotb, extracted, tmp_path):
    """The cause the issue measured: the seed's complete linkage at the same cut under-merges (recall short)."""
    path = extracted["default"]
    result = FaceClustering(path, output_dir=tmp_path, linkage="complete", write_store=False, verbose=False).call()
    rows, truth = named_rows(fotb, path)
    s = score(result.labels, rows, truth)
    assert s.bcubed[0] == 1.0 and s.bcubed[1] < 0.9 and s.bcubed[2] < 0.95
