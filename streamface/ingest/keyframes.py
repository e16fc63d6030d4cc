"""Keyframe selection with the seed's rules (docs/stages.md §1), shared by capture and ``run``.

A decoded frame is dropped at the first failing test, in the seed's order:

1. emptiness (fraction of non-edge pixels) above ``empty_threshold`` (0.95);
2. blur score (Laplacian variance, seed formula) below ``blur_threshold`` (50);
3. similarity to the last kept frame above ``similarity_threshold`` (0.9).

One addition, ``prefer_sharper`` (on by default): the last kept frame is held back
until the next frame arrives, and a frame that fails only the similarity test but is
sharper than the held frame replaces it. On real broadcast video the seed's blur
threshold of 50 rejects only flat frames (sharp 1080p frames score 1e11-4e12 and
motion-blurred transition frames 2e9-6e9), so without this rule a blurred transition
keyframe is kept and the sharp keyframe of the same scene that follows is dropped as
its near-duplicate. Set ``prefer_sharper=False`` for the seed's exact behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamface import kernels
from streamface.kernels.quality import SIMILARITY_SIZE

# The blur score resizes to the similarity's size too (BLUR_RESIZE), so one resized
# gray image serves both; tests check the scores equal the kernels' on RGB frames.
SCORE_SIZE = SIMILARITY_SIZE


@dataclass
class SelectionCounts:
    """How many frames each rule dropped (and how many were replaced by a sharper twin)."""

    seen: int = 0
    kept: int = 0
    empty: int = 0
    blurred: int = 0
    similar: int = 0
    replaced: int = 0


@dataclass
class Candidate:
    """A frame that passed the selection, with its scores."""

    item: object
    rgb: np.ndarray
    #: The gray frame at the similarity size (1280x720) the scores were read from;
    #: track matching compares these too, so it need not make them again. None where
    #: it was left behind (Ray sends candidates without it: fewer bytes to move).
    small: np.ndarray | None
    emptiness: float
    blur: float
    similarity: float


class KeyframeSelector:
    """Offer frames one at a time; take back the kept ones.

    Parameters
    ----------
    empty_threshold, blur_threshold, similarity_threshold : float
        The seed's thresholds (0.95, 50, 0.9).
    prefer_sharper : bool, default True
        See the module docstring.
    threads : int or None, default 1
        Kernel threads. One is the default: a 1080p frame takes ~10 ms on one core,
        and OpenMP teams lose to the decoder and inference threads (measured 4x
        slower with 2 threads on a busy 2-core machine); None uses every core.

    Notes
    -----
    A frame is converted to gray once, and resized once to the similarity size; the
    blur score and the similarity read that small image (the kernels' nearest resize
    of an image already at the size is the image itself, so the scores are the same
    as from the RGB frame), and the last kept frame's small image is kept for the
    next comparison.
    """

    def __init__(self, empty_threshold: float = 0.95, blur_threshold: float = 50,
                 similarity_threshold: float = 0.9, *, prefer_sharper: bool = True,
                 threads: int | None = 1) -> None:
        self.empty_threshold = float(empty_threshold)
        self.blur_threshold = float(blur_threshold)
        self.similarity_threshold = float(similarity_threshold)
        self.prefer_sharper = bool(prefer_sharper)
        self.threads = threads
        self.counts = SelectionCounts()
        self._last_small: np.ndarray | None = None
        self._held: Candidate | None = None

    def offer(self, item, rgb: np.ndarray) -> list[Candidate]:
        """Score one frame; return the frames that are now final (0, 1 or, rarely, more).

        ``item`` is handed back untouched in :attr:`Candidate.item` (e.g. the decoded frame).
        """
        self.counts.seen += 1
        gray = kernels.gray(rgb, threads=self.threads)
        empty = kernels.emptiness(gray, threads=self.threads)
        if empty > self.empty_threshold:
            self.counts.empty += 1
            return []
        small = kernels.resize_nearest(gray, SCORE_SIZE, threads=self.threads)
        blur = kernels.blur_score(small, threads=self.threads)
        if blur < self.blur_threshold:
            self.counts.blurred += 1
            return []
        similarity = (float("nan") if self._last_small is None
                      else kernels.frame_similarity(small, self._last_small, size=None,
                                                    threads=self.threads))
        candidate = Candidate(item, rgb, small, empty, blur, similarity)
        if similarity > self.similarity_threshold:
            if self.prefer_sharper and self._held is not None and blur > self._held.blur:
                candidate.similarity = self._held.similarity
                self._held = candidate
                self._last_small = small
                self.counts.replaced += 1
            self.counts.similar += 1
            return []
        self._last_small = small
        self.counts.kept += 1
        if not self.prefer_sharper:
            return [candidate]
        released = [] if self._held is None else [self._held]
        self._held = candidate
        return released

    def finish(self) -> list[Candidate]:
        """The frame still held back, at the end of the source."""
        released = [] if self._held is None else [self._held]
        self._held = None
        return released
