"""RetinaFace (ResNet-50) face detection with five landmarks, the detector of CodeFormer's whole-photo pipeline
(facexlib `init_detection_model("retinaface_resnet50")`), our own module with the same state_dict as facexlib's
`detection_Resnet50_Final.pth`.

Architecture (facts from xinntao/facexlib 0.3.0 `facexlib/detection/retinaface.py` and `retinaface_net.py`, config
"Resnet50", itself from biubug6/Pytorch_Retinaface; Deng et al., "RetinaFace: Single-stage Dense Face Localisation
in the Wild", CVPR 2020; checked key for key and shape for shape against
tests/data/faces_analysis/manifest_retinaface_resnet50.json, and output for output against facexlib's module when
it is installed):

- input (N, 3, H, W) BGR float, 0-255 minus the per-channel mean (104, 117, 123) for (B, G, R), any H and W;
- `body`: the torchvision ResNet-50 up to layer4 (no pooling or classifier); the outputs of layer2, layer3 and
  layer4 (512, 1024, 2048 channels at strides 8, 16, 32, spatial size ceil(H / stride) x ceil(W / stride));
- `fpn`: 1x1 conv + BN + ReLU of each to 256 channels (`output1..3`); top-down, the coarser map is upsampled
  (nearest) to the finer one's size, added, then 3x3 conv + BN + ReLU (`merge2` at stride 16, then `merge1` at 8);
- `ssh1..3`, one per level: 3x3 conv + BN to 128 (`conv3X3`); 3x3 conv + BN + ReLU to 64 (`conv5X5_1`), then 3x3
  conv + BN (`conv5X5_2`); from `conv5X5_1` also 3x3 conv + BN + ReLU (`conv7X7_2`), then 3x3 conv + BN
  (`conv7x7_3`, lower-case x as upstream); concatenated (128 + 64 + 64) -> ReLU. Upstream's leaky slope is 0 at
  256 channels, i.e. plain ReLU; convs have no bias, followed by BN;
- heads per level, 2 anchors per location, each a 1x1 conv with bias named `conv1x1`: `ClassHead.i` (2 logits per
  anchor: background, face), `BboxHead.i` (4), `LandmarkHead.i` (10); outputs flattened in (level, row, column,
  anchor) order to (N, P, 2), (N, P, 4), (N, P, 10).

Priors (`prior_boxes`): for the levels with steps 8, 16, 32 and anchor sizes (16, 32), (64, 128), (256, 512) pixels,
at every cell (row i, column j) of the ceil(H / step) x ceil(W / step) grid and every size s, in that order: centre
((j + 0.5) step / W, (i + 0.5) step / H), size (s / W, s / H), all as fractions of the image (computed in float64,
stored in float32 as upstream). Decoding (variances 0.1 and 0.2): box centre = prior centre + 0.1 * offset * prior
size, box size = prior size * exp(0.2 * offset), corners x1 = cx - w / 2, x2 = x1 + w; landmark = prior centre +
0.1 * offset * prior size; times (W, H) for pixels.

Detection (`RetinaFaceDetector.detect`): the image at its own size (upstream's `use_origin_size=True` default), the
face probability (softmax) above `conf_threshold` (0.8, upstream's default), sorted by it, then NMS with IoU 0.4
(`torchvision.ops.nms`, as upstream). The five points are in FFHQ template order (the image-left eye first), which
is RetinaFace's own order. Weights: `retinaface_resnet50` of the weights registry (facexlib release v0.1.0, sha256
pinned); keys may carry DataParallel's `module.` prefix, stripped before the strict load.
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
    """The network (module docstring): (N, 3, H, W) mean-subtracted BGR -> (box offsets (N, P, 4), class logits
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
    """(P, 4) float32 priors (cx, cy, w, h) as fractions of a `height` x `width` image (module docstring)."""
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
    """RetinaFace detection with five points (module docstring). `state_dict`: weights to use instead of the
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
