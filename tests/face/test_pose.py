"""Head pose from 68 landmarks: sign conventions on real faces, flips and in-plane rotations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cfbench.errors import BadInputError
from cfbench.face.pose import head_pose
from tests.face.conftest import ALIGNED, FACES, read_rgb

FRONTAL = ["ffhq_00003.png", "celebahq_063109.png"]  # nose within 8 px of the eye midpoint
SIDE = ["aflw_00408.jpg", "aflw_02246.jpg"]  # clearly turned heads


def _pose(backend, img):
    faces = backend.analyze(img)
    assert faces
    return head_pose(faces[0].landmarks68, img.shape[:2]), faces[0]


def test_frontal_small_side_large(dlib_backend):
    frontal = [abs(_pose(dlib_backend, read_rgb(ALIGNED / n))[0].yaw) for n in FRONTAL]
    side = [abs(_pose(dlib_backend, read_rgb(FACES / n))[0].yaw) for n in SIDE]
    assert max(frontal) < 10
    assert min(side) > 25
    assert min(side) > max(frontal)


@pytest.mark.parametrize("path", [ALIGNED / FRONTAL[0], FACES / SIDE[0], FACES / SIDE[1]])
def test_yaw_sign_and_flip(dlib_backend, path):
    """yaw > 0 when the nose points to the image's right; a horizontal flip negates yaw and roll (within 5 deg:
    dlib's landmarks of the flipped image are not an exact mirror) and keeps pitch."""
    img = read_rgb(path)
    pose, face = _pose(dlib_backend, img)
    flipped, _ = _pose(dlib_backend, np.ascontiguousarray(img[:, ::-1]))
    nose_dx = face.landmarks68[30, 0] - face.five[:2, 0].mean()
    if abs(pose.yaw) > 10:
        assert np.sign(pose.yaw) == np.sign(nose_dx)
        assert np.sign(flipped.yaw) == -np.sign(pose.yaw)
    assert abs(pose.yaw + flipped.yaw) < 5
    assert abs(pose.roll + flipped.roll) < 5
    assert abs(pose.pitch - flipped.pitch) < 5


@pytest.mark.parametrize("angle", [12, -12])
def test_roll_follows_in_plane_rotation(dlib_backend, angle):
    img = read_rgb(ALIGNED / "ffhq_00003.png")
    base, _ = _pose(dlib_backend, img)
    rot = cv2.warpAffine(img, cv2.getRotationMatrix2D((256, 256), angle, 1.0), (512, 512))
    pose, _ = _pose(dlib_backend, rot)
    assert abs((pose.roll - base.roll) - angle) < 3


def test_bad_landmarks():
    with pytest.raises(BadInputError):
        head_pose(np.zeros((5, 2)), (100, 100))
    with pytest.raises(BadInputError):
        head_pose(np.full((68, 2), np.nan), (100, 100))
