"""Landmark distance `lmd[<backend>]`: the mean Euclidean distance, in pixels of a 512x512 image, between the
landmarks of the restored image and those of the GT image (lower is better, 0 for identical images).

`lmd[dlib]` (offline, 68 iBUG points; our protocol, no paper uses it): inputs float32 RGB NCHW in [0, 1] are
converted to uint8 RGB (x * 255, rounded); the face box is detected on the GT image (HOG, no upsampling, one 2x
step if nothing is found; the largest box), and the 68-point shape predictor runs in that same box on both images
(option `boxes="gt"`, default: detector jitter on the restored image does not enter the score, in the spirit of the
VQFR protocol, whose FAN sees the whole image without detection); `boxes="each"` (column `lmd[dlib,each]`) detects
on each image separately. Coordinates are scaled to 512x512 (x by 512 / W, y by 512 / H) before the distance.
A pair whose face is not found is NaN (missing, counted in `missing`), never 0.

Not implemented yet: `lmd[fan]` (the VQFR protocol, FAN WFLW 98 points, see shared/reference/metric_protocols.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cfbench.metrics.base import MetricKind, MetricSpec
from cfbench.metrics.identity import _DlibPairMetric
from cfbench.metrics.registry import register

LMD_SIZE = 512


class DlibLandmarkDistance(_DlibPairMetric):
    """`lmd[dlib]` (module docstring)."""

    family = "lmd"

    def __init__(self, device: torch.device | str = "cpu", boxes: str = "gt") -> None:
        self.spec = SPEC
        super().__init__(device, boxes)

    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        h, w = pred.shape[-2:]
        scale = np.array([LMD_SIZE / w, LMD_SIZE / h])
        out = []
        for p8, _g8, gface, pbox in self._pairs(pred, gt):
            if gface is None or pbox is None:
                out.append(math.nan)
                self.missing += 1
                continue
            lp = self.backend.landmarks(p8, pbox, 68)
            out.append(float(np.linalg.norm((lp - gface.landmarks68) * scale, axis=1).mean()))
        return torch.tensor(out, dtype=torch.float64)


SPEC = register(
    MetricSpec(
        name="lmd[dlib]",
        family="lmd",
        backend="dlib",
        kind=MetricKind.FULL_REFERENCE,
        higher_is_better=False,
        reference="cfbench's own protocol on dlib 20 shape_predictor_68 (no published reference numbers)",
        build=lambda device="cpu", boxes="gt": DlibLandmarkDistance(device, boxes=boxes),
        description="mean distance (px at 512x512) of the 68 dlib landmarks of restored vs GT, in the GT's HOG box; "
        "NaN where no face is found",
        weights=("dlib_shape_predictor_68", "dlib_shape_predictor_5", "dlib_face_recognition_resnet"),
        options={"boxes": "gt"},
        value_range=(0.0, math.inf),
        unit="px",
    )
)
