"""FaceAnalysis on the extracted real faces: embeddings, pose, skipped heads, resume."""

from __future__ import annotations

import numpy as np
import pytest

from engine_fixtures import engine_home  # noqa: F401
from pipeline_fixtures import extracted, extracted_copy, model_home  # noqa: F401

from streamface.engine import POSE_NAMES, ModelError, head_pose
from streamface.ingest.analysis import FaceAnalysis
from streamface.store import FaceStore
from streamface.ingest.capture import store_path


@pytest.fixture(scope="module")
def analysed(extracted, tmp_path_factory):  # noqa: F811
    import shutil

    out = tmp_path_factory.mktemp("analysis") / "data"
    shutil.copytree(extracted[0], out)
    summary = FaceAnalysis(out, out, demographics="fairface", expression="dfemotion").call()
    return out, summary


def _stream(out):
    return FaceStore.open(store_path(out)).stream("skynews")


def test_every_face_gets_an_sface_embedding(analysed, model_home):  # noqa: F811
    out, summary = analysed
    stream = _stream(out)
    emb = stream.read_embeddings()
    assert stream.num_embedded == stream.num_faces == summary.faces > 30
    assert stream.embedding_model == "sface" and emb.shape[1] == 128
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def test_faces_of_one_person_are_closer_than_faces_of_others(analysed, skynews):  # noqa: F811
    # The seed's human labels: faces sharing a label should be nearer than the rest.
    import json

    out, _ = analysed
    stream = _stream(out)
    labels = json.loads((skynews / "metadata" / "annotations_manual.json").read_text())["labels"]
    ids = stream.face_ids().tolist()
    seed = {k.removesuffix(".png"): v["label"] for k, v in labels.items()}
    rows = [i for i, fid in enumerate(ids) if fid in seed]
    emb = stream.read_embeddings()[rows]
    lab = np.array([seed[ids[i]] for i in rows])
    sim = emb @ emb.T
    same = (lab[:, None] == lab[None]) & ~np.eye(len(rows), dtype=bool)
    differ = lab[:, None] != lab[None]
    assert len(rows) >= 30 and sim[same].mean() > sim[differ].mean() + 0.2


def test_pose_comes_from_the_landmarks(analysed):  # noqa: F811
    out, summary = analysed
    stream = _stream(out)
    landmarks = stream.read_faces(columns=("landmarks",)).landmarks
    assert stream.attribute_classes("pose") == list(POSE_NAMES)
    np.testing.assert_allclose(stream.read_attribute("pose"), np.round(head_pose(landmarks), 2), atol=0.011)
    assert "pose" in summary.attributes


def test_heads_without_installed_models_are_skipped_with_one_warning_each(analysed):  # noqa: F811
    _, summary = analysed
    assert len(summary.warnings) == 2
    assert summary.warnings[0].startswith("fairface skipped") and "warning: fairface" in summary.line()


def test_resume_analyses_nothing_twice(analysed, model_home):  # noqa: F811
    out, _ = analysed
    assert FaceAnalysis(out, out).call().faces == 0


def test_arcface_without_a_supplied_model_is_a_clear_error(extracted_copy, model_home):  # noqa: F811
    with pytest.raises(ModelError, match="needs an ArcFace model"):
        FaceAnalysis(extracted_copy, extracted_copy, representation="arcfacenet").call()


def test_unknown_model_names_name_the_parameter(extracted_copy):  # noqa: F811
    with pytest.raises(ValueError, match="expression must be one of"):
        FaceAnalysis(extracted_copy, extracted_copy, expression="nope").call()
