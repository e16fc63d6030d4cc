"""Stage 3, face analysis (docs/stages.md §3): embeddings and attributes of stored faces.

>>> from streamface.ingest.analysis import FaceAnalysis
>>> FaceAnalysis(input_dir="data/skynews", output_dir="data/skynews").call()  # doctest: +SKIP

Embeddings come from the aligned crops in the store (SFace by default; crops of
another size than the recognizer's are resized, the ArcFace template scaling with
them). Attribute heads (age, gender, expression, mask, WHENet, FairFace) run on the
stored frame images where their models are installed; a requested head that is not
installed is skipped with one warning in the summary. The head pose is the geometric
one from the landmarks unless ``pose="whenet"`` and WHENet is installed. Everything
is written into the store, in batches of ``batch_size`` faces, each committed, so
``resume`` continues after the last analysed face.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from streamface.checks import check_int
from streamface.engine import POSE_NAMES, ModelError, head_pose, load_attribute_head, load_recognizer
from streamface.ingest.extraction import decode_image
from streamface.store import FaceStore, StoreError
from streamface.store.names import store_path

__all__ = ["AnalysisSummary", "FaceAnalysis", "FaceAnalyzer"]

log = logging.getLogger(__name__)

#: The seed's representation names -> our recognizer names (None: the default, SFace).
#: ``arcfacenet`` (ArcFace + FaceNet) becomes SFace + ArcFace, concatenated the same way.
REPRESENTATIONS = {None: None, "sface": "sface", "arcface": "arcface", "arcfacenet": "sface+arcface"}
#: The seed's attribute model names -> our heads.
DEMOGRAPHICS = {None: [], "fairface": ["fairface"], "agegender": ["age", "gender"],
                "age": ["age"], "gender": ["gender"]}
EXPRESSIONS = {None: [], "dfemotion": ["expression"], "expression": ["expression"]}
MASKS = {None: [], "chandrikanet": ["mask"], "mask": ["mask"]}
POSES = {None: [], "geometric": [], "whenet": ["whenet"]}


@dataclass
class AnalysisSummary:
    """What an analysis did."""

    store: str
    faces: int = 0
    embedding_model: str | None = None
    attributes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        text = (f"{self.faces} faces analysed ({self.embedding_model} embeddings; attributes: "
                f"{', '.join(self.attributes) or 'none'}), {self.seconds:.1f} s")
        return text + "".join(f"; warning: {w}" for w in self.warnings)


def _recognizer_name(recognizer) -> str:
    spec = getattr(recognizer, "spec", None)
    if spec is not None:
        return spec.name
    members = getattr(recognizer, "recognizers", None)
    if members:
        return "+".join(_recognizer_name(r) for r in members)
    return type(recognizer).__name__.lower()


class FaceAnalyzer:
    """The per-batch work of analysis, shared by the stage and the fused pipeline."""

    def __init__(self, recognizer, heads: list, summary: AnalysisSummary):
        self.recognizer = recognizer
        self.heads = heads
        self.summary = summary
        self.model = _recognizer_name(recognizer)
        summary.embedding_model = self.model
        summary.attributes = [h.name for h in heads] + (
            [] if any(h.name == "whenet" for h in heads) else ["pose"])

    def analyze(self, writer, start: int, stop: int, frames: dict[int, np.ndarray] | None = None) -> None:
        """Embed and describe faces ``[start, stop)`` of ``writer`` and commit them.

        ``frames`` maps frame rows to RGB images already in memory (the fused pipeline);
        others are decoded from the store.
        """
        if stop <= start:
            return
        self.write(writer, start, *self.compute(writer, start, stop, frames))

    def compute(self, stream, start: int, stop: int, frames: dict[int, np.ndarray] | None = None
                ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, list]]]:
        """Embeddings and attributes of faces ``[start, stop)`` of ``stream`` (a reader or a
        writer), nothing written: see :meth:`embed` and :meth:`describe`."""
        faces = stream.read_faces(start, stop, columns=("frame", "landmarks", "aligned"))
        images = dict(frames or {})
        if self.heads:
            for index in np.unique(faces.frame).tolist():
                if index not in images:
                    blob = stream.read_frame_images(index, index + 1)[0]
                    images[index] = decode_image(blob) if blob else None
        return self.embed(faces.aligned), self.describe(faces.landmarks, faces.frame, images)

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        """Embeddings ``(n, D)`` float32 of aligned crops ``(n, S, S, 3)`` uint8."""
        return self._embed(aligned) if len(aligned) else np.zeros((0, 1), np.float32)

    def describe(self, landmarks: np.ndarray, frame: np.ndarray,
                 images: dict[int, np.ndarray | None]) -> dict[str, tuple[np.ndarray, list]]:
        """Attributes of ``n`` faces: ``{name: (values (n, classes) float32, classes)}``.

        ``landmarks`` is ``(n, 5, 2)``, ``frame`` ``(n,)`` keys into ``images`` (RGB
        frames; the heads need them, the geometric pose does not).
        """
        out = {}
        if not any(h.name == "whenet" for h in self.heads):
            out["pose"] = (np.round(head_pose(landmarks), 2), POSE_NAMES)
        for head in self.heads:
            rows = np.zeros((len(landmarks), len(head.classes)), np.float32)
            for index in np.unique(frame).tolist():
                image = images.get(index)
                mine = frame == index
                if image is not None and mine.any():
                    rows[mine] = head.predict(image, landmarks[mine])
            out[head.name] = (np.round(rows, 2), head.classes)
        return out

    def write(self, writer, start: int, embeddings: np.ndarray,
              attributes: dict[str, tuple[np.ndarray, list]]) -> None:
        """Commit what :meth:`embed` and :meth:`describe` made for faces ``[start, start + n)``."""
        if not len(embeddings):
            return
        writer.write_embeddings(start, embeddings, model=self.model)
        for name, (values, classes) in attributes.items():
            writer.write_attribute(name, start, values, classes=classes)
        self.summary.faces += len(embeddings)

    def _embed(self, aligned: np.ndarray) -> np.ndarray:
        size = self.recognizer.size
        if aligned.shape[1] != size:
            aligned = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR))
                                for a in aligned])
        return self.recognizer.embed_aligned(aligned)


class FaceAnalysis:
    """Embeddings and attributes of the faces in ``<input_dir>/streamface.zarr``.

    Parameters
    ----------
    input_dir : path
        Holds the store written by extraction.
    output_dir : path
        Kept for the seed's signature; results go into the store (export them with
        ``streamface export``).
    representation : {None, "sface", "arcface", "arcfacenet"}, default None
        None is SFace; ``arcface``/``arcfacenet`` need an ArcFace model supplied with
        ``streamface models prepare arcface --model-path FILE``.
    demographics : {None, "fairface", "agegender", "age", "gender"}
    expression : {None, "dfemotion"}
    mask : {None, "chandrikanet"}
    pose : {None, "geometric", "whenet"}
        None/geometric: from the landmarks.
    batch_size : int, default 128
        Faces per batch and commit.
    resume : bool, default True
        Continue after the last analysed face; False analyses every face again.
    log_interval : int, default 100
    name : str or None
        Only this stream (default: all).
    store : path or None
        Use this store instead of ``<input_dir>/streamface.zarr``.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default "auto"
    backend : {"auto", "ort", "tensorrt", "torch"}, default "auto"
        Where and with what the models run (see ``streamface.engine.backends``).
    executor : streamface.ops.ray_pool.RayPool, optional
        Compute the batches on remote workers (Ray actors reading the store, so it
        must be a path or URL they reach); this process commits them in order.
        The results are those of a local run.
    """

    def __init__(self, input_dir, output_dir, representation=None, demographics=None,
                 expression=None, mask=None, pose=None, batch_size=128, resume=True,
                 log_interval=100, *, name=None, device="auto", backend="auto", store=None, executor=None):
        self.input_dir = input_dir
        self.output_dir = output_dir
        self.representation = representation
        self.demographics = demographics
        self.expression = expression
        self.mask = mask
        self.pose = pose
        self.batch_size = batch_size
        self.resume = resume
        self.log_interval = log_interval
        self.name = name
        self.device = device
        self.backend = backend
        self.store = store
        self.executor = executor

    def _head_names(self) -> list[str]:
        names = []
        for key, table in (("demographics", DEMOGRAPHICS), ("expression", EXPRESSIONS),
                           ("mask", MASKS), ("pose", POSES)):
            value = getattr(self, key)
            if value not in table:
                raise ValueError(f"{key} must be one of {[k for k in table if k]} or None, got {value!r}")
            names += table[value]
        return names

    def make_analyzer(self) -> FaceAnalyzer:
        """Load the recognizer and the installed heads."""
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {[k for k in REPRESENTATIONS if k]} "
                             f"or None, got {self.representation!r}")
        check_int("batch_size", self.batch_size)
        names = self._head_names()
        try:
            recognizer = load_recognizer(REPRESENTATIONS[self.representation], device=self.device,
                                         backend=self.backend)
        except ModelError as exc:
            if self.representation in ("arcface", "arcfacenet"):
                raise ModelError(f"representation {self.representation!r} needs an ArcFace model: "
                                 f"supply one with `streamface models prepare arcface --model-path "
                                 f"FILE` ({exc})") from None
            raise
        summary = AnalysisSummary(store="")
        heads = []
        for name in names:
            try:
                heads.append(load_attribute_head(name, device=self.device, backend=self.backend))
            except ModelError as exc:
                summary.warnings.append(f"{name} skipped, model not installed ({exc})")
        return FaceAnalyzer(recognizer, heads, summary)

    def call(self) -> AnalysisSummary:
        """Analyse every face not analysed yet; return the summary."""
        started = time.monotonic()
        analyzer = self.make_analyzer()
        if self.store is not None:
            store = FaceStore.open(self.store, mode="r+")
        else:
            source = store_path(self.input_dir)
            if not source.exists():
                raise StoreError(f"{self.input_dir}: no store ({source.name}); run extraction first")
            store = FaceStore.open(source, mode="r+")
        for name in ([self.name] if self.name else store.streams):
            with store.writer(name, flush_rows=0) as writer:
                start = first_unanalysed(writer, analyzer) if self.resume else 0
                ranges = [(lo, min(writer.num_faces, lo + self.batch_size))
                          for lo in range(start, writer.num_faces, self.batch_size)]
                if self.executor is None:
                    results = (analyzer.compute(writer, lo, hi) for lo, hi in ranges)
                else:
                    # Batches computed by workers that read the store themselves; committed
                    # here, in order, by the stream's one writer.
                    worker = copy.copy(self)
                    worker.executor = None
                    results = self.executor.map_actors(
                        _AnalysisWorker, (worker,), "compute",
                        [(str(store.location), name, lo, hi) for lo, hi in ranges])
                for (lo, hi), (embeddings, attributes) in zip(ranges, results):
                    analyzer.write(writer, lo, embeddings, attributes)
                    if self.log_interval and hi // self.log_interval > lo // self.log_interval:
                        log.info("%s: %d/%d faces analysed", name, hi, writer.num_faces)
        summary = analyzer.summary
        summary.store = str(store.location)
        summary.seconds = time.monotonic() - started
        return summary


class _AnalysisWorker:
    """A remote worker (Ray actor) of :meth:`FaceAnalysis.call`: models loaded once,
    batches of faces read from the store and computed, nothing written."""

    def __init__(self, analysis: FaceAnalysis) -> None:
        self.analyzer = analysis.make_analyzer()
        self.stores: dict[str, FaceStore] = {}

    def compute(self, job: tuple[str, str, int, int]):
        location, name, start, stop = job
        if location not in self.stores:
            self.stores[location] = FaceStore.open(location, mode="r")
        return self.analyzer.compute(self.stores[location].stream(name), start, stop)


def first_unanalysed(writer, analyzer: FaceAnalyzer) -> int:
    """The first face row missing its embedding or one of the analyser's attributes."""
    if writer.embedding_model not in (None, analyzer.model):
        return 0
    start = writer.num_embedded
    for name in analyzer.summary.attributes:
        start = min(start, writer.num_attribute_rows(name) if name in writer.attribute_names else 0)
    return start
