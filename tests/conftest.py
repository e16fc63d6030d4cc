"""Shared fixtures: where the real test data lives, and skips when it does not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """``$STREAMFACE_SHARED/data`` if set, else ``../shared/data`` beside the checkout."""
    root = os.environ.get("STREAMFACE_SHARED")
    return Path(root) / "data" if root else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (set STREAMFACE_SHARED)")
    return path


@pytest.fixture(scope="session")
def skynews(shared_data) -> Path:
    path = shared_data / "skynews"
    if not (path / "frames").is_dir():
        pytest.skip(f"skynews sample not found at {path}")
    return path


@pytest.fixture(scope="session")
def skynews_frames(skynews):
    """The 24 real 1080p frames as RGB uint8 arrays, sorted by name: list of (name, array)."""
    from PIL import Image
    import numpy as np

    frames = []
    for png in sorted((skynews / "frames").glob("*.png")):
        with Image.open(png) as im:
            frames.append((png.stem, np.asarray(im.convert("RGB"))))
    return frames
