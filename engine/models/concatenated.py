"""Two or more recognizers as one: the seed's ``arcfacenet`` embedding.

The seed concatenated ArcFace and FaceNet embeddings, each L2-normalised, and
normalised the result again, so each model weighs the same in a cosine similarity
(the concatenation's cosine is the mean of the members' cosines). Any recognizers with
``embed`` / ``embed_aligned`` combine this way, e.g. ``sface+arcface``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamface.engine.models.sface import l2_normalize


class ConcatenatedRecognizer:
    """Recognizers whose normalised embeddings are concatenated and normalised again.

    Parameters
    ----------
    recognizers : sequence of recognizers
        At least two; each aligns its own crop from the landmarks.

    Examples
    --------
    >>> from streamface.engine import load_recognizer
    >>> both = load_recognizer("sface+arcface")                  # doctest: +SKIP
    >>> both.embed(frame, faces.landmarks).shape                 # doctest: +SKIP
    (3, 640)
    """

    def __init__(self, recognizers: Sequence):
        recognizers = list(recognizers)
        if len(recognizers) < 2:
            raise ValueError(f"recognizers must hold at least two recognizers, got "
                             f"{len(recognizers)}")
        for r in recognizers:
            if not hasattr(r, "embed") or not hasattr(r, "embed_aligned"):
                raise ValueError(f"recognizers must have embed() and embed_aligned(), got "
                                 f"{type(r).__name__}")
        self.recognizers = recognizers

    @property
    def name(self) -> str:
        return "+".join(getattr(getattr(r, "spec", None), "name", type(r).__name__)
                        for r in self.recognizers)

    @property
    def dim(self) -> int:
        return sum(int(r.dim) for r in self.recognizers)

    @property
    def size(self) -> int:
        """Side of the aligned crops :meth:`embed_aligned` takes (shared by the members)."""
        sizes = {r.size for r in self.recognizers}
        if len(sizes) != 1:
            raise ValueError(f"the recognizers take different crop sizes {sorted(sizes)}; use "
                             f"embed(frame, landmarks)")
        return sizes.pop()

    def prepare(self, **options) -> ConcatenatedRecognizer:
        """Pass options (e.g. ``max_batch``) to every member."""
        for r in self.recognizers:
            r.prepare(**options)
        return self

    @staticmethod
    def combine(parts: Sequence[np.ndarray]) -> np.ndarray:
        """Normalise each (N, D_i), concatenate, normalise again: (N, sum D_i) float32."""
        return l2_normalize(np.concatenate([l2_normalize(p) for p in parts], axis=1))

    def embed(self, frame: np.ndarray, landmarks) -> np.ndarray:
        """(N, dim) float32 L2-normalised embeddings of the faces of one frame."""
        return self.combine([r.embed(frame, landmarks) for r in self.recognizers])

    def embed_aligned(self, faces) -> np.ndarray:
        """(N, dim) float32 for crops aligned to the ArcFace template at :attr:`size`."""
        return self.combine([r.embed_aligned(faces) for r in self.recognizers])
