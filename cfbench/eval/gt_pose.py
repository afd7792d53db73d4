"""Head pose of the GT faces of a sweep (yaw, pitch, roll), for the side-face report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cfbench.errors import BadInputError, MissingWeightsError
from cfbench.face import as_uint8_rgb, get_backend
from cfbench.face.pose import head_pose
from cfbench.metrics.cache import GtSideEntry
from cfbench.metrics.identity import dlib_gt_face

Pose = tuple[float, float, float]
GT_POSE = "gt pose"  # the name of the GT pose cache entry


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


class GtPoses:
    """The GT head pose of each face of a sweep, by image id: computed once (`of`) or restored from the GT-side
    cache (`cache_entry`). `backend` None (dlib absent): every pose is NaN and `note` says why."""

    def __init__(self) -> None:
        self.backend, self.note = pose_backend()
        self.poses: dict[str, Pose] = {}

    def of(self, sample: Any) -> Pose:
        """The pose of `sample` (a FaceSample: `id`, `gt` (3, H, W) or None), NaN without GT or backend."""
        if sample.id not in self.poses:
            pose = (math.nan,) * 3
            if self.backend is not None and sample.gt is not None:
                pose = gt_head_pose(self.backend, sample.gt)
            self.poses[sample.id] = pose
        return self.poses[sample.id]

    def cache_entry(self, ids: Sequence[str], named: dict[str, Any]) -> GtSideEntry:
        """The cache entry of the poses of the faces `ids`, keyed by the backend and `named` (the dataset)."""

        def restore(arrays: dict[str, np.ndarray]) -> None:
            self.poses = {i: tuple(map(float, p)) for i, p in zip(arrays["ids"].tolist(), arrays["pose"], strict=True)}

        def arrays() -> dict[str, np.ndarray]:
            return {"ids": np.array(ids), "pose": np.array([self.poses[i] for i in ids], np.float64).reshape(-1, 3)}

        key = {"kind": "gt_head_pose", "backend": self.note, **named}
        return GtSideEntry(GT_POSE, "gt_pose", key, 2, restore, arrays)
