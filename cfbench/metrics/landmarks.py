"""Landmark distance `lmd[<backend>]`: the mean Euclidean distance, in pixels of a 512x512 image, between the
landmarks of the restored image and those of the GT image (lower is better, 0 for identical images).

`lmd[dlib]` (offline, 68 iBUG points; our protocol, no paper uses it): inputs float32 RGB NCHW in [0, 1] are
converted to uint8 RGB (x * 255, rounded); the face box is detected on the GT image (HOG, no upsampling, one 2x
step if nothing is found; the largest box), and the 68-point shape predictor runs in that same box on both images
(option `boxes="gt"`, default: detector jitter on the restored image does not enter the score, in the spirit of the
VQFR protocol, whose FAN sees the whole image without detection); `boxes="each"` (column `lmd[dlib,each]`) detects
on each image separately. Coordinates are scaled to 512x512 (x by 512 / W, y by 512 / H) before the distance.
A pair whose face is not found is NaN (missing, counted in `missing`), never 0.

`lmd[fan]` (the VQFR protocol, `metric_paper/calculate_landmark_distance.py`; see cfbench.face.fan and
docs/face/fan.md): the AdaptiveWing FAN (WFLW, 98 points) sees each whole image
(no detection: every row has a value, none is missing), rounded to uint8, resized to 256x256 (cv2 INTER_LINEAR),
in [0, 1]; the last module's heatmaps are decoded with upstream's argmax, quarter-pixel shift and edge quirks, at
the input's pixel scale, then scaled to 512x512 (identity for the protocol's 512 inputs); per image, the mean over
the 98 points of the Euclidean distance between GT and restored landmarks. Differences from the script: the network
runs batched (per-image results are unchanged) and images of other sizes are scaled to 512 instead of measured in
their own pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cfbench import weights
from cfbench.hashing import content_hash
from cfbench.metrics.base import MetricKind, MetricSpec, PerImageMetric
from cfbench.metrics.gt_landmarks import CachedGtSide, GtMemo, image_digest
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
        for p8, _g8, _digest, gface, pbox in self._pairs(pred, gt):
            if gface is None or pbox is None:
                out.append(math.nan)
                self.missing += 1
                continue
            lp = self.backend.landmarks(p8, pbox, 68)
            out.append(float(np.linalg.norm((lp - gface.landmarks68) * scale, axis=1).mean()))
        return torch.tensor(out, dtype=torch.float64)


class FanLandmarkDistance(CachedGtSide, PerImageMetric):
    """`lmd[fan]` (module docstring). `state_dict`: FAN weights to use instead of the registered `fan_wflw` file.
    The GT landmarks are a `GtMemo` (98 points at the GT's pixel scale), cached per dataset by the sweep and folder
    scoring (`cfbench.metrics.gt_landmarks`)."""

    def __init__(
        self,
        device: torch.device | str = "cpu",
        state_dict: dict[str, torch.Tensor] | None = None,
        batch_size: int = 8,
    ) -> None:
        super().__init__(device)
        from cfbench.face.fan import NUM_LANDMARKS, FanLandmarks

        self.spec = FAN_SPEC
        self.fan = FanLandmarks(self.device, state_dict=state_dict, batch_size=batch_size)
        self.registered_weights = state_dict is None
        self.gt_memo = GtMemo(NUM_LANDMARKS * 2)

    def gt_cache_key(self) -> dict[str, Any]:
        if self.registered_weights:
            weights_id = weights.sha256_file(weights.require("fan_wflw"))
        else:  # weights given in memory: their contents name them
            state = self.fan.net.state_dict()
            weights_id = content_hash(state[k].detach().cpu().numpy().tobytes() for k in sorted(state))
        return {
            "backend": "fan",
            "weights": weights_id,
            "protocol": "VQFR whole image, cv2 256 INTER_LINEAR",
            "version": 1,
        }

    def fill_gt(self, gt: torch.Tensor) -> None:
        self._gt_landmarks(gt)

    def _gt_landmarks(self, gt: torch.Tensor) -> torch.Tensor:
        """(N, 98, 2) float64 GT landmarks in the GT's pixels; only images not in the memo go through the network."""
        from cfbench.face.backends import as_uint8_rgb

        digests = [image_digest(as_uint8_rgb(g)) for g in gt.cpu()]
        todo = sorted({d: i for i, d in enumerate(digests) if self.gt_memo.get(d) is None}.values())
        if todo:
            found = self.fan.landmarks(gt[todo]).cpu().numpy()
            for i, points in zip(todo, found, strict=True):
                self.gt_memo.put(digests[i], points.ravel())
        rows = np.stack([self.gt_memo.get(d) for d in digests]).reshape(len(digests), -1, 2)
        return torch.from_numpy(rows).to(gt.device)

    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        h, w = pred.shape[-2:]
        scale = torch.tensor([LMD_SIZE / w, LMD_SIZE / h], dtype=torch.float64, device=pred.device)
        lp = self.fan.landmarks(pred) * scale
        lg = self._gt_landmarks(gt) * scale
        return torch.linalg.vector_norm(lp - lg, dim=2).mean(dim=1).cpu()


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
        label="LMD",
        role="fidelity",
        identity=0.0,
    )
)

FAN_SPEC = register(
    MetricSpec(
        name="lmd[fan]",
        family="lmd",
        backend="fan",
        kind=MetricKind.FULL_REFERENCE,
        higher_is_better=False,
        reference="VQFR metric_paper/calculate_landmark_distance.py (AdaptiveWing FAN, WFLW 98 points, whole image)",
        build=lambda device="cpu": FanLandmarkDistance(device),
        description="mean distance (px at 512x512) of the 98 FAN (WFLW) landmarks of restored vs GT, whole image "
        "resized to 256, no detection (VQFR protocol)",
        weights=("fan_wflw",),
        value_range=(0.0, math.inf),
        unit="px",
        label="LMD",
        role="fidelity",
        identity=0.0,
    )
)
