"""Native TensorRT backend: the plan cache, the profile, the choice of backend, the errors.

The plan cache, the profile and the precision choice are plain Python on bytes and
shapes: they are tested here for real, with real processes contending for one plan,
without TensorRT. The ``gpu`` tests at the end build, cache, reload and run YuNet and SFace
with TensorRT and compare them with ONNX Runtime on the CPU on the real frames; they
run wherever tensorrt, torch and a CUDA GPU are installed and are skipped elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from engine_fixtures import engine_home  # noqa: F401

from streamface.engine import BackendError, ModelCache, ModelError, create_engine, load_detector
from streamface.engine import load_recognizer
from streamface.engine.backends import resolve
from streamface.engine.backends.availability import (
    AUTO_ORDER,
    Candidate,
    auto_placement,
    auto_report,
    pick,
)
from streamface.engine.backends.base import Placement, ort_cuda_available
from streamface.engine.backends.plan_cache import MAGIC, PlanCache, PlanKey, encode_plan
from streamface.engine.backends.tensorrt import (
    INSTALL_HINT,
    ParseProblem,
    choose_precision,
    describe_node,
    model_io,
    parse_failure_message,
    tensorrt_major,
    tensorrt_status,
)
from streamface.engine.backends.tensorrt_profile import (
    Profile,
    ProfileRequest,
    ShapeRange,
    choose_profile,
    detector_request,
)
from streamface.engine.model_zoo import tensorrt_request
from streamface.engine.models.frame_batch import FrameBatch
from streamface.engine.weights.registry import REGISTRY
from streamface.engine.models.sface import SFace
from streamface.engine.models.yunet import YuNet

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_no_tensorrt = pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")

SHA = hashlib.sha256(b"model").hexdigest()


def key(**changes) -> PlanKey:
    fields = dict(model_sha256=SHA, gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
                  tensorrt_version="10.16.1", profile="input=1x3x32x32..8x3x384x640..8x3x640x640",
                  precision="fp16")
    return PlanKey(**{**fields, **changes})


# -- plan keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("model_sha256", hashlib.sha256(b"other model").hexdigest()),
    ("gpu_name", "NVIDIA A100-SXM4-80GB"),
    ("compute_capability", (8, 0)),
    ("tensorrt_version", "10.16.0"),
    ("profile", "input=1x3x32x32..16x3x384x640..16x3x640x640"),
    ("precision", "fp32"),
])
def test_every_field_of_the_key_gives_another_plan(field, value, tmp_path):
    cache = PlanCache(tmp_path)
    assert key().digest == key().digest
    assert key(**{field: value}).digest != key().digest
    assert cache.path(key(**{field: value}), "yunet") != cache.path(key(), "yunet")


def test_plan_file_names_carry_the_model_and_the_digest(tmp_path):
    path = PlanCache(tmp_path).path(key(), "/home/u/.cache/streamface/models/yunet.onnx")
    assert path.parent == tmp_path
    assert path.name == f"yunet-{key().digest[:20]}.plan"


@pytest.mark.parametrize("changes, message", [
    ({"model_sha256": "abc"}, "64 hex digits"), ({"precision": "int8"}, "'fp16' or 'fp32'")])
def test_bad_keys_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        key(**changes)


# -- the plan cache --------------------------------------------------------------------------

def test_a_stored_plan_reads_back(tmp_path):
    cache = PlanCache(tmp_path / "plans")
    path = cache.write(key(), b"serialised engine", "yunet")
    assert path.is_file() and path.read_bytes().startswith(MAGIC)
    assert cache.read(key(), "yunet") == b"serialised engine"
    assert cache.read(key(precision="fp32"), "yunet") is None  # another key: another file


def damage_flip(data: bytes) -> bytes:
    return data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:]


@pytest.mark.parametrize("damage, reason", [
    (damage_flip, "SHA-256"),
    (lambda d: d[:-5], "truncated plan"),
    (lambda d: d[:len(MAGIC) + 2], "truncated header"),
    (lambda d: b"\x00" * len(d), "bad magic"),
    (lambda d: b"", "bad magic"),
    (lambda d: encode_plan(key(tensorrt_version="10.0.1"), b"serialised engine"),
     "another key (tensorrt_version differ)"),
])
def test_a_damaged_or_foreign_plan_is_never_trusted(damage, reason, tmp_path, caplog):
    cache = PlanCache(tmp_path)
    path = cache.write(key(), b"serialised engine", "yunet")
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="streamface.engine"):
        assert cache.read(key(), "yunet") is None
    assert reason in caplog.text and "rebuilding" in caplog.text


class Builds:
    """Counts builds; each returns the plan it is given."""

    def __init__(self, plan: bytes = b"plan v1"):
        self.plan, self.count = plan, 0

    def __call__(self) -> bytes:
        self.count += 1
        return self.plan


def test_get_or_build_builds_once_then_reads_the_cache(tmp_path):
    cache, build = PlanCache(tmp_path), Builds()
    assert cache.get_or_build(key(), build, bytes.upper, "sface") == (b"PLAN V1", "built")
    assert cache.get_or_build(key(), build, bytes.upper, "sface") == (b"PLAN V1", "cache")
    assert build.count == 1


def test_a_corrupt_plan_is_rebuilt_and_replaced(tmp_path):
    cache, build = PlanCache(tmp_path), Builds()
    path = cache.write(key(), b"plan v1", "sface")
    path.write_bytes(damage_flip(path.read_bytes()))
    assert cache.get_or_build(key(), build, bytes, "sface") == (b"plan v1", "built")
    assert build.count == 1 and cache.read(key(), "sface") == b"plan v1"


def test_a_plan_the_runtime_refuses_is_stale_and_rebuilt(tmp_path, caplog):
    """A plan can pass its checksum and still be refused by TensorRT (``load`` -> None)."""
    cache = PlanCache(tmp_path)
    cache.write(key(), b"plan from an older build", "sface")
    build = Builds(b"plan v2")

    def load(plan: bytes):
        return plan if plan == b"plan v2" else None

    with caplog.at_level(logging.WARNING, logger="streamface.engine"):
        assert cache.get_or_build(key(), build, load, "sface") == (b"plan v2", "built")
    assert "stale" in caplog.text and build.count == 1
    assert cache.read(key(), "sface") == b"plan v2"


def test_a_fresh_plan_the_runtime_refuses_is_an_error(tmp_path):
    with pytest.raises(BackendError, match="refused the plan it has just built") as err:
        PlanCache(tmp_path).get_or_build(key(), Builds(), lambda plan: None, "sface")
    assert "\n" not in str(err.value)


def _contend(directory: str, log: str, ready, results) -> None:
    """One builder process: wait for the others, then ask for the same plan."""
    def build() -> bytes:
        with open(log, "a") as handle:
            handle.write("built\n")
        time.sleep(0.5)  # long enough for every other process to be waiting
        return b"the one plan"

    ready.wait()
    plan, source = PlanCache(directory).get_or_build(key(), build, bytes, "yunet")
    results.put((plan, source))


def test_concurrent_builders_in_processes_build_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    ready, results = context.Event(), context.Queue()
    log = tmp_path / "builds.log"
    workers = [context.Process(target=_contend, args=(str(tmp_path / "plans"), str(log), ready,
                                                      results)) for _ in range(4)]
    for w in workers:
        w.start()
    ready.set()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert log.read_text() == "built\n"
    assert sorted(outcomes) == [(b"the one plan", "built")] + [(b"the one plan", "cache")] * 3
    assert not list((tmp_path / "plans").glob("*.tmp"))  # atomic writes leave no temporaries


def test_concurrent_builders_in_threads_build_once(tmp_path):
    build, outcomes = Builds(), []

    def slow() -> bytes:
        time.sleep(0.3)
        return build()

    threads = [threading.Thread(target=lambda: outcomes.append(
        PlanCache(tmp_path).get_or_build(key(), slow, bytes, "yunet"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.count == 1 and sorted(s for _, s in outcomes) == ["built", "cache", "cache"]


def test_a_builder_waits_then_gives_up_naming_the_holder(tmp_path):
    holder = PlanCache(tmp_path)
    with holder.lock(key(), "yunet"):
        with pytest.raises(BackendError, match=r"another builder \(pid \d+\) has held") as err:
            PlanCache(tmp_path, lock_timeout=0.3).get_or_build(key(), Builds(), bytes, "yunet")
    assert "\n" not in str(err.value)
    # Released: the next builder goes through.
    assert PlanCache(tmp_path).get_or_build(key(), Builds(), bytes, "yunet")[1] == "built"


def test_entries_list_plans_and_unreadable_files(tmp_path):
    cache = PlanCache(tmp_path)
    cache.write(key(), b"x" * 100, "yunet")
    (tmp_path / "junk-0.plan").write_bytes(b"not a plan")
    entries = {e.path.name: e for e in cache.entries()}
    assert entries["junk-0.plan"].header is None
    good = entries[cache.path(key(), "yunet").name]
    assert good.header["gpu_name"] == "NVIDIA H100 80GB HBM3" and good.header["size"] == 100
    assert good.header["compute_capability"] == [9, 0] and good.header["precision"] == "fp16"


# -- the profile -----------------------------------------------------------------------------

def test_detector_profile_covers_the_pipeline_shapes(engine_home):
    yunet = model_io(ModelCache(engine_home).load("yunet").data)
    assert yunet.inputs == {"input": ("batch", 3, "height", "width")}
    profile = choose_profile(yunet.inputs, detector_request(), "yunet")
    (name, shapes), = profile.inputs
    assert name == "input" and profile.max_batch == 8
    assert shapes == ShapeRange((1, 3, 32, 32), (8, 3, 384, 640), (8, 3, 640, 640))
    # A 1080p frame letterboxed as the detector does it fits the profile; so do portrait,
    # square and extreme frames, and a short last batch.
    letterbox = FrameBatch(REGISTRY["yunet"].preprocessing, 640)
    for size in ((1080, 1920), (1920, 1080), (720, 720), (240, 4000)):
        height, width = letterbox.network_size([size])
        profile.check({"input": (1, 3, height, width)}, "yunet")
    assert letterbox.network_size([(1080, 1920)]) == (384, 640)  # the opt shape


def test_recognizer_profile_keeps_fixed_dimensions(engine_home):
    sface = model_io(ModelCache(engine_home).load("sface").data)
    profile = choose_profile(sface.inputs, ProfileRequest(max_batch=32), "sface")
    assert profile.inputs == (("data", ShapeRange((1, 3, 112, 112), (32, 3, 112, 112),
                                                  (32, 3, 112, 112))),)
    assert profile.key() == "data=1x3x112x112..32x3x112x112..32x3x112x112"


@pytest.mark.parametrize("role, wrapper, name, options, expected", [
    ("detector", YuNet, "yunet", {}, detector_request(640, 8)),
    ("detector", YuNet, "yunet", {"input_size": 320, "max_batch": 4}, detector_request(320, 4)),
    ("recognizer", SFace, "sface", {}, ProfileRequest(max_batch=32)),
    ("recognizer", SFace, "sface", {"max_batch": 64}, ProfileRequest(max_batch=64)),
    ("detector", None, None, {}, detector_request(640, 8)),  # a file given by path=
])
def test_the_profile_follows_the_wrappers_options(role, wrapper, name, options, expected):
    spec = REGISTRY[name] if name else None
    assert tensorrt_request(role, wrapper, spec, options) == expected


def test_detector_request_rounds_the_short_side_up():
    assert detector_request(320).opt_size == (192, 320)  # 180 -> 192
    assert detector_request(640).opt_size == (384, 640)  # 360 -> 384
    with pytest.raises(ValueError, match="multiple of 32"):
        detector_request(100)


def test_a_batch_beyond_the_profile_is_one_clear_line():
    profile = Profile((("data", ShapeRange((1, 3, 112, 112), (32, 3, 112, 112),
                                           (32, 3, 112, 112))),))
    profile.check({"data": (32, 3, 112, 112)})
    with pytest.raises(BackendError, match="sface: batch 33 is larger than the TensorRT "
                                           "profile's maximum 32") as err:
        profile.check({"data": (33, 3, 112, 112)}, "sface")
    assert "max_batch=33" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BackendError, match="outside the TensorRT profile"):
        profile.check({"data": (4, 3, 96, 96)}, "sface")


def test_a_symbolic_size_without_a_requested_size_is_an_error():
    with pytest.raises(BackendError, match="symbolic dimension 2 .'height'. .*max_size"):
        choose_profile({"input": ("batch", 3, "height", "width")}, ProfileRequest())


@pytest.mark.parametrize("kwargs, message", [
    ({"max_batch": 0}, "max_batch"), ({"max_batch": 4, "opt_batch": 5}, "opt_batch"),
    ({"max_size": (640,)}, "max_size"), ({"min_size": (0, 32)}, "min_size")])
def test_profile_requests_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProfileRequest(**kwargs)


# -- precision, versions, parser errors -------------------------------------------------------

@pytest.mark.parametrize("fp16, has_flag, capability, expected", [
    (True, True, (9, 0), "fp16"), (True, True, (7, 5), "fp16"), (False, True, (9, 0), "fp32"),
    (True, False, (9, 0), "fp32"),  # TensorRT 11: strongly typed, no FP16 flag
    (True, True, (6, 1), "fp32"), (True, True, (5, 2), "fp32")])
def test_fp16_only_where_tensorrt_and_the_gpu_have_it(fp16, has_flag, capability, expected):
    assert choose_precision(fp16, has_flag, capability) == expected


@pytest.mark.parametrize("version, major", [("10.16.1", 10), ("11.1.0.106", 11), ("8.6.1", 8),
                                            ("", 0)])
def test_tensorrt_major(version, major):
    assert tensorrt_major(version) == major


def test_a_parse_failure_names_the_node(engine_home):
    data = ModelCache(engine_home).load("yunet").data
    assert describe_node(data, 0) == ("Conv_0", "Conv")
    assert describe_node(data, 10 ** 6) == ("?", "?")
    message = parse_failure_message("yunet.onnx", [
        ParseProblem("Assertion failed: unsupported attribute\nmore text", 0, "Conv_0", "Conv"),
        ParseProblem("second", 3, "Relu_3", "Relu")])
    assert message == ("yunet.onnx: TensorRT cannot parse node 0 'Conv_0' (Conv): Assertion "
                       "failed: unsupported attribute (+1 more errors); use backend='ort' or "
                       "'torch' for this model")
    assert "the graph" in parse_failure_message("m", [ParseProblem("bad opset", -1)])


def test_model_io_refuses_what_is_not_onnx():
    with pytest.raises(ModelError, match="garbage.onnx: not an ONNX model") as err:
        model_io(b"\x08\x07\x12\x03abc garbage", "garbage.onnx")
    assert "\n" not in str(err.value)


# -- choice and refusals without TensorRT -----------------------------------------------------

@needs_no_tensorrt
def test_missing_tensorrt_says_how_to_install_it(engine_home):
    for call in (lambda: load_recognizer(backend="tensorrt", device="cuda:0", home=engine_home),
                 lambda: create_engine(b"", backend="tensorrt", device="cuda"),
                 lambda: resolve("auto", "tensorrt")):
        with pytest.raises(BackendError, match="needs the tensorrt Python package") as err:
            call()
        assert INSTALL_HINT in str(err.value) and "\n" not in str(err.value)
    assert tensorrt_status(None) == (False, "not installed")


@pytest.mark.skipif(not HAS_TENSORRT or not HAS_TORCH, reason="needs tensorrt and torch installed "
                    "(the no-GPU message comes after both imports)")
def test_tensorrt_without_a_gpu_says_so():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(BackendError, match="needs a CUDA GPU, and torch .* sees none"):
        resolve("cuda:0", "tensorrt")


def test_tensorrt_refuses_the_cpu():
    with pytest.raises(BackendError, match="runs on CUDA only"):
        resolve("cpu", "tensorrt")


def test_mtcnn_is_not_offered_to_tensorrt(engine_home):
    with pytest.raises(BackendError, match="mtcnn: backend 'tensorrt' does not run cascades"):
        load_detector("mtcnn", backend="tensorrt", device="cuda:0", home=engine_home)


def c(backend: str, usable: bool) -> Candidate:
    return Candidate(backend, usable, "why")


@pytest.mark.parametrize("candidates, expected", [
    ([c("tensorrt", True), c("ort", True), c("torch", True)], Placement("tensorrt", "cuda:0")),
    ([c("tensorrt", False), c("ort", True), c("torch", True)], Placement("ort", "cuda:0")),
    ([c("tensorrt", False), c("ort", False), c("torch", True)], Placement("torch", "cuda:0")),
    ([c("tensorrt", False), c("ort", False), c("torch", False)], Placement("ort", "cpu")),
])
def test_auto_takes_the_first_usable_cuda_backend(candidates, expected):
    assert AUTO_ORDER == ("tensorrt", "ort", "torch")
    assert pick(candidates, None) == expected


def test_auto_stops_at_the_first_usable_backend():
    seen = []

    def lazily():
        for candidate in (c("tensorrt", True), c("ort", True)):
            seen.append(candidate.backend)
            yield candidate

    assert pick(lazily(), "cuda:1") == Placement("tensorrt", "cuda:1") and seen == ["tensorrt"]


def test_an_explicit_cuda_device_no_backend_serves_is_an_error():
    with pytest.raises(BackendError, match=r"'cuda:0' requested but no backend here runs on CUDA "
                                           r"\(tensorrt: a; ort: b; torch: c\)"):
        pick([Candidate("tensorrt", False, "a"), Candidate("ort", False, "b"),
              Candidate("torch", False, "c")], "cuda:0")


@pytest.mark.skipif(HAS_TENSORRT or ort_cuda_available() or HAS_TORCH,
                    reason="a CUDA backend is installed here")
def test_auto_on_this_cpu_machine_reports_why_each_cuda_backend_is_not_used(engine_home,
                                                                            monkeypatch):
    assert auto_placement(None) == Placement("ort", "cpu")
    report = auto_report()
    assert report.startswith("backend auto here: ort on cpu")
    assert "tensorrt: not installed" in report and "torch: not installed" in report
    monkeypatch.setenv("STREAMFACE_HOME", str(engine_home))
    assert load_detector(home=engine_home).engine.backend == "ort"


def test_models_list_shows_the_auto_backend_and_the_plans(tmp_path):
    from streamface.cli import main as cli

    home = tmp_path / "home"
    plan = PlanCache(ModelCache(home).plans_dir).write(key(), b"x" * 2000, "yunet")
    result = CliRunner().invoke(cli, ["models", "--home", str(home), "list"])
    assert result.exit_code == 0, result.output
    assert "backend auto here: " in result.output
    assert f"TensorRT plans ({home / 'plans'}): 1" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith(plan.name))
    assert "NVIDIA H100 80GB HBM3 (sm 9.0)" in row and "10.16.1" in row and "fp16" in row
    assert "8x3x640x640" in row


# -- on a GPU with TensorRT ------------------------------------------------------------------

def _gpu_ready() -> str | None:
    """Why the TensorRT GPU tests cannot run here, or None."""
    usable, detail = tensorrt_status(None)
    return None if usable else f"TensorRT on CUDA is not usable here ({detail})"


needs_tensorrt_gpu = pytest.mark.skipif(_gpu_ready() is not None, reason=str(_gpu_ready()))

#: Stated tolerances against ONNX Runtime on the CPU, on the real 1080p frames.
FP32 = {"iou": 0.99, "landmarks_px": 1.0, "score": 0.01, "cosine": 0.9999}
FP16 = {"iou": 0.95, "landmarks_px": 3.0, "score": 0.03, "cosine": 0.999}
THRESHOLD = YuNet.DEFAULT_CONF_THRESHOLD


@pytest.fixture(scope="module")
def frames(skynews_frames):
    return [frame for _, frame in skynews_frames]


def assert_detections_match(reference, candidate, tolerance: dict, margin: float = 0.05):
    """Every face scoring ``margin`` above the threshold in either list has a partner whose
    box IoU, landmarks (frame pixels) and score are within ``tolerance``."""
    from streamface.engine.detections import box_iou

    count = 0
    for i, (a, b) in enumerate(zip(reference, candidate)):
        for mine, other in ((a, b), (b, a)):
            sure = np.flatnonzero(mine.scores >= THRESHOLD + margin)
            if not len(sure):
                continue
            assert len(other.scores), f"frame {i}: faces lost"
            iou = box_iou(mine.boxes[sure], other.boxes)
            partner = iou.argmax(axis=1)
            assert iou.max(axis=1).min() >= tolerance["iou"], f"frame {i}: IoU {iou.max(1).min()}"
            gap = np.abs(mine.landmarks[sure] - other.landmarks[partner]).max()
            assert gap <= tolerance["landmarks_px"], f"frame {i}: landmarks off by {gap:.2f} px"
            drift = np.abs(mine.scores[sure] - other.scores[partner]).max()
            assert drift <= tolerance["score"], f"frame {i}: scores off by {drift:.4f}"
            count += len(sure)
    assert count > 0


@pytest.mark.gpu
@needs_tensorrt_gpu
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_yunet_and_sface_on_tensorrt_match_onnx_runtime(fp16, engine_home, frames, tmp_path):
    tolerance = FP16 if fp16 else FP32
    options = {"fp16": fp16, "plan_dir": tmp_path / "plans"}
    detector = load_detector("yunet", device="cuda:0", backend="tensorrt", home=engine_home,
                             engine_options=options)
    assert detector.engine.backend == "tensorrt"
    assert detector.engine.precision in (("fp16", "fp32") if fp16 else ("fp32",))
    reference = load_detector("yunet", device="cpu", backend="ort", home=engine_home)
    expected = reference.detect(frames)
    assert_detections_match(expected, detector.detect(frames), tolerance)
    recognizer = load_recognizer("sface", device="cuda:0", backend="tensorrt", home=engine_home,
                                 engine_options=options)
    cpu = load_recognizer("sface", device="cpu", backend="ort", home=engine_home)
    faces = [(f, d.landmarks) for f, d in zip(frames, expected) if len(d.scores)]
    assert faces
    for frame, landmarks in faces:
        cosine = (recognizer.embed(frame, landmarks) * cpu.embed(frame, landmarks)).sum(axis=1)
        assert cosine.min() >= tolerance["cosine"], cosine.min()


def _sface(engine_home) -> bytes:
    return ModelCache(engine_home).load("sface").data


@pytest.mark.gpu
@needs_tensorrt_gpu
def test_plans_are_built_once_cached_and_reloaded(engine_home, tmp_path):
    from streamface.engine.backends.tensorrt import TensorRTEngine

    data = _sface(engine_home)
    first = TensorRTEngine(data, max_batch=8, plan_dir=tmp_path, name="sface")
    assert first.plan_source == "built" and first.plan_path.is_file()
    again = TensorRTEngine(data, max_batch=8, plan_dir=tmp_path, name="sface")
    assert again.plan_source == "cache" and again.plan_path == first.plan_path
    x = np.random.default_rng(0).uniform(0, 255, (5, 3, 112, 112)).astype(np.float32)
    np.testing.assert_array_equal(first.run({"data": x})[0], again.run({"data": x})[0])
    other = TensorRTEngine(data, max_batch=16, plan_dir=tmp_path, name="sface")
    assert other.plan_source == "built" and other.plan_path != first.plan_path
    # A damaged plan is rebuilt, never trusted.
    first.plan_path.write_bytes(damage_flip(first.plan_path.read_bytes()))
    assert TensorRTEngine(data, max_batch=8, plan_dir=tmp_path, name="sface").plan_source == "built"


@pytest.mark.gpu
@needs_tensorrt_gpu
def test_a_batch_beyond_the_built_profile_is_refused_on_the_gpu(engine_home, tmp_path):
    from streamface.engine.backends.tensorrt import TensorRTEngine

    engine = TensorRTEngine(_sface(engine_home), max_batch=4, plan_dir=tmp_path, name="sface")
    assert engine.max_batch == 4
    with pytest.raises(BackendError, match="batch 5 is larger than the TensorRT profile's "
                                           "maximum 4"):
        engine.run({"data": np.zeros((5, 3, 112, 112), np.float32)})


@pytest.mark.gpu
@needs_tensorrt_gpu
def test_run_device_equals_run(engine_home, tmp_path):
    import torch

    from streamface.engine.backends.tensorrt import TensorRTEngine

    engine = TensorRTEngine(_sface(engine_home), max_batch=8, plan_dir=tmp_path, name="sface")
    x = np.random.default_rng(0).uniform(0, 255, (7, 3, 112, 112)).astype(np.float32)
    (host,) = engine.run({"data": x})
    (dev,) = engine.run_device({"data": torch.from_numpy(x).cuda()})
    np.testing.assert_allclose(dev.cpu().numpy(), host, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@needs_tensorrt_gpu
def test_auto_picks_tensorrt_and_models_list_shows_the_plan(engine_home):
    from streamface.cli import main as cli

    assert resolve("auto", "auto") == Placement("tensorrt", "cuda:0")
    detector = load_detector("yunet", home=engine_home)
    assert detector.engine.backend == "tensorrt"
    result = CliRunner().invoke(cli, ["models", "--home", str(engine_home), "list"])
    assert result.exit_code == 0, result.output
    assert "backend auto here: tensorrt on cuda:0" in result.output
    assert Path(detector.engine.plan_path).name in result.output

