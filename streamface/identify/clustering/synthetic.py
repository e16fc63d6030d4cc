"""Generated face embeddings with identity structure, for tests and benchmarks.

Face recognisers map each person to a region of the unit sphere: faces of one
person are close (cosine distance around 0.1-0.25 for a good model), different
people far apart (around 1.0 in high dimension), except look-alikes. This
generator reproduces that shape:

- identity sizes follow a Zipf law (a few people, like news anchors, appear in
  many frames; most appear a few times);
- each identity has a centre on the unit sphere; identities come in small
  "families" of look-alikes whose centres have cosine similarity 0.3-0.7 (cluster means of
  close look-alikes can fall within the seed's threshold, as real ones do);
- a face is ``normalise(centre + sigma * g)`` with ``g ~ N(0, I/D)``, where sigma
  varies per identity (pose/quality spread) and per face, with a share of hard
  faces (profile, blur) spread much wider; the expected cosine
  distance between two faces of one identity is about ``sigma^2 / (1 + sigma^2)``;
- a share of faces are noise (one-off faces, false detections): random
  directions, each its own identity.

Rows are shuffled, so one identity recurs across the seed's batches as anchors do
over a day of broadcast.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_identities"]


def make_identities(n_samples: int, *, dim: int = 128, n_identities: int | None = None,
                    zipf_exponent: float = 1.0, sigma: tuple[float, float] = (0.35, 0.6),
                    hard_fraction: float = 0.1, noise_fraction: float = 0.03, family_size: int = 3,
                    family_similarity: tuple[float, float] = (0.3, 0.7),
                    random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n_samples`` unit embeddings of ``dim`` dimensions with known identities.

    Parameters
    ----------
    n_samples : int
    dim : int, default 128
    n_identities : int, optional
        People with at least one face (before noise); default ``max(1, n_samples // 50)``.
    zipf_exponent : float, default 1.0
        Size of the r-th largest identity is proportional to ``r ** -zipf_exponent``
        (each identity has at least one face).
    sigma : (float, float), default (0.35, 0.6)
        Range of the per-identity spread; each face also scales it by U(0.8, 1.25).
    hard_fraction : float, default 0.1
        Share of faces that are hard (profile, blur): their spread is scaled by U(1.4, 2.0).
    noise_fraction : float, default 0.03
        Share of faces that are noise (label of their own each).
    family_size : int, default 3
        Largest number of look-alike identities sharing a family.
    family_similarity : (float, float), default (0.3, 0.7)
        Range of the cosine similarity between look-alike centres.
    random_state : int, default 0

    Returns
    -------
    x : ndarray of float32, shape (n_samples, dim)
        Unit rows.
    labels : ndarray of int64, shape (n_samples,)
        Identity of each face; identities numbered by size (0 = largest); noise
        faces have labels above every identity.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples: expected >= 1, got {n_samples}")
    rng = np.random.default_rng(random_state)
    n_noise = int(round(noise_fraction * n_samples))
    n_real = n_samples - n_noise
    k = max(1, min(n_real, n_identities or n_samples // 50 or 1)) if n_real else 0

    sizes = np.zeros(0, np.int64)
    if k:
        weights = np.arange(1, k + 1, dtype=np.float64) ** -zipf_exponent
        sizes = 1 + np.floor(weights / weights.sum() * (n_real - k)).astype(np.int64)
        sizes[: n_real - int(sizes.sum())] += 1  # hand out the rounding remainder to the largest

    # Identity centres, in look-alike families.
    centres = np.empty((k, dim))
    i = 0
    while i < k:
        m = int(rng.integers(1, family_size + 1))
        base = rng.standard_normal(dim)
        base /= np.linalg.norm(base)
        for _ in range(min(m, k - i)):
            rho = rng.uniform(*family_similarity) if m > 1 else 0.0
            # cos(c1, c2) = rho when both are sqrt(rho) * base + sqrt(1 - rho) * own unit direction.
            own = rng.standard_normal(dim)
            own -= own.dot(base) * base
            own /= np.linalg.norm(own)
            centres[i] = np.sqrt(rho) * base + np.sqrt(1.0 - rho) * own
            i += 1

    labels = np.repeat(np.arange(k, dtype=np.int64), sizes)
    spread = rng.uniform(*sigma, size=k)[labels] * rng.uniform(0.8, 1.25, size=n_real)
    hard = rng.random(n_real) < hard_fraction
    spread[hard] *= rng.uniform(1.4, 2.0, size=int(hard.sum()))
    x = centres[labels] + spread[:, None] * rng.standard_normal((n_real, dim)) / np.sqrt(dim)
    if n_noise:
        x = np.concatenate([x, rng.standard_normal((n_noise, dim))])
        labels = np.concatenate([labels, k + np.arange(n_noise, dtype=np.int64)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    perm = rng.permutation(n_samples)
    return x[perm].astype(np.float32), labels[perm]
