"""What every attribute head shares: crop, normalise, batch, run.

An attribute head turns faces (a frame and their 5 landmarks, or crops already cut) into
one row of numbers per face: class probabilities for age, gender, expression, mask and
FairFace, angles for WHENet. Each model family's file (:mod:`.age_gender`,
:mod:`.expression`, :mod:`.face_mask`, :mod:`.whenet`, :mod:`.fairface`) subclasses
:class:`AttributeHead` with its post-processing and its part of the seed's
``annotations.json`` record (:meth:`AttributeHead.seed_attributes`).

The crop and the normalisation are registry facts (``spec.preprocessing``): crops are
cut by ``kernels.align_faces`` straight into a reused uint8 batch, then normalised into
a reused float32 NCHW tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamface.engine.backends.base import InferenceEngine
from streamface.engine.models.crops import (
    aligned_crops,
    batched_rows,
    check_crops,
    check_frame,
    check_landmarks,
)
from streamface.engine.weights.registry import ModelSpec
from streamface.engine.models.validation import batch_size

#: OpenCV's COLOR_RGB2GRAY weights (ITU-R BT.601), what fer's crops went through.
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax, float32."""
    x = np.asarray(x, np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def rounded(values, names: Sequence[str]) -> dict[str, float]:
    """``{name: value}`` rounded to 2 decimals, as the seed writes probabilities."""
    return {name: round(float(v), 2) for name, v in zip(names, values)}


class AttributeHead:
    """Batched attribute head: crop -> normalise -> run -> one row per face.

    An instance reuses its buffers from call to call: use one per thread.

    Parameters
    ----------
    engine : InferenceEngine
        Runs the prepared model (symbolic batch).
    spec : ModelSpec
        Registry entry (crop, normalisation, class names).

    Attributes
    ----------
    classes : tuple of str
        Column names of :meth:`predict`'s result.
    """

    #: Key of this head's entry in the seed's ``attributes`` record.
    attribute = ""

    def __init__(self, engine: InferenceEngine, spec: ModelSpec):
        self.engine = engine
        self.spec = spec
        self.crop = spec.preprocessing.alignment
        self.size = spec.input_size[0]
        self.channels = 1 if spec.preprocessing.channel_order == "gray" else 3
        self.classes: tuple[str, ...] = tuple(spec.extra.get("classes", ()))
        self.prepare()

    @property
    def name(self) -> str:
        return self.spec.name

    def prepare(self, *, max_batch: int = 32) -> AttributeHead:
        """Set the options.

        Parameters
        ----------
        max_batch : int, default 32
            Faces per inference call (the reused buffers hold this many).
        """
        self.max_batch = max_batch = batch_size(max_batch, self.engine)
        self._crops = np.empty((max_batch, self.size, self.size, 3), np.uint8)
        self._tensor = np.empty((max_batch, self.channels, self.size, self.size), np.float32)
        p = self.spec.preprocessing
        order = [2, 1, 0] if p.channel_order == "bgr" else [0, 1, 2]
        self._order = None if order == [0, 1, 2] else order
        self._mean = np.asarray(p.mean, np.float32)[:self.channels].reshape(1, -1, 1, 1)
        self._scale = np.asarray(p.scale, np.float32)[:self.channels].reshape(1, -1, 1, 1)
        return self

    # -- crops -----------------------------------------------------------------------------

    def cut(self, frame: np.ndarray, landmarks: np.ndarray, out: np.ndarray) -> np.ndarray:
        """This head's crops of the faces of ``frame`` into ``out`` (N, S, S, 3) uint8."""
        return aligned_crops(frame, landmarks, self.crop, out=out)

    def crops(self, frame: np.ndarray, landmarks) -> np.ndarray:
        """This head's crops (N, S, S, 3) uint8 RGB of the faces of one frame (a new array)."""
        check_frame(frame)
        points = check_landmarks(landmarks)
        out = np.empty((points.shape[0], self.size, self.size, 3), np.uint8)
        if points.shape[0]:
            self.cut(frame, points, out)
        return out

    # -- inference -------------------------------------------------------------------------

    def predict(self, frame: np.ndarray, landmarks) -> np.ndarray:
        """One row per face of one frame.

        Parameters
        ----------
        frame : ndarray (H, W, 3) uint8 RGB
        landmarks : array-like (N, 5, 2)
            Frame pixels, in the detector's order.

        Returns
        -------
        ndarray (N, len(classes)) float32
            Probabilities (rows sum to 1) or, for pose, angles in degrees.
        """
        check_frame(frame)
        points = check_landmarks(landmarks)
        return batched_rows(self._run, points, self.max_batch, len(self.classes),
                            cut=lambda chunk, out: self.cut(frame, chunk, out),
                            buffer=self._crops)

    def predict_frames(self, frames: Sequence[np.ndarray], landmarks: Sequence) -> list[np.ndarray]:
        """:meth:`predict` for many frames, with faces of different frames in one batch."""
        if len(frames) != len(landmarks):
            raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark arrays")
        points = [check_landmarks(lm) for lm in landmarks]
        total = sum(p.shape[0] for p in points)
        crops = np.empty((total, self.size, self.size, 3), np.uint8)
        at = 0
        for frame, p in zip(frames, points):
            check_frame(frame)
            if p.shape[0]:
                self.cut(frame, p, crops[at:at + p.shape[0]])
            at += p.shape[0]
        rows = self.predict_crops(crops)
        return np.split(rows, np.cumsum([p.shape[0] for p in points])[:-1])

    def predict_crops(self, crops) -> np.ndarray:
        """Rows for crops already cut by :meth:`crops` ((N, S, S, 3) uint8 RGB or a list)."""
        crops = check_crops(crops, self.size)
        return batched_rows(self._run, crops, self.max_batch, len(self.classes))

    def tensor(self, crops: np.ndarray) -> np.ndarray:
        """The normalised NCHW float32 input for uint8 RGB crops (a view of the reused
        buffer when ``len(crops) <= max_batch``, valid until the next call)."""
        n = crops.shape[0]
        if n <= self._tensor.shape[0]:
            tensor = self._tensor[:n]
        else:
            tensor = np.empty((n, self.channels, self.size, self.size), np.float32)
        if self.channels == 1:
            np.matmul(crops, GRAY_WEIGHTS, out=tensor[:, 0], dtype=np.float32, casting="unsafe")
        else:
            nchw = crops.transpose(0, 3, 1, 2)
            np.copyto(tensor, nchw if self._order is None else nchw[:, self._order],
                      casting="unsafe")
        tensor -= self._mean
        tensor *= self._scale
        return tensor

    def _run(self, crops: np.ndarray) -> np.ndarray:
        outputs = self.engine.run({self.engine.input_names[0]: self.tensor(crops)})
        return self.postprocess(outputs)

    def postprocess(self, outputs: list[np.ndarray]) -> np.ndarray:
        """The model's outputs -> (n, len(classes)) float32; probabilities as shipped."""
        return np.asarray(outputs[0], np.float32)

    # -- the seed's record -----------------------------------------------------------------

    def seed_attributes(self, rows: np.ndarray) -> list[dict]:
        """Per face, this head's part of the seed's record: ``{attribute: {class: p}}``
        with probabilities rounded to 2 decimals (docs/stages.md §3)."""
        return [{self.attribute: rounded(row, self.classes)} for row in np.asarray(rows)]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.spec.name!r}, crop={self.crop}, "
                f"classes={len(self.classes)}, device={self.engine.device!r})")
