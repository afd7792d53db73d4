"""Face parsing for paste-back masks: ParseNet (19 CelebAMask-HQ classes at 512x512; xinntao/facexlib 0.3.0
`ParseNet(in_size=512, out_size=512, parsing_ch=19)`, from PSFRGAN, Chen et al. CVPR 2021), the parsing network of
CodeFormer's `FaceRestoreHelper(use_parse=True)`, our own module with the state_dict of facexlib's
`parsing_parsenet.pth` (weights `parsing_parsenet`, sha256 pinned); and the face mask CodeFormer builds from it.

`ParseNet`: input (N, 3, H, W) RGB in [-1, 1], H and W multiples of 16 (512 for the released weights); output the
class logits (N, 19, H, W) and PSFRGAN's image (N, 3, H, W). `FaceParser.masks`: the soft face mask of each restored
crop (float in [0, 1], the crop's size; `FACE_CLASSES` blurred twice, a 10-pixel frame zeroed). Tolerance: logits
and image within 1e-5 of facexlib's module (tests/face/test_parsing.py). The architecture, the class list and the
mask recipe in detail: docs/face/parsing.md.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from cfbench import weights
from cfbench.errors import BadInputError
from cfbench.state_dict import load_checked, load_state_dict_file

INPUT_SIZE = 512
NUM_CLASSES = 19
CLASSES = (
    "background",
    "skin",
    "nose",
    "eyeglasses",
    "left_eye",
    "right_eye",
    "left_brow",
    "right_brow",
    "left_ear",
    "right_ear",
    "mouth",
    "upper_lip",
    "lower_lip",
    "hair",
    "hat",
    "earring",
    "necklace",
    "neck",
    "cloth",
)
FACE_CLASSES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15)
BLUR_KERNEL, BLUR_SIGMA, BLUR_PASSES = 101, 11.0, 2
FRAME = 10  # pixels at 512 zeroed on each side after the blur

ENCODER = ((64, 128), (128, 256), (256, 256), (256, 256))
BODY_BLOCKS = 10
DECODER = ((256, 256), (256, 256), (256, 128), (128, 64))


class _Norm(nn.Module):
    """BatchNorm under upstream's key path `norm.norm`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ConvLayer(nn.Module):
    """[nearest x2 upsample if scale 'up'] -> reflect-padded 3x3 conv (stride 2 if 'down') [-> BN] [-> LeakyReLU]."""

    def __init__(self, cin: int, cout: int, scale: str = "none", norm: bool = False, act: bool = False) -> None:
        super().__init__()
        self.upsample = scale == "up"
        stride = 2 if scale == "down" else 1
        self.conv2d = nn.Conv2d(cin, cout, 3, stride, padding=1, padding_mode="reflect", bias=not norm)
        self.norm = _Norm(cout) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        return self.act(self.norm(self.conv2d(x)))


class ResidualBlock(nn.Module):
    """shortcut(x) + conv2(conv1(x)); `scale` 'down' halves, 'up' doubles the size (docs/face/parsing.md)."""

    def __init__(self, cin: int, cout: int, scale: str = "none") -> None:
        super().__init__()
        plain = scale == "none" and cin == cout
        self.shortcut_func = nn.Identity() if plain else ConvLayer(cin, cout, scale)
        self.conv1 = ConvLayer(cin, cout, "up" if scale == "up" else "none", norm=True, act=True)
        self.conv2 = ConvLayer(cout, cout, "down" if scale == "down" else "none", norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut_func(x) + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """(N, 3, H, W) RGB in [-1, 1] -> (class logits (N, 19, H, W), image (N, 3, H, W)); H, W multiples of 16."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(ConvLayer(3, ENCODER[0][0]), *(ResidualBlock(a, b, "down") for a, b in ENCODER))
        width = ENCODER[-1][1]
        self.body = nn.Sequential(*(ResidualBlock(width, width) for _ in range(BODY_BLOCKS)))
        self.decoder = nn.Sequential(*(ResidualBlock(a, b, "up") for a, b in DECODER))
        self.out_img_conv = ConvLayer(DECODER[-1][1], 3)
        self.out_mask_conv = ConvLayer(DECODER[-1][1], NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encoder(x)
        x = self.decoder(feat + self.body(feat))
        return self.out_mask_conv(x), self.out_img_conv(x)


def load_parsenet(state_dict: dict[str, torch.Tensor] | None = None) -> ParseNet:
    """A ParseNet in eval mode with `state_dict`, or with the registered `parsing_parsenet` file (raises
    MissingWeightsError naming the file, its URL and where to put it when absent). Strict: a key or shape mismatch
    raises a one-line CheckpointError."""
    net = ParseNet()
    if state_dict is None:  # a bare state_dict, read with weights_only=True
        state_dict, _ = load_state_dict_file(weights.require("parsing_parsenet"))
    load_checked(net, state_dict, "the ParseNet checkpoint")
    return net.eval()


def preprocess(faces: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> the network input, (x - 0.5) / 0.5 in [-1, 1]."""
    return (faces - 0.5) / 0.5


def class_mask(labels: np.ndarray) -> np.ndarray:
    """The blurred face mask (H, W) float32 in [0, 1] of a class map `labels` (H, W) (512x512 for CodeFormer's
    blur and frame sizes; docs/face/parsing.md)."""
    if labels.ndim != 2:
        raise BadInputError(f"expected a (H, W) class map; got shape {labels.shape}")
    mask = np.isin(labels, FACE_CLASSES).astype(np.float64)
    for _ in range(BLUR_PASSES):
        mask = cv2.GaussianBlur(mask, (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)
    mask[:FRAME], mask[-FRAME:], mask[:, :FRAME], mask[:, -FRAME:] = 0, 0, 0, 0
    return mask.astype(np.float32)


def _as_unit_float(faces: np.ndarray) -> np.ndarray:
    if faces.ndim != 4 or faces.shape[3] != 3 or faces.shape[1] != faces.shape[2]:
        raise BadInputError(f"expected square RGB crops (N, S, S, 3); got shape {faces.shape}")
    if faces.dtype == np.uint8:
        return faces.astype(np.float32) / 255.0
    if faces.dtype != np.float32:
        raise BadInputError(f"expected uint8 or float32 crops in [0, 1]; got {faces.dtype}")
    return faces


class FaceParser:
    """ParseNet on aligned face crops: class maps and CodeFormer's face masks (docs/face/parsing.md). `state_dict`:
    weights to use instead of the registered file."""

    def __init__(self, device: str | torch.device = "cpu", state_dict: dict[str, torch.Tensor] | None = None) -> None:
        self.device = torch.device(device)
        self.net = load_parsenet(state_dict).to(self.device)

    @torch.no_grad()
    def labels(self, faces: np.ndarray) -> np.ndarray:
        """Crops (N, S, S, 3) RGB, uint8 or float32 in [0, 1] -> class maps (N, 512, 512) int64 (argmax of the
        logits), each crop resized to 512 (bilinear) first."""
        crops = _as_unit_float(np.asarray(faces))
        size = (INPUT_SIZE, INPUT_SIZE)
        resized = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in crops])
        x = preprocess(torch.from_numpy(resized).permute(0, 3, 1, 2).to(self.device))
        logits, _ = self.net(x)
        return logits.argmax(dim=1).cpu().numpy()

    def masks(self, faces: np.ndarray) -> list[np.ndarray]:
        """Crops (N, S, S, 3) as `labels` -> their face masks, each (S, S) float32 in [0, 1]."""
        side = np.asarray(faces).shape[1]
        return [cv2.resize(class_mask(lab), (side, side), interpolation=cv2.INTER_LINEAR) for lab in self.labels(faces)]
