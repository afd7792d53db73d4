"""Head pose (yaw, pitch, roll in degrees) from 68 iBUG landmarks, by `cv2.solvePnP` against a generic 3D face.

Model: six points of a generic head in arbitrary units (the widely used "generic face" coordinates; nose tip at the
origin), in camera-like axes (x to the image's right, y down, z away from the camera): nose tip (30) (0, 0, 0),
chin (8) (0, 330, 65), outer corner of the eye on the image's left (36) (-225, -170, 135), outer corner of the
other eye (45) (225, -170, 135), mouth corners (48) (-150, 150, 125) and (54) (150, 150, 125). Camera: a pinhole with
focal length = image width in pixels, principal point at the image centre, no distortion. `solvePnP` (iterative,
started from a frontal pose at the depth matching the eye distance) gives the rotation R from model to camera; it
is split as R = Rz(r) Ry(y) Rx(p).

Sign convention of the returned angles (degrees, frontal face = (0, 0, 0)):

- yaw > 0: the face is turned towards the subject's own left, i.e. the nose points to the image's right;
  a horizontal flip negates yaw.
- pitch > 0: the face looks up (chin raised).
- roll > 0: the face is rotated counter-clockwise in the image as displayed (as `cv2.getRotationMatrix2D` with a
  positive angle); a horizontal flip negates roll.

This is a coarse estimate (a generic model, an assumed focal length, six points): good for telling frontal from side
faces (tens of degrees), not for precise pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from cfbench.errors import BadInputError

MODEL_INDICES = (30, 8, 36, 45, 48, 54)
MODEL_POINTS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, 330.0, 65.0],
        [-225.0, -170.0, 135.0],
        [225.0, -170.0, 135.0],
        [-150.0, 150.0, 125.0],
        [150.0, 150.0, 125.0],
    ],
    np.float64,
)


@dataclass(frozen=True)
class HeadPose:
    """Yaw, pitch, roll in degrees (sign convention in the module docstring)."""

    yaw: float
    pitch: float
    roll: float


def head_pose(landmarks68: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
    """Pose from (68, 2) landmarks of an image of `image_size` = (height, width)."""
    lm = np.asarray(landmarks68, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise BadInputError(f"head_pose needs finite (68, 2) landmarks; got shape {lm.shape}")
    h, w = image_size
    if h < 1 or w < 1:
        raise BadInputError(f"invalid image size {image_size}")
    camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
    image_points = lm[list(MODEL_INDICES)]
    # start from a frontal pose at the depth that gives the observed eye distance, so that the iterative solver
    # stays on the physical solution (without a guess it can land on a mirrored one, roll near 180 degrees)
    eye_dist = float(np.linalg.norm(image_points[3] - image_points[2]))
    depth = w * 450.0 / max(eye_dist, 1e-6)
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[(image_points[0, 0] - w / 2) * depth / w], [(image_points[0, 1] - h / 2) * depth / w], [depth]])
    ok, rvec, _ = cv2.solvePnP(
        MODEL_POINTS, image_points, camera, np.zeros(4), rvec0, tvec0, True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        raise BadInputError("solvePnP failed on these landmarks")
    r, _ = cv2.Rodrigues(rvec)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    # Ry(+) turns the face normal (model -z) towards the image's left, Rx(+) downwards, Rz(+) clockwise on screen:
    # negate all three for the documented convention.
    return HeadPose(-yaw, -pitch, -roll)
