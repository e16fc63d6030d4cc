"""Backends: device/backend selection, the ONNX Runtime engine, and honest refusals."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
from engine_fixtures import engine_home, tiny_onnx_model  # noqa: F401

from streamface.engine import (
    BackendError,
    InferenceEngine,
    ModelError,
    OrtEngine,
    create_engine,
    load_detector,
    load_recognizer,
)
from streamface.engine.backends import parse_device, resolve
from streamface.engine.backends.availability import AUTO_ORDER, cuda_candidate
from streamface.engine.backends.base import ort_cuda_available

needs_no_cuda = pytest.mark.skipif(ort_cuda_available(), reason="this machine has CUDA")


def cuda_device_present() -> bool:
    if not ort_cuda_available():
        return False
    try:
        OrtEngine(tiny_onnx_model("batch"), device="cuda:0")
    except BackendError:
        return False
    return True


@pytest.mark.parametrize("text, expected", [
    ("auto", None), ("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda:0"), ("cuda:1", "cuda:1")])
def test_parse_device(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "tpu:0", "", None])
def test_unknown_device_names_the_choices(text):
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda' or 'cuda:N'"):
        parse_device(text)


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'ort', 'tensorrt', 'torch'"):
        resolve("cpu", "onnx")


@pytest.mark.skipif(any(cuda_candidate(b, None).usable for b in AUTO_ORDER),
                    reason="a backend here runs on CUDA")
def test_auto_falls_back_to_the_cpu():
    assert resolve("auto", "auto").device == "cpu"
    assert OrtEngine(tiny_onnx_model("batch"), device="auto").device == "cpu"


@needs_no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_an_error_not_a_fallback(device, engine_home):
    with pytest.raises(BackendError, match="no CUDA execution provider.*onnxruntime-gpu"):
        resolve(device, "ort")
    with pytest.raises(BackendError, match="no CUDA"):
        load_detector(device=device, home=engine_home)


# torch: tests/test_engine_torch.py; TensorRT: tests/test_engine_tensorrt.py (each loads
# wherever its packages and CUDA are installed).
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="tensorrt is installed here")
def test_tensorrt_without_the_package_refuses_clearly(engine_home):
    with pytest.raises(BackendError, match="backend 'tensorrt' needs the tensorrt Python "
                                           "package") as err:
        load_recognizer(backend="tensorrt", device="cuda:0", home=engine_home)
    assert "backend='ort'" in str(err.value) and "pip install" in str(err.value)


def test_the_always_raising_stand_in_is_gone():
    assert importlib.util.find_spec("streamface.engine.backends.unavailable") is None


def test_gpu_only_backends_refuse_the_cpu():
    with pytest.raises(BackendError, match="runs on CUDA only"):
        resolve("cpu", "tensorrt")


def test_ort_engine_follows_the_protocol():
    engine = create_engine(tiny_onnx_model("batch"), device="cpu", backend="ort",
                           intra_op_threads=1)
    assert isinstance(engine, InferenceEngine)
    assert engine.input_names == ("x",) and engine.output_names == ("y",)
    assert engine.input_shapes == {"x": ("batch", 3, 4, 4)} and engine.max_batch is None
    (y,) = engine.run({"x": np.ones((5, 3, 4, 4), np.float32)})
    np.testing.assert_array_equal(y, 2.0)


def test_fixed_batch_models_report_their_limit():
    assert OrtEngine(tiny_onnx_model(1), device="cpu").max_batch == 1
    assert OrtEngine(tiny_onnx_model(1), device="cpu", max_batch=4).max_batch == 4


def test_intra_op_threads_is_validated():
    with pytest.raises(ValueError, match="intra_op_threads"):
        OrtEngine(tiny_onnx_model(), device="cpu", intra_op_threads=-1)


def test_the_choice_is_logged_once(caplog):
    from streamface.engine.backends import base

    base._announced.clear()
    with caplog.at_level(logging.INFO, logger="streamface.engine"):
        OrtEngine(tiny_onnx_model(), device="cpu")
        OrtEngine(tiny_onnx_model(), device="cpu")
    lines = [r.getMessage() for r in caplog.records if "inference on" in r.getMessage()]
    assert lines == ["inference on cpu via ort (providers: CPUExecutionProvider)"]


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", b"\x08\x07\x12\x03abc"])
def test_garbage_model_bytes_are_a_model_error(content):
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it") as err:
        OrtEngine(content, device="cpu", name="garbage.onnx")
    assert str(err.value).startswith("garbage.onnx: ") and "\n" not in str(err.value)


def test_not_onnx_file_given_by_path(tmp_path):
    png = tmp_path / "photo.onnx"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelError, match="photo.onnx: ONNX Runtime cannot load it"):
        load_detector(path=png, device="cpu")


def test_truncated_file_given_by_path(tmp_path, engine_home):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes((engine_home / "models" / "yunet.onnx").read_bytes()[:50_000])
    with pytest.raises(ModelError, match="cut.onnx"):
        load_detector(path=cut, device="cpu")


def test_missing_file_given_by_path(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_detector(path=tmp_path / "nope.onnx")


def test_unrecognised_model_given_by_path(tmp_path):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_onnx_model())
    with pytest.raises(ModelError, match="cannot tell which detector this is"):
        load_detector(path=path, device="cpu")


def test_role_mismatch(engine_home):
    with pytest.raises(ModelError, match="sface is a recognizer, not a detector"):
        load_detector("sface", device="cpu", home=engine_home)


@pytest.mark.gpu
def test_cuda_engine_matches_the_cpu(engine_home):
    if not cuda_device_present():
        pytest.skip("no CUDA device for ONNX Runtime")
    cpu = load_recognizer(device="cpu", home=engine_home)
    gpu = load_recognizer(device="cuda:0", home=engine_home)
    assert gpu.engine.device == "cuda:0"
    faces = np.random.default_rng(0).integers(0, 255, (8, 112, 112, 3), dtype=np.uint8)
    np.testing.assert_allclose(gpu.embed_aligned(faces), cpu.embed_aligned(faces), atol=1e-3)
