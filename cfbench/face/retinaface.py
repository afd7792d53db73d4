"""RetinaFace (ResNet-50) face detection with five landmarks (Deng et al., CVPR 2020), the detector of CodeFormer's
whole-photo pipeline (facexlib `init_detection_model("retinaface_resnet50")`, xinntao/facexlib 0.3.0), our own module
with the state_dict of facexlib's `detection_Resnet50_Final.pth` (weights `retinaface_resnet50`, sha256 pinned).

`RetinaFaceDetector` (backend `retinaface`): input an RGB image (`backends.as_uint8_rgb`) at its own size; output
the faces whose probability exceeds 0.8, sorted by it, after NMS at IoU 0.4, each with its box and five points in
FFHQ template order (no 68 landmarks). Tolerance: box and landmark offsets within 1e-5 and probabilities within 1e-6
of facexlib's network (tests/face/test_retinaface.py). The architecture, the priors and the decoding in detail:
docs/face/retinaface.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfbench import weights
from cfbench.errors import BadInputError
from cfbench.face.backends import Face, FaceBox, as_uint8_rgb, register_backend
from cfbench.state_dict import load_checked, load_state_dict_file, strip_prefix

MEAN_BGR = (104.0, 117.0, 123.0)
STEPS = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)
CHANNELS = 256
ANCHORS_PER_CELL = 2


def _conv_bn(cin: int, cout: int, kernel: int, relu: bool) -> nn.Sequential:
    """conv (no bias, 'same' padding) -> BN [-> ReLU]; keys `.0` and `.1` as upstream's `conv_bn*`."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResNet50Body(nn.Module):
    """torchvision's ResNet-50 stem and layer1..4 (key names `conv1`, `bn1`, `layer1`...), returning the layer2,
    layer3 and layer4 features."""

    def __init__(self) -> None:
        super().__init__()
        import torchvision  # here, so that importing cfbench.face stays light

        r = torchvision.models.resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int] = (512, 1024, 2048)) -> None:
        super().__init__()
        self.output1, self.output2, self.output3 = (_conv_bn(c, CHANNELS, 1, True) for c in in_channels)
        self.merge1 = _conv_bn(CHANNELS, CHANNELS, 3, True)
        self.merge2 = _conv_bn(CHANNELS, CHANNELS, 3, True)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        p4 = self.merge2(p4 + F.interpolate(p5, size=p4.shape[-2:], mode="nearest"))
        p3 = self.merge1(p3 + F.interpolate(p4, size=p3.shape[-2:], mode="nearest"))
        return [p3, p4, p5]


class SSH(nn.Module):
    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(channels, channels // 2, 3, False)
        self.conv5X5_1 = _conv_bn(channels, channels // 4, 3, True)
        self.conv5X5_2 = _conv_bn(channels // 4, channels // 4, 3, False)
        self.conv7X7_2 = _conv_bn(channels // 4, channels // 4, 3, True)
        self.conv7x7_3 = _conv_bn(channels // 4, channels // 4, 3, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(mid), self.conv7x7_3(self.conv7X7_2(mid))], 1))


class Head(nn.Module):
    """1x1 conv to `per_anchor` values for each of the anchors of a cell; (N, C, h, w) -> (N, h * w * anchors,
    per_anchor) in (row, column, anchor) order."""

    def __init__(self, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(CHANNELS, ANCHORS_PER_CELL * per_anchor, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.per_anchor)


class RetinaFaceNet(nn.Module):
    """The network (docs/face/retinaface.md): (N, 3, H, W) mean-subtracted BGR -> (box offsets (N, P, 4), class logits
    (N, P, 2), landmark offsets (N, P, 10)), P = the number of `prior_boxes(H, W)`."""

    def __init__(self) -> None:
        super().__init__()
        self.body = ResNet50Body()
        self.fpn = FPN()
        self.ssh1, self.ssh2, self.ssh3 = SSH(), SSH(), SSH()
        self.ClassHead = nn.ModuleList(Head(2) for _ in STEPS)
        self.BboxHead = nn.ModuleList(Head(4) for _ in STEPS)
        self.LandmarkHead = nn.ModuleList(Head(10) for _ in STEPS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        levels = self.fpn(self.body(x))
        feats = [ssh(f) for ssh, f in zip((self.ssh1, self.ssh2, self.ssh3), levels, strict=True)]

        def run(heads: nn.ModuleList) -> torch.Tensor:
            return torch.cat([h(f) for h, f in zip(heads, feats, strict=True)], dim=1)

        return run(self.BboxHead), run(self.ClassHead), run(self.LandmarkHead)


def prior_boxes(height: int, width: int) -> torch.Tensor:
    """(P, 4) float32 priors (cx, cy, w, h) as fractions of a `height` x `width` image (docs/face/retinaface.md)."""
    out = []
    for sizes, step in zip(ANCHOR_SIZES, STEPS, strict=True):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy = (torch.arange(rows, dtype=torch.float64) + 0.5) * step / height
        cx = (torch.arange(cols, dtype=torch.float64) + 0.5) * step / width
        cyy, cxx = torch.meshgrid(cy, cx, indexing="ij")
        per_size = [
            torch.stack([cxx, cyy, torch.full_like(cxx, s / width), torch.full_like(cxx, s / height)], -1)
            for s in sizes
        ]
        out.append(torch.stack(per_size, 2).reshape(-1, 4))
    return torch.cat(out).float()


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Box offsets (..., P, 4) and priors (P, 4) -> boxes (..., P, 4) (x1, y1, x2, y2) as fractions."""
    centre = priors[..., :2] + loc[..., :2] * VARIANCES[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    top_left = centre - size / 2
    return torch.cat([top_left, top_left + size], dim=-1)


def decode_landmarks(offsets: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Landmark offsets (..., P, 10) and priors (P, 4) -> five points (..., P, 5, 2) (x, y) as fractions."""
    pts = offsets.reshape(*offsets.shape[:-1], 5, 2)
    return priors[..., None, :2] + pts * VARIANCES[0] * priors[..., None, 2:]


def load_retinaface(state_dict: dict[str, torch.Tensor] | None = None) -> RetinaFaceNet:
    """A RetinaFaceNet in eval mode with `state_dict`, or with the registered `retinaface_resnet50` file (raises
    MissingWeightsError naming the file, its URL and where to put it when absent). Strict: a key or shape mismatch
    raises a one-line CheckpointError."""
    net = RetinaFaceNet()
    if state_dict is None:  # a bare (DataParallel-prefixed) state_dict, read with weights_only=True
        state_dict, _ = load_state_dict_file(weights.require("retinaface_resnet50"))
    load_checked(net, strip_prefix(state_dict), "the RetinaFace ResNet-50 checkpoint")
    return net.eval()


def preprocess(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> (1, 3, H, W) float32 BGR, 0-255 minus MEAN_BGR."""
    bgr = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute(2, 0, 1).float()
    return (bgr - torch.tensor(MEAN_BGR).view(3, 1, 1))[None]


@register_backend("retinaface")
class RetinaFaceDetector:
    """RetinaFace detection with five points (docs/face/retinaface.md). `state_dict`: weights to use instead of the
    registered file. `analyze` gives `Face`s without 68 landmarks (`landmarks68` is None)."""

    def __init__(
        self,
        device: str = "cpu",
        conf_threshold: float = 0.8,
        nms_threshold: float = 0.4,
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if not 0 <= conf_threshold < 1 or not 0 < nms_threshold <= 1:
            raise BadInputError(f"thresholds must be in [0, 1); got conf {conf_threshold}, nms {nms_threshold}")
        self.device = torch.device(device)
        self.net = load_retinaface(state_dict).to(self.device)
        self.conf_threshold = conf_threshold
        self.nms_threshold = nms_threshold

    @torch.no_grad()
    def detect_five(self, image: Any) -> list[tuple[FaceBox, np.ndarray]]:
        """(box in pixels with the face probability as score, five points (5, 2) in pixels) per face, best first."""
        import torchvision

        img = as_uint8_rgb(image)
        h, w = img.shape[:2]
        loc, logits, offsets = self.net(preprocess(img).to(self.device))
        priors = prior_boxes(h, w).to(self.device)
        scores = F.softmax(logits[0], dim=-1)[:, 1]
        keep = scores > self.conf_threshold
        scale = torch.tensor([w, h], dtype=torch.float32, device=self.device)
        boxes = decode_boxes(loc[0][keep], priors[keep]) * scale.repeat(2)
        points = decode_landmarks(offsets[0][keep], priors[keep]) * scale
        scores = scores[keep]
        order = torchvision.ops.nms(boxes, scores, self.nms_threshold)  # sorted by decreasing score
        return [
            (FaceBox(*(float(v) for v in boxes[i]), float(scores[i])), points[i].double().cpu().numpy())
            for i in order.tolist()
        ]

    def detect(self, image: Any) -> list[FaceBox]:
        return [box for box, _ in self.detect_five(image)]

    def analyze(self, image: Any) -> list[Face]:
        return [Face(box, None, five) for box, five in self.detect_five(image)]
