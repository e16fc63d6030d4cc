"""What every letterboxed, batched face detector shares.

A detector letterboxes frames of any size into one reused NCHW batch
(:class:`~streamface.engine.models.frame_batch.FrameBatch`), runs it, and per frame
decodes candidate faces in network pixels, keeps the ``top_k`` best for non-maximum
suppression and maps the survivors back to the frame's pixels. Each model's file
(:mod:`.yunet`, :mod:`.retinaface`, :mod:`.centerface`, :mod:`.scrfd`) subclasses
:class:`LetterboxDetector` with its own facts: default thresholds, registry entry
(channel order, mean, scale), anchors and the decoding of its outputs.

Everything after the letterbox is :meth:`LetterboxDetector.detect_tensor`; models
threshold the whole batch's outputs at once (``_decode_batch``), so the Python-level
work per frame is the few candidates above the threshold and their NMS.
"""

from __future__ import annotations

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.detections import Detections, nms
from streamface.engine.models.frame_batch import (
    FrameBatch,
    check_frames,
    default_detector_batch,
)
from streamface.engine.weights.registry import REGISTRY, ModelSpec
from streamface.engine.models.validation import batch_size, check_param

#: What :meth:`LetterboxDetector._decode` gives for one frame: boxes ``x, y, w, h``
#: (A, 4), landmarks (A, 5, 2) and scores (A,) in network pixels, for the candidates
#: above the score threshold; ``None`` when there are none.
Candidates = tuple[np.ndarray, np.ndarray, np.ndarray] | None


class LetterboxDetector:
    """Batched detector on letterboxed frames; subclasses decode their model's outputs.

    A subclass defines ``prepare`` (its options and defaults, passed to
    :meth:`_configure`), :meth:`_decode` and, when it has anchors, :meth:`_make_anchors`.

    An instance reuses its input buffers from call to call: use one per thread.

    Parameters
    ----------
    engine : InferenceEngine
        Runs the prepared graph (symbolic batch, height and width).
    spec : ModelSpec, default the registry's entry named :attr:`default_spec`
    """

    #: Registry name of the model's entry, used when no ``spec`` is given.
    default_spec = ""
    #: (height, width) of a model exported with a fixed input size, else ``None``.
    fixed_size: tuple[int, int] | None = None

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        self.engine = engine
        self.spec = spec if spec is not None else REGISTRY[self.default_spec]
        self.prepare()

    def _configure(self, input_size: int, conf_threshold: float, nms_threshold: float,
                   top_k: int, max_batch: int | None,
                   preprocess_threads: int | None) -> LetterboxDetector:
        """Validate and set the options of each model's ``prepare`` (see :meth:`YuNet.prepare`)."""
        check_param("input_size", input_size, int, low=32, multiple=32)
        check_param("conf_threshold", conf_threshold, float, low=0.0, high=1.0)
        check_param("nms_threshold", nms_threshold, float, low=0.0, high=1.0)
        check_param("top_k", top_k, int, low=1)
        if max_batch is None:
            max_batch = default_detector_batch(self.engine)
        max_batch = batch_size(max_batch, self.engine)
        if preprocess_threads is not None:
            check_param("preprocess_threads", preprocess_threads, int, low=1)
        self.input_size, self.top_k, self.max_batch = input_size, top_k, max_batch
        self.conf_threshold, self.nms_threshold = float(conf_threshold), float(nms_threshold)
        self._batch = FrameBatch(self.spec.preprocessing, input_size, preprocess_threads,
                                 fixed_size=self.fixed_size)
        self._anchor_cache: dict[tuple[int, int], object] = {}
        return self

    def detect(self, frames) -> list[Detections]:
        """Detect faces in RGB frames of any size.

        Parameters
        ----------
        frames : list of ndarray (H, W, 3) uint8 RGB, or ndarray (N, H, W, 3)

        Returns
        -------
        list of Detections
            One per frame, boxes and landmarks in that frame's pixels (NaN landmarks from
            a model without landmark outputs).
        """
        frames, sizes = check_frames(frames)
        results: list[Detections] = []
        for start in range(0, len(frames), self.max_batch):
            stop = start + self.max_batch
            tensor, letterbox = self._batch.fill(frames[start:stop], sizes[start:stop])
            results += self.detect_tensor(tensor, letterbox)
        return results

    def detect_tensor(self, tensor: np.ndarray, letterbox) -> list[Detections]:
        """Everything after letterboxing: inference, decoding, NMS, back to frame pixels.

        Parameters
        ----------
        tensor : ndarray, shape (n, 3, H, W), float32
            A letterboxed batch (from ``self._batch.fill``), at most the engine's batch.
        letterbox : streamface.kernels.Letterbox
            Where each of the ``n`` frames went in ``tensor``.

        Returns
        -------
        list of Detections
            One per frame of the batch, in frame pixels.
        """
        outputs = self.engine.run({self.engine.input_names[0]: tensor})
        candidates = self._decode_batch(outputs, tensor.shape)
        return [self._select(c, letterbox, i) for i, c in enumerate(candidates)]

    def _decode_batch(self, outputs: list[np.ndarray], shape: tuple[int, ...]) -> list[Candidates]:
        """Every frame's candidates; models override this to threshold the whole batch at
        once (one pass over each output instead of one per frame)."""
        return [self._decode(outputs, i, shape) for i in range(shape[0])]

    def _decode(self, outputs: list[np.ndarray], i: int, shape: tuple[int, ...]) -> Candidates:
        """Frame ``i``'s candidates from the batch's ``outputs``; ``shape`` is the
        (n, 3, height, width) of the network input."""
        raise NotImplementedError

    def _select(self, candidates: Candidates, letterbox, i: int) -> Detections:
        """NMS over the ``top_k`` best candidates, mapped back to frame ``i``'s pixels."""
        if candidates is None:
            return Detections.empty()
        boxes, points, scores = candidates
        keep = nms(boxes, scores, self.nms_threshold, self.top_k)
        return Detections(letterbox.boxes_to_frame(boxes[keep], i),
                          letterbox.points_to_frame(points[keep], i),
                          scores[keep].astype(np.float32))

    @staticmethod
    def _per_frame(frame: np.ndarray, n: int, *arrays: np.ndarray) -> list[tuple | None]:
        """Split candidate ``arrays`` (rows sorted by ``frame``, as ``np.nonzero`` gives
        them) into the rows of each of the ``n`` frames; ``None`` for a frame without any."""
        bounds = np.searchsorted(frame, np.arange(n + 1))
        return [tuple(a[lo:hi] for a in arrays) if hi > lo else None
                for lo, hi in zip(bounds[:-1], bounds[1:])]

    @staticmethod
    def _join(parts: list[list[tuple]]) -> list[Candidates]:
        """Per frame, the candidates of several outputs (strides) joined in order."""
        return [tuple(np.concatenate(k) for k in zip(*frame)) if len(frame) > 1
                else (frame[0] if frame else None) for frame in parts]

    def _anchors(self, height: int, width: int):
        """:meth:`_make_anchors` for a (height, width) input, built once per size."""
        key = (height, width)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = self._make_anchors(height, width)
        return self._anchor_cache[key]

    def _make_anchors(self, height: int, width: int):
        """The model's anchors (priors, grid cells) for a (height, width) input."""
        raise NotImplementedError
