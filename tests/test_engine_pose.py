"""Geometric head pose from the 5 landmarks."""

from __future__ import annotations

import numpy as np
import pytest
from engine_fixtures import seed_faces  # noqa: F401

from streamface.engine import POSE_NAMES, head_pose
from streamface.engine.pose import FACE_MODEL_3D

ARCFACE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                    [41.5493, 92.3655], [70.7299, 92.2041]])


def rotation(yaw, pitch, roll):
    # Positive yaw turns the face towards the image's left (the seed's WHENet sign).
    y, p, r = np.radians([-yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def project(yaw, pitch, roll, scale=3.0, shift=(200.0, 150.0)):
    return (FACE_MODEL_3D @ rotation(yaw, pitch, roll).T)[:, :2] * scale + shift


def test_frontal_template_is_zero():
    np.testing.assert_allclose(head_pose(ARCFACE), [[0, 0, 0]], atol=1.0)
    assert POSE_NAMES == ("yaw", "pitch", "roll")


@pytest.mark.parametrize("angles", [(30, 0, 0), (0, 20, 0), (0, 0, 15), (-25, -10, 8), (40, 15, -20)])
def test_recovers_the_rotation_of_the_generic_face(angles):
    np.testing.assert_allclose(head_pose(project(*angles))[0], angles, atol=1e-3)


def test_sign_conventions():
    yaw, pitch, roll = head_pose(np.stack([project(20, 0, 0), project(0, 15, 0),
                                           project(0, 0, 10)])).T
    left = project(20, 0, 0)
    assert left[2, 0] < left[:2, 0].mean() and yaw[0] > 0        # nose left of the eyes
    up = project(0, 15, 0)
    assert up[2, 1] - up[:2, 1].mean() < project(0, 0, 0)[2, 1] - project(0, 0, 0)[:2, 1].mean()
    assert pitch[1] > 0                                           # nose nearer the eyes
    clockwise = project(0, 0, 10)
    assert clockwise[1, 1] > clockwise[0, 1] and roll[2] > 0      # right-hand eye lower


def test_scale_and_translation_do_not_matter():
    a = head_pose(project(15, 5, -5))
    b = head_pose(project(15, 5, -5, scale=0.3, shift=(-40.0, 900.0)))
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_shapes():
    assert head_pose(np.zeros((0, 5, 2))).shape == (0, 3)
    assert head_pose(ARCFACE).dtype == np.float32
    with pytest.raises(ValueError, match=r"\(N, 5, 2\)"):
        head_pose(np.zeros((2, 4, 2)))


def test_real_faces_are_mostly_frontal(seed_faces):
    pose = head_pose(np.stack([f["landmarks"] for f in seed_faces]))
    assert np.isfinite(pose).all()
    assert np.median(np.abs(pose[:, 0])) < 30 and np.abs(pose[:, 2]).max() < 45


def test_yaw_sign_agrees_with_the_seed_poses(seed_faces, skynews):
    import json

    seed = json.loads((skynews / "metadata" / "annotations.json").read_text())["labels"]
    ours = head_pose(np.stack([f["landmarks"] for f in seed_faces]))[:, 0]
    theirs = [seed[f["name"]]["attributes"]["pose"]["yaw"] for f in seed_faces]
    assert np.corrcoef(ours, theirs)[0, 1] > 0.9
