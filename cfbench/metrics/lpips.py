"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018),
our own module equal to `lpips.LPIPS(net=..., version='0.1')` of the `lpips` package 0.1.4 to 1e-5. Lower is
better; full reference.

Input: restored and GT float32 RGB NCHW in [0, 1] (checked; mapped to [-1, 1] here, once). Output: one value per
image, 0 for identical images. Variants: `lpips[vgg]` (the face-restoration papers' protocol: VQFR, CodeFormer,
GFPGAN; `lpips` is its alias) and `lpips[alex]` (the package's default). Weights are registered files, never
downloaded; fp32 only, TF32 off on CUDA so GPU and CPU agree. The computation step by step and the differences from
the package: docs/metrics/lpips.md.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from cfbench import weights
from cfbench.metrics.base import MetricKind, MetricSpec, PerImageMetric
from cfbench.metrics.registry import register
from cfbench.state_dict import check_state_dict, load_prefixed, load_state_dict_file

# The layers of torchvision's `features` up to the last tap: ("conv", in, out, kernel, stride, padding),
# ("relu",) or ("pool", kernel, stride). Positions in these lists are the `features.<i>` indices of the checkpoints.
_C, _R = "conv", ("relu",)
_ALEX_LAYERS = [
    (_C, 3, 64, 11, 4, 2), _R, ("pool", 3, 2),
    (_C, 64, 192, 5, 1, 2), _R, ("pool", 3, 2),
    (_C, 192, 384, 3, 1, 1), _R,
    (_C, 384, 256, 3, 1, 1), _R,
    (_C, 256, 256, 3, 1, 1), _R,
]  # fmt: skip


def _vgg16_layers() -> list[tuple]:
    layers: list[tuple] = []
    c_in = 3
    for block, (width, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        if block:
            layers.append(("pool", 2, 2))
        for _ in range(convs):
            layers += [(_C, c_in, width, 3, 1, 1), _R]
            c_in = width
    return layers


NETS: dict[str, dict] = {
    "alex": {
        "layers": _ALEX_LAYERS,
        "taps": (1, 4, 7, 9, 11),
        "channels": (64, 192, 384, 256, 256),
        "backbone": "alexnet",
        "heads": "lpips_alex_lin",
    },
    "vgg": {
        "layers": _vgg16_layers(),
        "taps": (3, 8, 15, 22, 29),
        "channels": (64, 128, 256, 512, 512),
        "backbone": "vgg16",
        "heads": "lpips_vgg_lin",
    },
}

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # added to the channel norm before dividing (the package's normalize_tensor)


def _build_features(layers: list[tuple]) -> nn.Sequential:
    mods: list[nn.Module] = []
    for layer in layers:
        if layer[0] == "conv":
            _, c_in, c_out, k, s, p = layer
            mods.append(nn.Conv2d(c_in, c_out, k, stride=s, padding=p))
        elif layer[0] == "relu":
            mods.append(nn.ReLU())
        else:
            mods.append(nn.MaxPool2d(layer[1], stride=layer[2]))
    return nn.Sequential(*mods)


class LPIPSNet(nn.Module):
    """The LPIPS v0.1 network for `net` in ('alex', 'vgg'); `forward(pred, gt)` on [0, 1] images -> (N,).

    Built empty (random weights); `load(backbone_path, heads_path)` fills it, strictly.
    """

    def __init__(self, net: str = "vgg") -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown LPIPS network {net!r}; use one of {', '.join(NETS)}")
        cfg = NETS[net]
        self.net = net
        self.taps: tuple[int, ...] = cfg["taps"]
        self.features = _build_features(cfg["layers"])
        self.heads = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in cfg["channels"]])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def load(self, backbone: Path, heads: Path) -> LPIPSNet:
        """Load the torchvision backbone (`features.<i>.weight/bias`; other keys such as `classifier.*` are ignored)
        and the v0.1 heads (`lin<k>.model.1.weight`); a key or shape mismatch raises CheckpointError."""
        name = f"the LPIPS network ({self.net})"
        load_prefixed(self.features, load_state_dict_file(backbone)[0], "features.", str(backbone), name)
        return self.load_heads(heads)

    def load_heads(self, heads: Path) -> LPIPSNet:
        """Load the v0.1 linear heads (`lin<k>.model.1.weight`); a key or shape mismatch raises CheckpointError."""
        want = {f"lin{i}.model.1.weight": h for i, h in enumerate(self.heads)}
        got = load_state_dict_file(heads)[0]
        check_state_dict(want, got, str(heads), f"the LPIPS heads ({self.net})")
        with torch.no_grad():
            for key, h in want.items():
                h.copy_(got[key])
        return self

    def normalized_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[0, 1] images -> the unit-normalised activations at each tap."""
        x = (images * 2 - 1 - self.shift) / self.scale
        out = []
        last = self.taps[-1]
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + EPS))
            if i == last:
                break
        return out

    def distance(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
        """The LPIPS value (N,) between two lists of `normalized_features`."""
        total = 0
        for a, b, w in zip(feats_a, feats_b, self.heads, strict=True):
            total = total + ((a - b).pow(2) * w).sum(1).mean((1, 2))
        return total

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        n = pred.shape[0]
        feats = self.normalized_features(torch.cat([pred, gt]))
        return self.distance([f[:n] for f in feats], [f[n:] for f in feats])


@contextlib.contextmanager
def no_tf32(device: torch.device) -> Iterator[None]:
    """Turn TF32 off for cuDNN convolutions and CUDA matmuls inside the block (a no-op off CUDA)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class LPIPS(PerImageMetric):
    """`lpips[<net>]`: LPIPS v0.1 of restored vs ground-truth images, (N,), lower is better.

    Needs the torchvision backbone (`alexnet` / `vgg16` in `cfbench.weights`) and the linear heads shipped with the
    `lpips` package (`lpips_alex_lin` / `lpips_vgg_lin`); a missing file raises MissingWeightsError naming it.
    """

    def __init__(self, device: torch.device | str = "cpu", net: str = "vgg") -> None:
        super().__init__(device)
        if net not in NETS:
            raise ValueError(f"unknown LPIPS network {net!r}; use one of {', '.join(NETS)}")
        self.spec = SPECS[net]
        backbone = weights.require(NETS[net]["backbone"])
        heads = weights.require(NETS[net]["heads"])
        self.model = LPIPSNet(net).load(backbone, heads).to(self.device)

    @property
    def column_name(self) -> str:
        return self.spec.name

    @torch.no_grad()
    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        with no_tf32(self.device):
            return self.model(pred.float(), gt.float())


def _spec(net: str) -> MetricSpec:
    cfg = NETS[net]
    label = {"alex": "AlexNet", "vgg": "VGG16"}[net]
    return MetricSpec(
        name=f"lpips[{net}]",
        family="lpips",
        backend=net,
        kind=MetricKind.FULL_REFERENCE,
        higher_is_better=False,
        reference=f"lpips 0.1.4 LPIPS(net='{net}', version='0.1'), equal within 1e-5",
        build=lambda device="cpu": LPIPS(device, net=net),
        description=f"LPIPS v0.1 with the {label} backbone and the learned linear heads (perceptual distance)",
        weights=(cfg["backbone"], cfg["heads"]),
        value_range=(0.0, math.inf),
        label="LPIPS",
        role="quality",
        identity=0.0,
    )


SPECS: dict[str, MetricSpec] = {net: register(_spec(net)) for net in ("vgg", "alex")}
