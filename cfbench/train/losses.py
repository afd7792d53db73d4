"""Training losses of the three CodeFormer stages: pure functions on tensors, plus the perceptual networks.

Images are in [-1, 1] (the models' scale) everywhere here. Weights, betas and clamps are the official option files'
values (listed in `cfbench.train.config`); the functions take them as arguments.

Perceptual losses use registered weights only (`cfbench.weights`): `lpips` needs `vgg16` + `lpips_vgg_lin`, `vgg19`
needs `vgg19`. A missing file raises MissingWeightsError naming it; there is no random-weight fallback. A config
without those weights must say `perceptual: none`.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from cfbench.state_dict import load_prefixed, load_state_dict_file

PERCEPTUAL_KINDS = ("none", "lpips", "vgg19")
GAN_KINDS = ("hinge", "nonsaturating")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --- pixel, tokens, latents ---------------------------------------------------------------------------------------


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean |pred - target| (the official pixel loss, reduction mean)."""
    return (pred - target).abs().mean()


def code_cross_entropy(logits: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of code logits (N, L, K) against target code indices (N, L), mean over all N*L tokens."""
    return F.cross_entropy(logits.permute(0, 2, 1).float(), indices)


def latent_l2(lq_feat: torch.Tensor, quant_gt: torch.Tensor) -> torch.Tensor:
    """mean (lq_feat - sg[quant_gt])^2: the encoder output of the LQ face vs the quantized HQ feature (stage II)."""
    return (lq_feat - quant_gt.detach()).pow(2).mean()


def codebook_loss(z: torch.Tensor, z_q: torch.Tensor, beta: float) -> torch.Tensor:
    """mean (sg[z_q] - z)^2 + beta * mean (z_q - sg[z])^2, the official weighting (see `VectorQuantizer`).

    The training loop uses the loss the quantizer returns (same formula); this is the reference it is tested against.
    """
    return (z_q.detach() - z).pow(2).mean() + beta * (z_q - z.detach()).pow(2).mean()


def straight_through(z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """z + sg(z_q - z): the value of z_q with the gradient of z."""
    return z + (z_q - z).detach()


# --- adversarial ------------------------------------------------------------------------------------------------


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator loss as (real term, fake term); the official loop backpropagates them separately.

    hinge: mean relu(1 - D(real)), mean relu(1 + D(fake)). nonsaturating: softplus(-D(real)), softplus(D(fake)).
    """
    if kind == "hinge":
        return F.relu(1 - real_logits).mean(), F.relu(1 + fake_logits).mean()
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; use one of {', '.join(GAN_KINDS)}")


def g_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator adversarial loss: hinge -mean D(fake); nonsaturating mean softplus(-D(fake))."""
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; use one of {', '.join(GAN_KINDS)}")


def adaptive_gan_weight(
    recon_loss: torch.Tensor,
    gan_loss: torch.Tensor,
    last_layer: torch.Tensor,
    max_weight: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """clamp(||d recon / d last|| / (||d gan / d last|| + eps), 0, max_weight), detached (official VQGAN).

    `last_layer` is the weight the gradients are taken at (stage I: the generator's final conv; stage III: the last
    shift conv of the largest fusion block). The caller multiplies by the configured scale (0.8 / 0.1).
    """
    recon_grad = torch.autograd.grad(recon_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = recon_grad.float().norm() / (gan_grad.float().norm() + eps)
    return weight.clamp(0.0, max_weight).detach()


# --- perceptual -------------------------------------------------------------------------------------------------

# torchvision VGG19 `features` indices: conv1_2 = 2, conv2_2 = 7, conv3_4 = 16, conv4_4 = 25, conv5_4 = 34 (taken
# before their ReLU, as BasicSR's PerceptualLoss does). The layer weights are BasicSR's usual face-restoration ones.
VGG19_CFG = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
VGG19_LAYER_WEIGHTS = {2: 0.1, 7: 0.1, 16: 1.0, 25: 1.0, 34: 1.0}


def _vgg19_features(last: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    c_in = 3
    for block, (width, convs) in enumerate(VGG19_CFG):
        if block:
            mods.append(nn.MaxPool2d(2, 2))
        for _ in range(convs):
            mods += [nn.Conv2d(c_in, width, 3, 1, 1), nn.ReLU()]
            c_in = width
    return nn.Sequential(*mods[: last + 1])


class VGG19Perceptual(nn.Module):
    """sum_l w_l * mean |phi_l(x) - phi_l(y)| on ImageNet-normalised VGG19 conv features (pre-ReLU), inputs [-1, 1]."""

    def __init__(self, layer_weights: dict[int, float] | None = None) -> None:
        super().__init__()
        self.layer_weights = dict(layer_weights or VGG19_LAYER_WEIGHTS)
        self.features = _vgg19_features(max(self.layer_weights))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def load(self, path: str | os.PathLike) -> VGG19Perceptual:
        """Load torchvision's VGG19 weights (`features.<i>` keys; the classifier is ignored), strictly."""
        load_prefixed(self.features, load_state_dict_file(path)[0], "features.", str(path), "VGG19 features")
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = pred.shape[0]
        x = ((torch.cat([pred, target]) + 1) / 2 - self.mean) / self.std
        total = pred.new_zeros(())
        for i, layer in enumerate(self.features):
            x = layer(x) if not isinstance(layer, nn.ReLU) else F.relu(x)
            if i in self.layer_weights:
                total = total + self.layer_weights[i] * (x[:n] - x[n:].detach()).abs().mean()
        return total


class LPIPSPerceptual(nn.Module):
    """The official stage-I/III `LPIPSLoss`: LPIPS(vgg) after range_norm ([-1, 1] -> [0, 1]) and ImageNet
    normalisation (the package's own scaling follows, so two normalisations apply, as in the official code); mean
    over the batch. Reuses `cfbench.metrics.lpips.LPIPSNet` (frozen)."""

    def __init__(self) -> None:
        super().__init__()
        from cfbench.metrics.lpips import LPIPSNet

        self.net = LPIPSNet("vgg")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        def prep(x: torch.Tensor) -> torch.Tensor:
            y = ((x + 1) / 2 - self.mean) / self.std  # what the official code feeds lpips as its [-1, 1] input
            return (y + 1) / 2  # LPIPSNet takes [0, 1] and maps it to [-1, 1] itself

        return self.net(prep(pred), prep(target)).mean()


def build_perceptual(kind: str) -> nn.Module | None:
    """The frozen perceptual network of `kind`, with its registered weights; None for "none".

    Raises MissingWeightsError (naming the file and where to put it) when the weights are absent.
    """
    from cfbench import weights

    if kind == "none":
        return None
    if kind == "lpips":
        net = LPIPSPerceptual()
        net.net.load(weights.require("vgg16"), weights.require("lpips_vgg_lin"))
        return net
    if kind == "vgg19":
        return VGG19Perceptual().load(weights.require("vgg19"))
    raise ValueError(f"unknown perceptual loss {kind!r}; use one of {', '.join(PERCEPTUAL_KINDS)}")
