"""ArcFace ResNet-18 of the GFPGAN / VQFR identity protocol ("Deg."): GFPGAN's `ResNetArcFace(block='IRBlock',
layers=[2, 2, 2, 2], use_se=False)` (a port of ronghuaiyang/arcface-pytorch `resnet_face18`), our own module with
the same state_dict, checked key for key against tests/data/faces_analysis/manifest_arcface_resnet18.json.

Network input: (N, 1, 128, 128) gray in [-1, 1]; output: (N, 512) embeddings, not L2-normalised. Weights:
`arcface_resnet18` (GFPGAN's release; VQFR's `resnet18_110.pth` with its `module.` prefix also loads, strictly).
Preprocessing variants (`PREPROCESS`), named because they give different numbers: `vqfr` (default, the VQFR paper
numbers: uint8, OpenCV gray, cv2 INTER_LINEAR resize) and `gfpgan` (GFPGAN's training-loss gray and bilinear
resize, no rounding). The architecture and the variants in detail: docs/face/arcface.md.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfbench import weights
from cfbench.imageio import to_uint8
from cfbench.state_dict import load_checked, load_state_dict_file, strip_prefix

INPUT_SIZE = 128
EMBEDDING_DIM = 512


class IRBlock(nn.Module):
    """The improved residual block (BN first, PReLU shared by the inner activation and the output)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, inplanes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(self.bn0(x))))))
        skip = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + skip)


class ResNetArcFace(nn.Module):
    """ResNet-18 face embedding (use_se=False): (N, 1, 128, 128) in [-1, 1] -> (N, 512)."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(2, 2)
        inplanes = 64
        for i, (planes, stride) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2), strict=True)):
            blocks = []
            for j in range(layers[i]):
                blocks.append(IRBlock(inplanes, planes, stride if j == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn4 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout(0.5)
        self.fc5 = nn.Linear(512 * 8 * 8, EMBEDDING_DIM)
        self.bn5 = nn.BatchNorm1d(EMBEDDING_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (1, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"ResNetArcFace expects (N, 1, 128, 128); got {tuple(x.shape)}")
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.flatten(1)))


def preprocess_vqfr(images: torch.Tensor) -> torch.Tensor:
    """`vqfr` variant (docs/face/arcface.md): (N, 3, H, W) [0, 1] -> (N, 1, 128, 128) float32 in [-1, 1]."""
    u8 = to_uint8(images)
    out = []
    for img in u8:
        gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        gray = cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        out.append((gray.astype(np.float32) - 127.5) / 127.5)
    return torch.from_numpy(np.stack(out))[:, None].to(images.device)


GFPGAN_GRAY = (0.2989, 0.5870, 0.1140)


def preprocess_gfpgan(images: torch.Tensor) -> torch.Tensor:
    """`gfpgan` variant (docs/face/arcface.md): (N, 3, H, W) [0, 1] -> (N, 1, 128, 128) float32 in [-1, 1]."""
    x = images.float() * 2 - 1
    w = torch.tensor(GFPGAN_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    gray = (x * w).sum(1, keepdim=True)
    return F.interpolate(gray, (INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)


PREPROCESS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"vqfr": preprocess_vqfr, "gfpgan": preprocess_gfpgan}


def load_arcface(state_dict: dict[str, torch.Tensor] | None = None) -> ResNetArcFace:
    """A ResNetArcFace in eval mode with `state_dict`, or with the registered `arcface_resnet18` file (raises
    MissingWeightsError naming the file, its URL and where to put it when absent). Strict: a key or shape mismatch
    raises CheckpointError."""
    net = ResNetArcFace()
    if state_dict is None:
        state_dict, _ = load_state_dict_file(weights.require("arcface_resnet18"))
    load_checked(net, strip_prefix(state_dict), "the ArcFace ResNet-18 (use_se=False) checkpoint")
    return net.eval()
