"""SFace (OpenCV Zoo, 2021dec): 128-D face embeddings from 112x112 aligned RGB crops.

Input: RGB 0..255 (the graph normalises itself with ``(x - 127.5) / 128``), the face
aligned to the standard ArcFace 5-point template by a similarity warp. Output: 128-D,
which we L2-normalise, so cosine similarity is a dot product. OpenCV's match threshold
for this model is cosine 0.363.
"""

from __future__ import annotations

import numpy as np

from streamface import kernels
from streamface.engine.backends.base import InferenceEngine
from streamface.engine.models.crops import (
    batched_rows,
    check_crops,
    check_frame,
    check_landmarks,
)
from streamface.engine.weights.registry import REGISTRY, ModelSpec
from streamface.engine.models.validation import batch_size


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


class SFace:
    """Batched SFace recognizer.

    An instance reuses its input buffers from call to call: use one per thread.

    Parameters
    ----------
    engine : InferenceEngine
        Runs the prepared SFace graph (symbolic batch).
    spec : ModelSpec, default the registry's ``sface``

    Examples
    --------
    >>> from streamface.engine import load_detector, load_recognizer
    >>> detector, recognizer = load_detector(), load_recognizer()       # doctest: +SKIP
    >>> [faces] = detector.detect([frame])                               # doctest: +SKIP
    >>> recognizer.embed(frame, faces.landmarks).shape                   # doctest: +SKIP
    (3, 128)
    """

    #: OpenCV's cosine threshold for "same person" with SFace.
    MATCH_THRESHOLD = 0.363

    def __init__(self, engine: InferenceEngine, spec: ModelSpec | None = None):
        self.engine = engine
        self.spec = spec if spec is not None else REGISTRY["sface"]
        self.size = self.spec.input_size[0]
        self.prepare()

    @property
    def dim(self) -> int:
        return 128

    def prepare(self, *, max_batch: int = 32) -> SFace:
        """Set the options.

        Parameters
        ----------
        max_batch : int, default 32
            Faces per inference call (the reused buffers hold this many).
        """
        self.max_batch = max_batch = batch_size(max_batch, self.engine)
        self._aligned = np.empty((max_batch, self.size, self.size, 3), np.uint8)
        self._tensor = np.empty((max_batch, 3, self.size, self.size), np.float32)
        return self

    def embed(self, frame: np.ndarray, landmarks) -> np.ndarray:
        """Embed the faces of one frame given their 5 landmarks.

        Parameters
        ----------
        frame : ndarray (H, W, 3) uint8 RGB
        landmarks : array-like (N, 5, 2)
            Frame pixels, in the detector's order (left eye, right eye, nose, mouth
            left, mouth right).

        Returns
        -------
        ndarray (N, 128) float32
            L2-normalised embeddings.
        """
        check_frame(frame)
        points = check_landmarks(landmarks)
        # One kernel thread: the warp is tiny next to inference, which uses every core.
        return batched_rows(self._run, points, self.max_batch, self.dim, buffer=self._aligned,
                            cut=lambda chunk, out: kernels.align_faces(
                                frame, np.ascontiguousarray(chunk), size=self.size, out=out,
                                threads=1))

    def embed_aligned(self, faces) -> np.ndarray:
        """Embed already aligned crops.

        Parameters
        ----------
        faces : ndarray (N, 112, 112, 3) uint8 RGB, or a list of (112, 112, 3) arrays
            Crops aligned to the ArcFace template (e.g. by ``kernels.align_faces``).

        Returns
        -------
        ndarray (N, 128) float32
            L2-normalised embeddings.
        """
        faces = check_crops(faces, self.size, "faces")
        return batched_rows(self._run, faces, self.max_batch, self.dim)

    def _run(self, aligned: np.ndarray) -> np.ndarray:
        n = aligned.shape[0]
        tensor = self._tensor[:n]
        np.copyto(tensor, aligned.transpose(0, 3, 1, 2), casting="unsafe")
        (features,) = self.engine.run({self.engine.input_names[0]: tensor})
        return l2_normalize(features)
