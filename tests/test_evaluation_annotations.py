"""Stage 9 (AnnotationEvaluation), the metrics behind it, and the annotations.json reader/writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm

from streamface.evaluate import metrics
from streamface.evaluate.annotation_evaluation import AnnotationEvaluation
from streamface.identify.annotations import Annotations, read_annotations, write_annotations
from streamface.cli import main as cli


@pytest.fixture(scope="module")
def seed_metadata(shared_data):
    path = shared_data / "skynews" / "metadata"
    if not (path / "annotations_manual.json").is_file():
        pytest.skip(f"seed annotations not found at {path}")
    return path


def write_labels(path, labels: dict, **extra):
    doc = {"labels": {name: {"label": label} for name, label in labels.items()}, **extra}
    path.write_text(json.dumps(doc))
    return path


# ---- the seed's reference numbers ---------------------------------------------------------------

def test_reproduces_the_seed_report_on_its_own_files(seed_metadata):
    scores = AnnotationEvaluation(seed_metadata / "annotations_manual.json",
                                  seed_metadata / "annotations.json").evaluate(verbose=False)
    assert scores["Samples"] == 37
    assert scores["True Clusters"] == 21  # 20 people + the noise label -1
    assert scores["Pred Clusters"] == 24
    assert [round(v, 3) for v in scores["BCubed"]] == [1.0, 0.919, 0.958]
    assert round(scores["Pairwise"][2], 3) == 0.893
    assert round(scores["NMI"], 3) == 0.974
    assert round(scores["Adjusted Rand"], 3) == 0.888
    assert round(scores["Purity"], 3) == 1.0


def test_seed_report_is_printed_when_verbose(seed_metadata, capsys):
    AnnotationEvaluation(seed_metadata / "annotations_manual.json", seed_metadata / "annotations.json").evaluate()
    out = capsys.readouterr().out
    assert "Annotations Report:" in out and "BCubed: P 1.000, R 0.919, F 0.958" in out


def test_noise_rules_on_the_seed_files(seed_metadata):
    def bcubed_f(noise):
        ev = AnnotationEvaluation(seed_metadata / "annotations_manual.json", seed_metadata / "annotations.json",
                                  noise=noise)
        return round(ev.scores().bcubed[2], 3)

    # One noise face: as a class of its own it is the same as the seed's rule; dropped it is not.
    assert bcubed_f("label") == bcubed_f("singletons") == 0.958
    assert bcubed_f("drop") == 0.957


def test_seed_annotations_round_trip_unchanged(seed_metadata, tmp_path):
    original = read_annotations(seed_metadata / "annotations.json")
    write_annotations(tmp_path / "a.json", original)
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((seed_metadata / "annotations.json").read_text())
    assert (tmp_path / "a.json").read_text() == (seed_metadata / "annotations.json").read_text()


# ---- metrics against scikit-learn and by hand ----------------------------------------------------

@pytest.mark.parametrize("seed", range(25))
def test_metrics_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    t = rng.integers(-1, int(rng.integers(1, 12)), n)
    p = rng.integers(0, int(rng.integers(1, 12)), n)
    assert metrics.adjusted_rand(t, p) == pytest.approx(skm.adjusted_rand_score(t, p), abs=1e-12)
    assert metrics.nmi(t, p) == pytest.approx(skm.normalized_mutual_info_score(t, p), abs=1e-12)
    prec, rec = metrics.weighted_precision_recall(t, p)
    assert prec == pytest.approx(skm.precision_score(t, p, average="weighted", zero_division=0))
    assert rec == pytest.approx(skm.recall_score(t, p, average="weighted", zero_division=0))
    assert metrics.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))


def test_bcubed_and_pairwise_by_hand():
    t = np.array([0, 0, 0, 1, 1])
    p = np.array([0, 0, 1, 1, 1])
    # BCubed precision: faces 0,1: 1; face 2: 1/3; faces 3,4: 2/3 -> (2 + 1/3 + 4/3) / 5
    prec, rec, _ = metrics.bcubed(t, p)
    assert prec == pytest.approx((2 + 1 / 3 + 4 / 3) / 5)
    assert rec == pytest.approx((2 * 2 / 3 + 1 / 3 + 2) / 5)
    # Pairs: predicted {01, 23, 24, 34} = 4, true {01, 02, 12, 34} = 4, shared {01, 34} = 2.
    assert metrics.pairwise_fscore(t, p) == pytest.approx((0.5, 0.5, 0.5))
    assert metrics.purity(t, p) == pytest.approx(4 / 5)


def test_metrics_of_identical_labelings_are_perfect():
    t = np.array([3, 3, 7, 9, 9, 9])
    p = np.array([0, 0, 1, 2, 2, 2])
    s = metrics.evaluate_labels(t, p)
    assert s.bcubed == (1.0, 1.0, 1.0) and s.pairwise == (1.0, 1.0, 1.0)
    assert s.nmi == pytest.approx(1.0) and s.adjusted_rand == pytest.approx(1.0) and s.purity == 1.0


def test_pairwise_is_defined_when_every_face_is_alone():
    t = np.array([0, 0, 1])
    p = np.array([0, 1, 2])
    assert metrics.pairwise_fscore(t, p) == (1.0, 0.0, 0.0)
    assert metrics.pairwise_fscore(p, p) == (1.0, 1.0, 1.0)


def test_metrics_scale_to_a_million_faces_without_overflow():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 5000, 1_000_000)
    p = np.where(rng.random(1_000_000) < 0.9, t, rng.integers(0, 5000, 1_000_000))
    assert metrics.adjusted_rand(t, p) == pytest.approx(skm.adjusted_rand_score(t, p), rel=1e-9)
    assert 0.8 < metrics.bcubed(t, p)[2] < 0.95


def test_unknown_noise_rule_is_rejected():
    with pytest.raises(ValueError, match="noise"):
        metrics.apply_noise_rule([0], [0], "ignore")


# ---- alignment and bad input -------------------------------------------------------------------

def test_faces_named_by_one_file_only_are_left_out_with_a_warning(tmp_path):
    true = write_labels(tmp_path / "t.json", {"a": 0, "b": 0, "c": 1, "z": 2})
    pred = write_labels(tmp_path / "p.json", {"a": 5, "b": 5, "c": 6, "y": 6})
    with pytest.warns(UserWarning, match="left out 1 predicted faces without a true label and 1 true faces"):
        scores = AnnotationEvaluation(true, pred).evaluate(verbose=False)
    assert scores["Samples"] == 3 and scores["BCubed"] == (1.0, 1.0, 1.0)


def test_files_without_a_common_face_are_an_error(tmp_path):
    true = write_labels(tmp_path / "t.json", {"a": 0})
    pred = write_labels(tmp_path / "p.json", {"b": 0})
    with pytest.raises(ValueError, match="no face in common"):
        AnnotationEvaluation(true, pred).evaluate(verbose=False)


def test_png_suffixes_and_string_labels_are_accepted(tmp_path):
    true = write_labels(tmp_path / "t.json", {"a.png": "0", "b.png": "1"})
    pred = write_labels(tmp_path / "p.json", {"a": 3, "b": 4})
    assert AnnotationEvaluation(true, pred).evaluate(verbose=False)["Samples"] == 2


@pytest.mark.parametrize("text, message", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "'labels'"),
    ('{"labels": {"a": {"label": "x"}}}', "no integer 'label'"),
    ('{"labels": {"a": {"mask": 0.1}}}', "no integer 'label'"),
])
def test_malformed_annotations_are_clear_errors(tmp_path, text, message):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    good = write_labels(tmp_path / "good.json", {"a": 0})
    with pytest.raises(ValueError, match=message):
        AnnotationEvaluation(bad, good).evaluate(verbose=False)


def test_missing_file_names_the_parameter(tmp_path):
    good = write_labels(tmp_path / "good.json", {"a": 0})
    with pytest.raises(FileNotFoundError, match="pred_annotations_path"):
        AnnotationEvaluation(good, tmp_path / "nope.json").evaluate(verbose=False)


def test_annotations_keep_ignore_and_extra_fields(tmp_path):
    ann = Annotations(np.array(["a", "b"]), np.array([1, -1]), [{"mask": 0.5}, {}], ["1,2"])
    write_annotations(tmp_path / "a.json", ann)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc == {"labels": {"a": {"label": 1, "mask": 0.5}, "b": {"label": -1}}, "ignore": ["1,2"]}
    back = read_annotations(tmp_path / "a.json")
    assert back.ignore == ["1,2"] and back.labels.tolist() == [1, -1]


# ---- CLI -----------------------------------------------------------------------------------------

def test_cli_prints_the_seed_report(seed_metadata):
    result = CliRunner().invoke(cli, ["evaluate-annotations", str(seed_metadata / "annotations_manual.json"),
                                      str(seed_metadata / "annotations.json")])
    assert result.exit_code == 0, result.output
    assert "BCubed: P 1.000, R 0.919, F 0.958" in result.output
    assert "Pairwise: P 1.000, R 0.806, F 0.893" in result.output


def test_cli_json_output(seed_metadata):
    result = CliRunner().invoke(cli, ["evaluate-annotations", "--json", str(seed_metadata / "annotations_manual.json"),
                                      str(seed_metadata / "annotations.json")])
    doc = json.loads(result.output)
    assert round(doc["nmi"], 3) == 0.974 and round(doc["bcubed"]["fscore"], 3) == 0.958


def test_cli_bad_input_is_one_line_and_non_zero(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = CliRunner().invoke(cli, ["evaluate-annotations", str(bad), str(bad)])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error:") and "Traceback" not in result.output
