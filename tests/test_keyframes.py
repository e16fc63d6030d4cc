"""KeyframeSelector on the real skynews frames: its scores and decisions are the kernels'
on the RGB frames (the selector computes them from one gray and one resized gray image)."""

from __future__ import annotations

import math

import numpy as np

from streamface import kernels
from streamface.ingest.extraction import similarity_image
from streamface.ingest.keyframes import KeyframeSelector


def reference_selection(frames, empty_threshold=0.95, blur_threshold=50.0, similarity_threshold=0.9):
    """The seed's rules on RGB frames: (index, emptiness, blur, similarity) of the kept ones."""
    kept, last = [], None
    for index, frame in enumerate(frames):
        empty = kernels.emptiness(frame)
        if empty > empty_threshold:
            continue
        blur = kernels.blur_score(frame)
        if blur < blur_threshold:
            continue
        similarity = float("nan") if last is None else kernels.frame_similarity(frame, last)
        if similarity > similarity_threshold:
            continue
        kept.append((index, empty, blur, similarity))
        last = frame
    return kept


def a_sequence_with_drops(skynews_frames):
    """Real frames with an empty frame, repeats and a near-repeat in between."""
    frames = [f for _, f in skynews_frames[:8]]
    black = np.zeros_like(frames[0])
    shifted = np.roll(frames[2], 3, axis=1)
    return [frames[0], frames[0], black, frames[1], frames[2], shifted, frames[3], frames[3],
            black] + frames[4:]


def test_selector_keeps_the_seeds_frames_with_the_seeds_scores(skynews_frames):
    frames = a_sequence_with_drops(skynews_frames)
    selector = KeyframeSelector(prefer_sharper=False)
    got = []
    for index, frame in enumerate(frames):
        got += [(c.item, c.emptiness, c.blur, c.similarity) for c in selector.offer(index, frame)]
    got += [(c.item, c.emptiness, c.blur, c.similarity) for c in selector.finish()]
    expected = reference_selection(frames)
    assert [g[0] for g in got] == [e[0] for e in expected] == [0, 3, 4, 6, 9, 10, 11, 12]
    for ours, ref in zip(got, expected):
        assert ours[1:3] == ref[1:3]
        assert ours[3] == ref[3] or (math.isnan(ours[3]) and math.isnan(ref[3]))
    assert selector.counts.empty == 2 and selector.counts.similar == 3


def test_a_kept_frame_carries_the_image_track_matching_compares(skynews_frames):
    selector = KeyframeSelector(prefer_sharper=False)
    kept = []
    for index, (_, frame) in enumerate(skynews_frames[:3]):
        kept += selector.offer(index, frame)
    assert len(kept) == 3
    for candidate in kept:
        np.testing.assert_array_equal(candidate.small, similarity_image(candidate.rgb))


def box_blur(frame, radius=3):
    """A (2r+1)^2 box blur in numpy: a motion-blurred copy of a scene."""
    padded = np.pad(frame.astype(np.uint32), ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    total = np.zeros(frame.shape, np.uint32)
    height, width = frame.shape[:2]
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            total += padded[dy:dy + height, dx:dx + width]
    return (total // (2 * radius + 1) ** 2).astype(np.uint8)


def test_a_sharper_twin_replaces_the_held_frame_and_is_the_next_reference(skynews_frames):
    f0, f1, f2 = (f for _, f in skynews_frames[:3])
    frames = [f0, box_blur(f1), f1, f2]
    selector = KeyframeSelector()
    kept = []
    for index, frame in enumerate(frames):
        kept += selector.offer(index, frame)
    kept += selector.finish()
    assert [c.item for c in kept] == [0, 2, 3]
    assert selector.counts.replaced == 1
    assert kept[1].blur == kernels.blur_score(f1)
    # The twin took over the blurred frame's similarity to the frame before it.
    assert kept[1].similarity == kernels.frame_similarity(frames[1], f0)
    # And the next frame was compared with the sharp twin, not the blurred frame.
    assert kept[2].similarity == kernels.frame_similarity(f2, f1)
