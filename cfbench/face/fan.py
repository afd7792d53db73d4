"""AdaptiveWing FAN (WFLW, 98 landmarks; Wang et al., "Adaptive Wing Loss for Robust Face Alignment via Heatmap
Regression", ICCV 2019) of the VQFR landmark-distance protocol ("LMD"), our own module with the state_dict of
facexlib's `alignment_WFLW_4HG.pth` (weights `fan_wflw`), checked key for key against
tests/data/faces_analysis/manifest_fan_wflw.json.

`FAN`: input (N, 3, 256, 256) RGB in [0, 1]; output a list of the 4 modules' heatmaps, each (N, 99, 64, 64) (98
points and a boundary map). `FanLandmarks.landmarks`: whole images (no detection), rounded to uint8, resized to
256 with cv2 INTER_LINEAR, decoded with upstream's quirks (`decode_heatmaps`) to (N, 98, 2) float64 (x, y) in the
input's pixels; results do not depend on the batch. The architecture, the preprocessing and the differences from
upstream in detail: docs/face/fan.md.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfbench import weights
from cfbench.errors import BadInputError
from cfbench.imageio import to_uint8
from cfbench.state_dict import load_checked, load_state_dict_file

INPUT_SIZE = 256
HEATMAP_SIZE = 64
NUM_LANDMARKS = 98
NUM_MODULES = 4
HOURGLASS_DEPTH = 4
BOUNDARY_THRESHOLD = 0.05


def _coord_channels(n: int, height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two coordinate channels (row index, column index), each (n, 1, height, width) in [-1, 1]."""
    rows = torch.arange(height, dtype=like.dtype, device=like.device) / (height - 1) * 2 - 1
    cols = torch.arange(width, dtype=like.dtype, device=like.device) / (width - 1) * 2 - 1
    a = rows.view(1, 1, height, 1).expand(n, 1, height, width)
    b = cols.view(1, 1, 1, width).expand(n, 1, height, width)
    return a, b


class CoordConv(nn.Module):
    """A conv that sees two coordinate channels and their radius (and, with `boundary`, the coordinates masked by
    the previous boundary heatmap) after its input channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int, boundary: bool):
        super().__init__()
        self.boundary = boundary
        self.conv = nn.Conv2d(in_channels + 3 + (2 if boundary else 0), out_channels, kernel, stride, padding)

    def forward(self, x: torch.Tensor, heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        a, b = _coord_channels(n, h, w, x)
        r = torch.sqrt(a * a + b * b)
        parts = [x, a, b, r / r.max()]
        if self.boundary:
            if heatmaps is None:
                raise ValueError("this CoordConv needs the previous module's heatmaps")
            on = heatmaps[:, -1:].clamp(0.0, 1.0) > BOUNDARY_THRESHOLD
            parts += [torch.where(on, a, torch.zeros_like(a)), torch.where(on, b, torch.zeros_like(b))]
        return self.conv(torch.cat(parts, 1))


class ConvBlock(nn.Module):
    """Pre-activated multi-scale residual block (see docs/face/fan.md)."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        half, quarter = out_planes // 2, out_planes // 4
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, half, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, quarter, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = nn.Conv2d(quarter, quarter, 3, 1, 1, bias=False)
        self.downsample = None
        if in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.BatchNorm2d(in_planes), nn.ReLU(), nn.Conv2d(in_planes, out_planes, 1, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1 = self.conv1(F.relu(self.bn1(x)))
        o2 = self.conv2(F.relu(self.bn2(o1)))
        o3 = self.conv3(F.relu(self.bn3(o2)))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.cat((o1, o2, o3), 1) + skip


class HourGlass(nn.Module):
    """CoordConv then a recursive hourglass of `depth` levels on 256 channels. Submodules are registered in the
    upstream order (b1_d, b2_d, ..., b1_1, b2_1, b2_plus_1, b3_1, ..., b3_d) so the state_dict order matches."""

    def __init__(self, depth: int, features: int, first: bool) -> None:
        super().__init__()
        self.depth = depth
        self.coordconv = CoordConv(features, features, 1, 1, 0, boundary=not first)
        self._add_level(depth, features)

    def _add_level(self, level: int, features: int) -> None:
        self.add_module(f"b1_{level}", ConvBlock(features, features))
        self.add_module(f"b2_{level}", ConvBlock(features, features))
        if level > 1:
            self._add_level(level - 1, features)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(features, features))
        self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self._modules[f"b2_plus_{level}"](low)
        low = self._modules[f"b3_{level}"](low)
        return up + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor, heatmaps: torch.Tensor | None) -> torch.Tensor:
        return self._level(self.depth, self.coordconv(x, heatmaps))


class FAN(nn.Module):
    """AdaptiveWing FAN: (N, 3, 256, 256) RGB in [0, 1] -> list of `num_modules` heatmap tensors
    (N, num_landmarks + 1, 64, 64); the last is the prediction, its last channel the boundary map."""

    def __init__(self, num_modules: int = NUM_MODULES, num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.num_modules = num_modules
        self.conv1 = CoordConv(3, 64, 7, 2, 3, boundary=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, 256)
        for i in range(num_modules):
            self.add_module(f"m{i}", HourGlass(HOURGLASS_DEPTH, 256, first=i == 0))
            self.add_module(f"top_m_{i}", ConvBlock(256, 256))
            self.add_module(f"conv_last{i}", nn.Conv2d(256, 256, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(256))
            self.add_module(f"l{i}", nn.Conv2d(256, num_landmarks + 1, 1))
            if i < num_modules - 1:
                self.add_module(f"bl{i}", nn.Conv2d(256, 256, 1))
                self.add_module(f"al{i}", nn.Conv2d(num_landmarks + 1, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"FAN expects (N, 3, {INPUT_SIZE}, {INPUT_SIZE}); got {tuple(x.shape)}")
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.conv4(self.conv3(F.avg_pool2d(self.conv2(x), 2, stride=2)))
        features, heatmaps, outputs = x, None, []
        for i in range(self.num_modules):
            y = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](features, heatmaps))
            y = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](y)))
            heatmaps = self._modules[f"l{i}"](y)
            outputs.append(heatmaps)
            if i < self.num_modules - 1:
                features = features + self._modules[f"bl{i}"](y) + self._modules[f"al{i}"](heatmaps)
        return outputs


def load_fan(state_dict: dict[str, torch.Tensor] | None = None) -> FAN:
    """A FAN (4 modules, 98 landmarks) in eval mode with `state_dict`, or with the registered `fan_wflw` file (raises
    MissingWeightsError naming the file, its URL and where to put it when absent). Strict: a key or shape mismatch
    raises a one-line CheckpointError."""
    net = FAN()
    if state_dict is None:
        state_dict, _ = load_state_dict_file(weights.require("fan_wflw"), wrappers=("state_dict",))
    load_checked(net, state_dict, "the FAN WFLW (4 hourglasses, 98 landmarks) checkpoint")
    return net.eval()


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 3, 256, 256) float32 in [0, 1]: rounded to uint8, `cv2.resize` INTER_LINEAR
    on the uint8 image (as upstream, which resizes the decoded file), / 255."""
    u8 = to_uint8(images)
    out = np.empty((len(u8), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    for i, img in enumerate(u8):
        out[i] = cv2.resize(np.ascontiguousarray(img), (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255.0).to(images.device)


def decode_heatmaps(heatmaps: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Landmarks (N, P, 2) float64 (x, y) in pixels of a `width` x `height` image from heatmaps (N, P, h, w), as
    upstream's `calculate_points`, per image:

    1. the argmax i of each flattened map (the first one on ties): x = i % w, y = i // w;
    2. quarter-pixel shift: x += 0.25 * sign(m[i + 1] - m[i - 1]), y += 0.25 * sign(m[i + w] - m[i - w]), on the
       flattened map: no row-wrap check for x (a peak at the end of a row compares with the next row's first
       pixel); m[i - 1] at i = 0 is the map's last pixel (NumPy's negative index), and m[i + 1] past the end wraps
       to the first pixel (upstream raises IndexError there);
    3. the edge quirk: if ANY of the image's P peaks has i + w >= h * w, "m[i + w]" of ALL its landmarks is the last
       pixel of their map (upstream: flat index 4095); if ANY has i - w <= 0 (note: <=, so i = w triggers it),
       "m[i - w]" of ALL is the first pixel (flat index 0);
    4. + 0.5, then x * width / w, y * height / h.
    """
    if heatmaps.ndim != 4:
        raise BadInputError(f"expected heatmaps (N, P, h, w); got shape {tuple(heatmaps.shape)}")
    n, p, h, w = heatmaps.shape
    hw = h * w
    flat = heatmaps.detach().reshape(n, p, hw)
    idx = flat.argmax(dim=2)

    def at(i: torch.Tensor) -> torch.Tensor:
        return flat.gather(2, (i % hw)[..., None])[..., 0]

    x_diff = at(idx + 1) - at(idx - 1)
    hit_bottom = ((idx + w) >= hw).any(dim=1, keepdim=True)  # per image, over its P landmarks
    hit_top = ((idx - w) <= 0).any(dim=1, keepdim=True)
    y_next = torch.where(hit_bottom, flat[..., hw - 1], at(idx + w))
    y_prev = torch.where(hit_top, flat[..., 0], at(idx - w))
    shift = torch.sign(torch.stack((x_diff, y_next - y_prev), dim=2)).double() * 0.25
    xy = torch.stack((idx % w, idx // w), dim=2).double() + shift + 0.5
    return xy * torch.tensor([width / w, height / h], dtype=torch.float64, device=xy.device)


class FanLandmarks:
    """98 WFLW landmarks of whole face images with the VQFR protocol (docs/face/fan.md).

    `landmarks(images)`: (N, 3, H, W) RGB in [0, 1] -> (N, 98, 2) float64 (x, y) in pixels of the input image (the
    protocol's inputs are 512x512). Runs `batch_size` images per forward pass on `device`.
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        state_dict: dict[str, torch.Tensor] | None = None,
        batch_size: int = 8,
    ) -> None:
        if batch_size < 1:
            raise BadInputError(f"batch_size must be >= 1; got {batch_size}")
        self.device = torch.device(device)
        self.net = load_fan(state_dict).to(self.device)
        self.batch_size = batch_size

    @torch.no_grad()
    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """The last module's 98 landmark heatmaps (N, 98, 64, 64), boundary channel dropped."""
        outs = [self.net(preprocess(chunk).to(self.device))[-1][:, :-1] for chunk in images.split(self.batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, NUM_LANDMARKS, HEATMAP_SIZE, HEATMAP_SIZE)

    def landmarks(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise BadInputError(f"expected an RGB batch (N, 3, H, W); got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        return decode_heatmaps(self.heatmaps(images), float(w), float(h))


def protocol_scale(width: int, height: int, size: int = 512) -> tuple[float, float]:
    """Factors that bring (x, y) in a `width` x `height` image to the protocol's `size` x `size` scale."""
    if width < 1 or height < 1:
        raise BadInputError(f"empty image {width}x{height}")
    return size / width, size / height


__all__ = [
    "FAN",
    "FanLandmarks",
    "decode_heatmaps",
    "load_fan",
    "preprocess",
    "protocol_scale",
]
