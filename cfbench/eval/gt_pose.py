"""Head pose of the GT faces of a sweep (yaw, pitch, roll), for the side-face report."""

from __future__ import annotations

import math
from typing import Any

import torch

from cfbench.errors import BadInputError, MissingWeightsError
from cfbench.face import as_uint8_rgb, get_backend
from cfbench.face.pose import head_pose
from cfbench.metrics.identity import dlib_gt_face

Pose = tuple[float, float, float]


def pose_backend() -> tuple[Any, str]:
    """The dlib backend for GT head pose, or None and why (dlib or its models are optional)."""
    try:
        return get_backend("dlib"), "dlib 68 landmarks + solvePnP (cfbench.face.pose)"
    except (ImportError, MissingWeightsError) as exc:
        return None, f"not computed: {exc}"


def gt_head_pose(backend: Any, gt: torch.Tensor) -> Pose:
    """(yaw, pitch, roll) in degrees (cfbench.face.pose conventions) of the face the dlib metrics use for a GT image
    (3, H, W) in [0, 1] (`dlib_gt_face`: the largest of several), NaN when no face is found or the pose cannot be
    solved from its landmarks."""
    face = dlib_gt_face(backend, as_uint8_rgb(gt))
    if face is None:
        return (math.nan,) * 3
    try:
        p = head_pose(face.landmarks68, tuple(gt.shape[1:]))
    except BadInputError:
        return (math.nan,) * 3
    return (p.yaw, p.pitch, p.roll)
