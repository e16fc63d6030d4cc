"""Helpers for the analysis-stage tests: small stores with embeddings, and the seed's clustering as plain SciPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.cluster.hierarchy as sch

from streamface.store import FaceRecords, FaceStore, FrameRecords

CROP, ALIGNED = 16, 8
T0 = 1_684_998_098_412_614  # 2023-05-25 07:01:38.412614 UTC
AGE = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]


def seed_batched_hac(x: np.ndarray, threshold: float, *, metric: str = "cosine", linkage: str = "complete",
                     batch_size: int = 20000) -> np.ndarray:
    """The seed's BatchedHierarchicalClustering, written plainly: one SciPy linkage per batch, then twice on means."""

    def cut(e):
        if len(e) == 1:
            return np.zeros(1, np.int64)
        return sch.fcluster(sch.linkage(e, method=linkage, metric=metric), t=threshold, criterion="distance") - 1

    local, offset = [], 0
    for i in range(0, len(x), batch_size):
        labels = cut(x[i:i + batch_size]) + offset
        offset += len(set(labels.tolist()))
        local.extend(labels.tolist())
    labels = np.array(local)
    for _ in range(2):
        means = np.array([x[labels == y].mean(axis=0) for y in sorted(set(labels.tolist()))])
        labels = cut(means)[labels]
    return labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings group the items identically (label values may differ)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def make_store(path: Path, x: np.ndarray, *, faces_per_frame: int = 1, match: np.ndarray | None = None,
               attributes: bool = True, embed: int | None = None, stream: str = "cam") -> str:
    """A store with one face per row of ``x`` (embedded: the first ``embed`` rows, default all).

    Returns ``"<store>::<stream>"``.
    """
    n = len(x)
    store = FaceStore.create(path)
    frames = np.arange(n) // faces_per_frame
    n_frames = int(frames.max()) + 1 if n else 0
    face_index = np.arange(n) % faces_per_frame
    rows = np.arange(n)
    faces = FaceRecords(
        frame=frames, face=face_index.astype(np.int32), score=np.full(n, 0.99, np.float32),
        box=np.tile(np.array([10, 10, 20, 20], np.float32), (n, 1)), landmarks=np.ones((n, 5, 2), np.float32),
        crop=(np.ones((n, CROP, CROP, 3)) * (rows % 256)[:, None, None, None]).astype(np.uint8),
        aligned=np.zeros((n, ALIGNED, ALIGNED, 3), np.uint8),
        match=None if match is None else np.asarray(match, np.int64),
    )
    with store.writer(stream, create=True, crop_size=CROP, aligned_size=ALIGNED) as w:
        w.append(FrameRecords(time_us=T0 + np.arange(n_frames) * 40_000, width=np.full(n_frames, 640),
                              height=np.full(n_frames, 360)), faces)
        m = n if embed is None else embed
        if m:
            w.write_embeddings(0, x[:m].astype(np.float32), model="test-model")
        if attributes and m:
            rng = np.random.default_rng(0)
            age = rng.dirichlet(np.ones(len(AGE)), size=m)
            w.write_attribute("age", 0, age, classes=AGE)
            w.write_attribute("mask", 0, rng.random(m))
            w.write_attribute("pose", 0, rng.normal(0, 10, (m, 3)), classes=["yaw", "pitch", "roll"])
    return f"{path}::{stream}"


def write_npz(path: Path, x: np.ndarray, names=None) -> Path:
    """A features .npz with names ``f_frame_<i>_face_0``."""
    if names is None:
        names = np.array([f"f_frame_{i:020d}_face_0" for i in range(len(x))])
    np.savez(path, names=np.asarray(names), embeddings=np.asarray(x, np.float32))
    return path
