"""Decoding of the fetched detectors (RetinaFace, CenterFace) without their weights.

Their weights need the network (``pytest -m network``); here a stand-in engine returns
outputs with the real models' layout, so the decoding and the mapping back through the
letterbox (:class:`~streamface.engine.models.detector.LetterboxDetector`) are checked
offline.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_fixtures import require_kernels

from streamface.engine.models import CenterFace, RetinaFace


@pytest.fixture(autouse=True)
def _kernels():
    require_kernels("preprocess_batch")


class StandIn:
    """An engine whose outputs are made by ``outputs(n, height, width)``."""

    input_names = ["input"]
    device = "cpu"
    max_batch = None
    input_shapes = {"input": ("batch", 3, "height", "width")}

    def __init__(self, output_names, outputs):
        self.output_names = output_names
        self.outputs = outputs

    def run(self, feed):
        n, _, height, width = feed["input"].shape
        return self.outputs(n, height, width)


def centerface_outputs(n, height, width):
    h, w = height // 4, width // 4
    heat = np.zeros((n, 1, h, w), np.float32)
    heat[:, 0, 4, 6] = 0.9  # one face centred on cell (row 4, col 6)
    heat[:, 0, 10, 10] = 0.4  # below the default threshold 0.5
    scale = np.full((n, 2, h, w), np.log(2.0), np.float32)  # 8 x 8 network pixels
    return [heat, scale, np.zeros((n, 2, h, w), np.float32),
            np.zeros((n, 10, h, w), np.float32)]


def test_centerface_decodes_the_heatmap_into_frame_pixels():
    detector = CenterFace(StandIn(["heat", "scale", "offset", "marks"], centerface_outputs))
    detector.prepare(input_size=64, max_batch=2)
    small, big, empty = detector.detect([np.zeros((64, 64, 3), np.uint8),
                                         np.zeros((128, 128, 3), np.uint8),
                                         np.zeros((32, 32, 3), np.uint8)])
    # centre ((6 + 0.5) * 4, (4 + 0.5) * 4) = (26, 18), side 8; landmarks at the corner.
    np.testing.assert_allclose(small.boxes, [[22, 14, 8, 8]], atol=1e-4)
    np.testing.assert_allclose(small.landmarks, np.full((1, 5, 2), [22, 14]), atol=1e-4)
    np.testing.assert_allclose(small.scores, [0.9])
    np.testing.assert_allclose(big.boxes, [[44, 28, 16, 16]], atol=1e-3)
    assert small.boxes.dtype == small.landmarks.dtype == small.scores.dtype == np.float32
    assert len(empty) == 1  # the 32 px frame is scaled up to 64 like the others
    assert len(detector.prepare(input_size=64, conf_threshold=0.95).detect(
        [np.zeros((64, 64, 3), np.uint8)])[0]) == 0


def retinaface_outputs(n, height, width):
    anchors = RetinaFace(StandIn(["loc", "conf", "landmarks"], None)).priors(height, width)
    p = np.full((n, len(anchors)), 0.01, np.float32)
    # stride 8, row 2, col 3, second size (32): prior centre (28, 20), 32 x 32.
    p[:, 2 * (2 * (width // 8) + 3) + 1] = 0.99
    p[:, 2 * (2 * (width // 8) + 3)] = 0.98  # same centre, 16 x 16: IoU 0.25, kept
    p[:, 2 * (2 * (width // 8) + 4) + 1] = 0.97  # next cell, 32 x 32: IoU 0.6, suppressed
    return [np.zeros((n, len(anchors), 4), np.float32), np.stack([1 - p, p], axis=2),
            np.zeros((n, len(anchors), 10), np.float32)]


def test_retinaface_decodes_priors_into_frame_pixels():
    detector = RetinaFace(StandIn(["loc", "conf", "landmarks"], retinaface_outputs))
    detector.prepare(input_size=64)
    small, big = detector.detect([np.zeros((64, 64, 3), np.uint8),
                                  np.zeros((128, 128, 3), np.uint8)])
    np.testing.assert_allclose(small.boxes, [[12, 4, 32, 32], [20, 12, 16, 16]], atol=1e-4)
    np.testing.assert_allclose(small.scores, [0.99, 0.98], atol=1e-6)
    np.testing.assert_allclose(small.landmarks[0], np.full((5, 2), [28, 20]), atol=1e-4)
    np.testing.assert_allclose(big.boxes[0], [24, 8, 64, 64], atol=1e-3)
    assert detector.priors(64, 64) is detector.priors(64, 64)  # built once per size
    (one,) = detector.prepare(input_size=64, top_k=1).detect([np.zeros((64, 64, 3), np.uint8)])
    np.testing.assert_allclose(one.scores, [0.99], atol=1e-6)
