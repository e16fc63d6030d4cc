"""``streamface calibrate`` and the user's calibrated defaults (issue 8).

- Reproduction: calibrating SFace on the public labelled data (skynews, identities/johns,
  identities/orl, tv/fotb; the worst set's BCubed F, the middle of its plateau; issue 19)
  gives the registry's shipped values within one grid step; each detector's calibrated score
  threshold on skynews' 37 seed boxes (IoU 0.5) and the johns and orl photos (one face each)
  is its shipped one (YuNet always; the others when their model is in the user's cache).
- The detector rule on synthetic scores: every set keeps the target recall, a set that
  cannot reach it keeps its best reachable recall.
- Precedence: explicit number > ``<home>/calibration.json`` (``--write``) > shipped
  registry value > the seed's fallback, for clustering thresholds and detector scores.
- The CLI writes its table, ``calibration.json`` and ``calibration.png``; bad inputs and a
  malformed calibration file give one clear line and a non-zero exit.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from analysis_fixtures import make_store, same_partition, seed_batched_hac, write_npz
from engine_fixtures import engine_home  # noqa: F401 (pytest fixture)
from pipeline_fixtures import extracted, model_home  # noqa: F401 (pytest fixtures)
from streamface.identify.annotations import Annotations, read_annotations, write_annotations
from streamface.evaluate.calibration import (
    DetectorCalibration,
    DetectorSetResult,
    LabelledSet,
    PLATEAU_TOLERANCE,
    calibrate_clustering,
    choose,
    cut_grid,
    detector_threshold,
    matched_scores,
    parse_cuts,
    plateau,
    run_calibration,
    store_set,
)
from streamface.cli import main as cli
from streamface.identify.clustering import SEED_THRESHOLDS, make_identities, resolve_threshold
from streamface.engine import load_detector
from streamface.engine.weights.calibration_file import (
    CalibrationFileError,
    calibration_path,
    read_calibration,
    write_calibration,
)
from streamface.engine.weights.cache import default_home
from streamface.engine.weights.registry import REGISTRY
from streamface.engine.models.yunet import YuNet
from streamface.identify.face_clustering import FaceClustering

SHIPPED = REGISTRY["sface"].clustering.thresholds()
STEP = 0.025


@pytest.fixture
def home(tmp_path, engine_home, monkeypatch):  # noqa: F811
    """A private model cache (the session's prepared models linked in) that the stages use."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for path in (engine_home / "models").iterdir():
        os.symlink(path, home / "models" / path.name)
    monkeypatch.setenv("STREAMFACE_HOME", str(home))
    return home


def _one_line_error(result, *words):
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], result.output


# ---- the rule and the sweep on synthetic identities -----------------------------------------------


def test_cut_grid_is_inclusive_and_validated():
    assert cut_grid().tolist()[0] == 0.3 and cut_grid().tolist()[-1] == 0.7 and len(cut_grid()) == 17
    assert parse_cuts("0.4:0.6:0.1").tolist() == [0.4, 0.5, 0.6]
    for bad in ("0.4:0.6", "a:b:c", "0.6:0.4:0.1", "0.4:0.6:0"):
        with pytest.raises(ValueError, match="cut"):
            parse_cuts(bad)


def test_chosen_cut_maximises_the_worst_sets_bcubed_f():
    x, y = make_identities(300, dim=32, n_identities=30, random_state=5)
    a = LabelledSet("a", x[:150].astype(np.float32), y[:150])
    b = LabelledSet("b", x[150:].astype(np.float32), y[150:])
    cuts = cut_grid(0.1, 0.9, 0.1)
    result = calibrate_clustering([a, b], "sface", cuts)
    worst = np.minimum(result.scores["a"][:, 2], result.scores["b"][:, 2])
    np.testing.assert_allclose(result.worst_f, worst)
    assert result.chosen == choose(worst, cuts)
    assert result.worst_f[result.best] >= result.worst_f.max() - PLATEAU_TOLERANCE
    t = result.chosen["matching_threshold"]
    assert result.chosen == pytest.approx({"matching_threshold": t, "merging_threshold": t + 0.1,
                                           "min_threshold": t + 0.05, "max_threshold": t + 0.15})
    assert "worst set's BCubed F" in result.source() and "worst F" in result.table()


def test_choice_is_the_middle_of_a_plateau_and_the_worst_set_decides():
    cuts = cut_grid()  # 0.3..0.7 step 0.025
    # The case: every cut 0.35..0.70 gives F 1.0; the edge 0.35 was chosen, the middle is wanted.
    f = np.where(cuts >= 0.35 - 1e-9, 1.0, 0.9)
    assert choose(f, cuts)["matching_threshold"] == 0.525
    assert plateau(f) == (2, 16)
    # An even plateau: the lower middle (precision first); the widest of two plateaus wins.
    f = np.full(len(cuts), 0.8)
    f[[1, 2]] = 0.99
    f[[8, 9, 10, 11]] = 0.99
    assert choose(f, cuts)["matching_threshold"] == 0.525
    # The mean would pick the cut where one set is perfect and the other poor; the worst does not.
    easy = np.array([1.0, 1.0, 0.95])
    hard = np.array([0.80, 0.90, 0.93])
    assert choose(np.minimum(easy, hard), [0.4, 0.5, 0.6])["matching_threshold"] == 0.6
    assert choose((easy + hard) / 2, [0.4, 0.5, 0.6])["matching_threshold"] == 0.5


def test_calibration_refuses_a_set_with_one_identity():
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="one: calibration needs at least two identities"):
        calibrate_clustering([LabelledSet("one", x, np.zeros(4, np.int64))], "sface")


def test_detections_match_true_boxes_one_to_one_at_iou():
    truth = np.array([[0, 0, 10, 10], [100, 100, 10, 10], [200, 200, 10, 10]], np.float32)
    boxes = np.array([[1, 1, 10, 10], [0, 0, 9, 9], [150, 150, 10, 10]], np.float32)
    scores = np.array([0.9, 0.7, 0.99], np.float32)
    out = matched_scores(truth, boxes, scores, 0.5)
    assert out[0] == pytest.approx(0.7) and np.isnan(out[1:]).all()  # IoU 0.81 beats 0.68; each used once


def test_detector_threshold_keeps_the_target_on_every_set():
    boxes = np.array([0.99, 0.95, 0.934, 0.93, 0.90, 0.85, 0.80, 0.7, 0.6, 0.5])  # 10 true boxes, all found
    photos = np.array([0.97] * 18 + [0.887, 0.6])  # 20 photos: 19 of 20 (0.95) needs the 0.887 one
    threshold, goals, limits = detector_threshold([boxes, photos], 0.9)
    # boxes: 9 of 10 (0.9) need 0.6 -> limit 0.6; photos: 18 of 20 (0.9) need 0.97 -> 0.97
    assert (threshold, goals, limits) == (0.6, [0.9, 0.9], [0.6, 0.97])
    threshold, goals, limits = detector_threshold([boxes, photos], 0.95)
    # boxes: 10 of 10 -> 0.5; photos: 19 of 20 -> 0.887 rounded down to 0.88
    assert (threshold, limits) == (0.5, [0.5, 0.88])
    only_photos, _, _ = detector_threshold([photos], 0.95)
    assert only_photos == 0.88
    assert np.sum(photos >= only_photos) / len(photos) >= 0.95 > np.sum(photos >= only_photos + 0.01) / len(photos)
    # a score exactly on a step keeps that step (detectors keep scores >= their threshold)
    assert detector_threshold([np.array([0.93, 0.99])], 1.0)[0] == 0.93


def test_detector_threshold_keeps_the_best_reachable_recall_where_the_target_is_out_of_reach():
    nan = np.nan
    # 35 of 37 found at the floor (0.946 < 0.95): keep all 35, so the lowest found score (0.769) limits it
    skynews = np.array([0.99] * 34 + [0.769, nan, nan])
    photos = np.array([0.99] * 399 + [nan])  # 399 of 400: reaches 0.95 with room to spare
    threshold, goals, limits = detector_threshold([skynews, photos], 0.95, floor=0.05)
    assert threshold == 0.76 and limits == [0.76, 0.99]
    assert goals[0] == pytest.approx(35 / 37) and goals[1] == 0.95
    # a set with no face found at all constrains nothing; the floor bounds the threshold below
    assert detector_threshold([np.array([nan, nan]), np.array([0.9, 0.9])], 0.95) == (0.9, [0.0, 0.95], [1.0, 0.9])
    assert detector_threshold([np.array([0.051, 0.2])], 1.0, floor=0.055)[0] == 0.055
    for bad in ([], [np.zeros(0)]):
        with pytest.raises(ValueError, match="detector calibration"):
            detector_threshold(bad, 0.95)
    with pytest.raises(ValueError, match="target_recall"):
        detector_threshold([np.ones(3)], 0)


def test_detector_calibration_reports_each_set_and_an_unreachable_target():
    nan = np.nan
    sets = [DetectorSetResult("skynews", "boxes", np.array([0.99] * 34 + [0.769, nan, nan]), 35 / 37, 0.76),
            DetectorSetResult("orl", "photos", np.array([0.99] * 399 + [nan]), 0.95, 0.99)]
    result = DetectorCalibration("mtcnn", 0.95, 0.5, 0.05, sets, 0.76, 0.95)
    assert result.recall(0.76) == {"skynews": pytest.approx(35 / 37), "orl": pytest.approx(399 / 400)}
    assert [s.name for s in result.short_of_target()] == ["skynews"]
    assert "skynews: 35 of 37 true faces at IoU 0.5" in result.summary()
    assert "target not reachable: keeps the best reachable recall 0.946" in result.summary()
    assert "orl: 399 of 400 photos" in result.summary() and "shipped 0.95: skynews 0.919" in result.summary()
    doc = result.to_json()
    assert [(s["name"], s["target_reached"], s["found"]) for s in doc["sets"]] == [("skynews", False, 35),
                                                                                    ("orl", True, 399)]
    assert "skynews cannot reach it" in doc["source"] and doc["threshold"] == 0.76


# ---- the user's calibration file ------------------------------------------------------------------


def test_written_values_are_the_defaults_and_explicit_values_win(home, tmp_path):
    x, _ = make_identities(400, dim=32, n_identities=40, random_state=3)
    x = x.astype(np.float32)
    npz = write_npz(tmp_path / "f.npz", x)
    assert not same_partition(seed_batched_hac(x, 0.3, linkage="average"), seed_batched_hac(x, 0.5, linkage="average"))
    write_calibration({"sface": {"matching_threshold": 0.3, "merging_threshold": 0.45, "min_threshold": 0.33,
                                 "max_threshold": 0.4, "metric": "cosine", "source": "test"}}, home)
    assert resolve_threshold("min_threshold", None, "sface") == 0.33
    assert resolve_threshold("min_threshold", 0.55, "sface") == 0.55
    user = FaceClustering(npz, output_dir=tmp_path / "a", verbose=False, model="sface").call()
    assert user.thresholds == {"matching_threshold": 0.3, "merging_threshold": 0.45} and not user.warnings
    assert same_partition(user.labels, seed_batched_hac(x, 0.3, linkage="average"))
    explicit = FaceClustering(npz, output_dir=tmp_path / "b", verbose=False, model="sface",
                              matching_threshold=0.5, merging_threshold=0.6).call()
    assert explicit.thresholds == {"matching_threshold": 0.5, "merging_threshold": 0.6}
    assert same_partition(explicit.labels, seed_batched_hac(x, 0.5, linkage="average"))


def test_user_values_cover_a_model_the_registry_lacks_and_keep_other_models(home):
    write_calibration({"sface+arcface": {"matching_threshold": 0.42}}, home)
    write_calibration({"yunet": {"conf_threshold": 0.7}}, home)
    assert set(read_calibration(home)) == {"sface+arcface", "yunet"}
    assert resolve_threshold("matching_threshold", None, "sface+arcface") == 0.42
    assert resolve_threshold("merging_threshold", None, "sface+arcface") == SEED_THRESHOLDS["merging_threshold"]
    assert resolve_threshold("matching_threshold", None, "sface") == SHIPPED["matching_threshold"]


def test_detector_uses_the_written_score_threshold_unless_one_is_passed(home):
    assert load_detector("yunet", device="cpu", home=home).conf_threshold == YuNet.DEFAULT_CONF_THRESHOLD
    assert YuNet.DEFAULT_CONF_THRESHOLD != 0.83  # the written value must differ from the shipped one
    write_calibration({"yunet": {"conf_threshold": 0.83}}, home)
    assert load_detector("yunet", device="cpu", home=home).conf_threshold == 0.83
    assert load_detector("yunet", device="cpu", home=home, conf_threshold=0.5).conf_threshold == 0.5


@pytest.mark.parametrize("text", ["{not json", '{"format": 2, "models": {}}',
                                  '{"format": 1, "models": {"sface": {"matching_threshold": "x"}}}',
                                  '{"format": 1, "models": {"sface": {"matching_thresold": 0.4}}}',
                                  '{"format": 1, "models": {"yunet": {"conf_threshold": 1.5}}}'])
def test_malformed_calibration_file_is_one_line_naming_it(home, tmp_path, text):
    path = calibration_path(home)
    path.write_text(text)
    with pytest.raises(CalibrationFileError) as info:
        resolve_threshold("matching_threshold", None, "sface")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CalibrationFileError):
        write_calibration({"sface": {"matching_threshold": 0.4}}, home)  # never overwrites what it cannot read
    assert path.read_text() == text
    npz = write_npz(tmp_path / "f.npz", np.eye(8, dtype=np.float32))
    result = CliRunner().invoke(cli, ["cluster", str(npz), "--output-dir", str(tmp_path / "o"), "--model", "sface"])
    _one_line_error(result, str(path))
    assert CliRunner().invoke(cli, ["cluster", str(npz), "--output-dir", str(tmp_path / "p"), "--model", "sface",
                                    "--matching-threshold", "0.5", "--merging-threshold", "0.6"]).exit_code == 0
    listing = CliRunner().invoke(cli, ["models", "--home", str(home), "list"])
    assert listing.exit_code != 0 and str(path) in listing.output.strip().splitlines()[-1]


def test_models_list_shows_defaults_and_where_they_come_from(home):
    before = CliRunner().invoke(cli, ["models", "--home", str(home), "list"])
    assert before.exit_code == 0, before.output
    rows = {line.split()[0]: line for line in before.output.splitlines() if "shipped" in line or "user" in line}
    assert f"score >= {YuNet.DEFAULT_CONF_THRESHOLD:g}" in rows["yunet"] and "shipped" in rows["yunet"]
    assert "cosine matching 0.5, merging 0.6, cluster matching 0.55/0.65" in rows["sface"]
    assert "score >= 0.93" in rows["retinaface"]
    assert "yunet, retinaface, centerface, mtcnn: streamface calibrate" in before.output  # where they came from
    write_calibration({"yunet": {"conf_threshold": 0.83}, "sface": {"matching_threshold": 0.45}}, home)
    after = CliRunner().invoke(cli, ["models", "--home", str(home), "list"])
    rows = {line.split()[0]: line for line in after.output.splitlines() if line.rstrip().endswith("user")}
    assert "score >= 0.83" in rows["yunet"] and "matching 0.45, merging 0.6" in rows["sface"]
    assert str(calibration_path(home)) in after.output


# ---- labelled sets and bad inputs -----------------------------------------------------------------


def test_store_set_takes_the_annotated_embedded_faces(tmp_path):
    from streamface.identify.features import load_features

    x, y = make_identities(60, dim=16, n_identities=6, random_state=1)
    features = make_store(tmp_path / "data" / "s.zarr", x.astype(np.float32), embed=50)
    names = load_features(features).names
    assert len(names) == 50
    all_names = np.array([n for n in names] + [f"cam_frame_{i:020d}_face_0" for i in range(10)])
    y = y.copy()
    y[5] = -1  # noise: one label, as the seed's evaluation scores it
    labels = write_annotations(tmp_path / "data" / "metadata" / "annotations_manual.json",
                               Annotations(all_names, y))
    s = store_set(features)  # the default place of the labels: <store folder>/metadata/
    assert len(s.labels) == 50 and s.labels.tolist() == y[:50].tolist()  # faces without embeddings left out
    np.testing.assert_allclose(s.embeddings, x[:50], atol=1e-6)
    assert s.skipped and "10 of 60" in s.skipped[0]
    assert store_set(features, annotations=labels).labels.tolist() == s.labels.tolist()


def test_bad_inputs_are_one_clear_line(home, tmp_path, skynews):
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(CliRunner().invoke(cli, ["calibrate", str(empty), "--output", str(tmp_path / "o")]),
                    str(empty), "<identity>/<images>")
    one = tmp_path / "one"
    (one / "alice").mkdir(parents=True)
    for photo in sorted((skynews.parent / "identities" / "johns").glob("*/*.jpg"))[:2]:
        (one / "alice" / photo.name).write_bytes(photo.read_bytes())
    _one_line_error(CliRunner().invoke(cli, ["calibrate", str(one), "--output", str(tmp_path / "o")]),
                    str(one), "two identities")
    x, _ = make_identities(20, dim=8, n_identities=4, random_state=0)
    store = make_store(tmp_path / "s.zarr", x.astype(np.float32))
    _one_line_error(CliRunner().invoke(cli, ["calibrate", store, "--output", str(tmp_path / "o")]),
                    "annotations_manual.json", "--annotations")
    _one_line_error(CliRunner().invoke(cli, ["calibrate", str(skynews), "--model", "no-such-model"]),
                    "no-such-model")
    _one_line_error(CliRunner().invoke(cli, ["calibrate", str(skynews), "--model", "yunet"]), "not a recognizer")
    _one_line_error(CliRunner().invoke(cli, ["calibrate", str(tmp_path / "missing")]), "missing")
    _one_line_error(CliRunner().invoke(cli, ["calibrate", str(skynews), "--cuts", "0.5"]), "start:stop:step")
    assert not calibration_path(home).exists()


def test_frames_with_bad_named_boxes_are_one_clear_line(home, tmp_path, shared_data):
    fotb = shared_data / "tv" / "fotb"
    if not (fotb / "labels.csv").is_file():
        pytest.skip(f"tv/fotb not found at {fotb}")
    root = tmp_path / "tv"
    (root / "frames").mkdir(parents=True)
    frame = sorted((fotb / "frames").glob("*.jpg"))[0]
    (root / "frames" / frame.name).write_bytes(frame.read_bytes())
    labels = root / "labels.csv"
    for text, words in ((f"frame,x,y,w,h,identity\n{frame.stem},1,2,wide,4,eddie\n", ("labels.csv, line 2",)),
                        (f"frame,x,y,w,h,identity\n{frame.stem},1,2,0,4,eddie\n", ("line 2", "positive size")),
                        ("frame,x,y,w,h,identity\nnot_there,1,2,3,4,eddie\n", ("'not_there'", "no image"))):
        labels.write_text(text)
        _one_line_error(CliRunner().invoke(cli, ["calibrate", str(root), "--what", "clustering",
                                                 "--output", str(tmp_path / "o")]), *words)
    assert not calibration_path(home).exists()


def test_frames_folder_set_keeps_the_named_faces_and_their_frames(engine_home, shared_data):  # noqa: F811
    from streamface.evaluate.calibration import frames_folder_set, read_named_boxes
    from streamface.engine import load_recognizer

    fotb = shared_data / "tv" / "fotb"
    if not (fotb / "labels.csv").is_file():
        pytest.skip(f"tv/fotb not found at {fotb}")
    named = {k: [w for _, w in v if w != "unknown"] for k, v in read_named_boxes(fotb / "labels.csv").items()}
    s = frames_folder_set(fotb, load_detector("yunet", device="cpu", home=engine_home),
                          load_recognizer("sface", device="cpu", home=engine_home))
    assert s.identities == 6 and len(s.labels) == 51 and len(s.skipped) == 1  # one named face YuNet misses
    # faces of one frame share a frame key, and a frame holds as many as it has named boxes found
    counts = np.bincount(s.frames)
    assert sorted(counts[counts > 0].tolist()) == sorted(
        len(v) - (k == "fotb_t059p00") for k, v in named.items() if v and len(v) - (k == "fotb_t059p00"))


def test_store_of_another_models_embeddings_is_refused(home, tmp_path):
    x, y = make_identities(20, dim=8, n_identities=4, random_state=0)
    store = make_store(tmp_path / "data" / "s.zarr", x.astype(np.float32))  # embeddings of "test-model"
    from streamface.identify.features import load_features

    write_annotations(tmp_path / "data" / "metadata" / "annotations_manual.json",
                      Annotations(load_features(store).names, y))
    _one_line_error(CliRunner().invoke(cli, ["calibrate", store, "--what", "clustering"]), "'test-model'", "sface")


# ---- the public data: reproduce the shipped values ------------------------------------------------


@pytest.fixture(scope="module")
def public_calibration(shared_data, engine_home):  # noqa: F811
    """SFace and YuNet calibrated on skynews + johns + orl with the default grid (about 15 s)."""
    for sub in ("skynews", "identities/johns", "identities/orl"):
        if not (shared_data / sub).is_dir():
            pytest.skip(f"public labelled data {shared_data / sub} not found")
    return run_calibration([str(shared_data / "skynews"), str(shared_data / "identities" / "johns"),
                            str(shared_data / "identities" / "orl")], model="sface", detectors=("yunet",),
                           device="cpu", home=engine_home)


@pytest.fixture(scope="module")
def public_clustering(shared_data, engine_home):  # noqa: F811
    """SFace's clustering calibrated on the four public sets the shipped values come from (about 70 s)."""
    subs = ("skynews", "identities/johns", "identities/orl", "tv/fotb")
    for sub in subs:
        if not (shared_data / sub).is_dir():
            pytest.skip(f"public labelled data {shared_data / sub} not found")
    return run_calibration([str(shared_data / sub) for sub in subs], model="sface", what="clustering",
                           device="cpu", home=engine_home)


@pytest.mark.slow
def test_calibrate_reproduces_the_shipped_sface_defaults(public_clustering):
    result = public_clustering.clustering
    # The finder runs at YuNet's shipped threshold (0.86): every photo but orl/s2/6.pgm (its face
    # scores 0.856) has a face, and 51 of fotb's 52 named boxes match a detection; the run notes both.
    assert result.sizes == {"skynews": (37, 21), "johns": (55, 5), "orl": (399, 40), "fotb": (51, 6)}
    orl, fotb = public_clustering.notes
    assert orl.startswith("orl: no face in ") and orl.endswith("s2/6.pgm"), orl
    assert fotb.startswith("fotb: fotb_t059p00: no detection") and "evan" in fotb, fotb
    for key, value in SHIPPED.items():
        assert abs(result.chosen[key] - value) <= STEP + 1e-9, (key, result.chosen, SHIPPED)
    assert result.metric == REGISTRY["sface"].clustering.metric
    assert result.worst_f[result.best] >= 0.97  # the shipped source line quotes 0.978 (skynews)
    assert result.scores["fotb"][result.best, 2] >= 0.99  # the TV faces are held together at the cut
    print(f"\n{result.table()}\nchosen {result.chosen}, worst BCubed F {result.worst_f[result.best]:.4f}")


@pytest.mark.slow  # shares the ~25 s calibration on the public data
def test_calibrate_reproduces_the_shipped_yunet_threshold(public_calibration):
    [yunet] = public_calibration.detectors
    assert yunet.model == "yunet" and yunet.shipped == YuNet.DEFAULT_CONF_THRESHOLD
    _check_reproduced(yunet)


@pytest.mark.slow  # shares the ~25 s calibration on the public data
def test_detector_calibration_from_a_store_and_boxes_matches_the_folder(extracted, skynews, engine_home,  # noqa: F811
                                                                        public_calibration):
    from streamface.evaluate.calibration import BoxTruth, calibrate_detector, store_frames

    frames, boxes = store_frames(f"{extracted[0] / 'streamface.zarr'}::skynews",
                                 skynews / "metadata" / "detections.csv")
    assert len(frames) == len({row for row in boxes})
    result = calibrate_detector(load_detector("yunet", device="cpu", home=engine_home),
                                [BoxTruth("store", frames, boxes)])
    [folder] = public_calibration.detectors
    [store], skynews_set = result.sets, folder.sets[0]
    assert skynews_set.name == "skynews" and skynews_set.kind == "boxes"
    assert store.limit == skynews_set.limit and len(store.scores) == len(skynews_set.scores) == 37
    np.testing.assert_allclose(np.sort(store.scores), np.sort(skynews_set.scores), atol=1e-6)


def test_cli_writes_table_json_plot_and_user_defaults(home, skynews, tmp_path):
    johns = skynews.parent / "identities" / "johns"
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["calibrate", str(skynews), str(johns), "--cuts", "0.4:0.6:0.05",
                                      "--output", str(out), "--write"])
    assert result.exit_code == 0, result.output
    assert "skynews P/R/F" in result.output and "johns P/R/F" in result.output and "<-" in result.output
    report = json.loads((out / "calibration.json").read_text())
    chosen = report["clustering"]["chosen"]
    assert report["clustering"]["cuts"] == [0.4, 0.45, 0.5, 0.55, 0.6]
    assert len(report["clustering"]["scores"]["skynews"]) == 5 and report["detectors"][0]["model"] == "yunet"
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = read_calibration(home)
    assert {k: stored["sface"][k] for k in chosen} == chosen and stored["sface"]["metric"] == "cosine"
    assert stored["yunet"]["conf_threshold"] == report["detectors"][0]["threshold"]
    assert f"matching_threshold={chosen['matching_threshold']:g}" in result.output
    # with no thresholds passed, clustering and detection now use the written values
    assert resolve_threshold("matching_threshold", None, "sface") == chosen["matching_threshold"]
    assert load_detector("yunet", device="cpu").conf_threshold == stored["yunet"]["conf_threshold"]
    x, _ = make_identities(400, dim=32, n_identities=40, random_state=3)
    x = x.astype(np.float32)
    npz = write_npz(tmp_path / "f.npz", x)
    at_user, at_shipped = (seed_batched_hac(x, chosen["matching_threshold"], linkage="average"),
                           seed_batched_hac(x, SHIPPED["matching_threshold"], linkage="average"))
    assert not same_partition(at_user, at_shipped), "the data should tell the written cut from the shipped one"
    clustered = CliRunner().invoke(cli, ["cluster", str(npz), "--output-dir", str(tmp_path / "c"), "--model", "sface"])
    assert clustered.exit_code == 0 and "warning" not in clustered.output, clustered.output
    labels = read_annotations(tmp_path / "c" / "metadata" / "annotations.json").labels
    assert same_partition(labels, at_user)


# Read at import: other modules' fixtures point STREAMFACE_HOME at a test cache later.
_USER_MODELS = default_home() / "models"


def _check_reproduced(result):
    """``result`` (skynews, johns, orl) gives the shipped threshold by the documented rule."""
    assert [(s.name, s.kind, len(s.scores)) for s in result.sets] == [("skynews", "boxes", 37), ("johns", "photos", 55),
                                                                      ("orl", "photos", 400)]
    print(f"\n{result.summary()}")
    assert result.threshold == pytest.approx(result.shipped), result.summary()
    for s in result.sets:  # every set keeps its goal at the shipped value, and the next step loses it somewhere
        assert s.recall(result.shipped) >= s.goal - 1e-12, s.name
        assert s.goal == result.target_recall or s.goal == pytest.approx(s.found / len(s.scores))
    assert any(s.recall(result.threshold + 0.01) < s.goal - 1e-12 for s in result.sets) or result.threshold == 1.0


@pytest.mark.slow  # 7-14 s per detector on the public data
@pytest.mark.parametrize("name", ["retinaface", "centerface", "mtcnn"])
def test_calibrate_reproduces_the_other_shipped_detector_thresholds(name, shared_data, tmp_path):
    import shutil

    from streamface.engine.model_zoo import DETECTORS

    for sub in ("skynews", "identities/johns", "identities/orl"):
        if not (shared_data / sub).is_dir():
            pytest.skip(f"public labelled data {shared_data / sub} not found")
    prepared = _USER_MODELS
    files = [f"{part}.{ext}" for part in ((name, "mtcnn-rnet", "mtcnn-onet") if name == "mtcnn" else (name,))
             for ext in ("onnx", "json")]
    if not all((prepared / f).is_file() for f in files):
        pytest.skip(f"{name} is not prepared in {prepared} (`streamface models fetch {name}`, needs PyPI)")
    (tmp_path / "models").mkdir()
    for f in files:  # a private home: the user's calibration.json must not matter
        shutil.copy(prepared / f, tmp_path / "models" / f)
    run = run_calibration([str(shared_data / "skynews"), str(shared_data / "identities" / "johns"),
                           str(shared_data / "identities" / "orl")], what="detector", detectors=(name,),
                          device="cpu", home=tmp_path)
    [result] = run.detectors
    assert result.model == name and result.shipped == DETECTORS[REGISTRY[name].family].DEFAULT_CONF_THRESHOLD
    _check_reproduced(result)
