"""The three CodeFormer stages at training time: what is frozen, the fixed code targets, the adaptive GAN weight's
layer, codebook restarts and the generator losses of each stage (`StageLosses`). Their official settings are
`cfbench.train.config.default_stage`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from cfbench.errors import BadInputError
from cfbench.train import losses as L
from cfbench.train.config import Stage

# --- modules ----------------------------------------------------------------------------------------------------


def apply_frozen(net: nn.Module, frozen: tuple[str, ...]) -> list[nn.Parameter]:
    """requires_grad False on the named top-level modules, True elsewhere; returns the trainable parameters."""
    names = dict(net.named_children())
    for name in frozen:
        if name not in names and not hasattr(net, name):
            raise BadInputError(f"stage freezes {name!r}, which {type(net).__name__} does not have")
    net.requires_grad_(True)
    for name in frozen:
        getattr(net, name).requires_grad_(False)
    return [p for p in net.parameters() if p.requires_grad]


class FixedCoder(nn.Module):
    """A frozen copy of a VQGAN encoder + quantizer giving the HQ code targets of stages II and III."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(net.encoder)
        self.quantize = copy.deepcopy(net.quantize)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def targets(self, hq: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices (N, s*s) of HQ faces (N, 3, S, S) in [-1, 1]."""
        z, _ = self.encoder(hq.float())
        return self.quantize.nearest(z)


def adaptive_layer(stage: Stage, net: nn.Module) -> torch.Tensor:
    """The weight the adaptive GAN weight differentiates at: stage I the generator's final conv, stage III the last
    conv of the `shift` branch of the largest-resolution fusion block (the official fix_generator case)."""
    if stage.arch == "vqgan":
        return net.generator.blocks[-1].weight
    largest = max(net.fuse_convs_dict, key=int)
    return net.fuse_convs_dict[largest].shift[-1].weight


@torch.no_grad()
def restart_dead_codes(quantize: nn.Module, usage: torch.Tensor, latents: torch.Tensor) -> int:
    """Move every code with usage 0 to a random row of `latents` (M, emb_dim), drawn with torch's global RNG;
    returns how many codes moved. The used codes are untouched."""
    dead = (usage == 0).nonzero().flatten()
    if dead.numel():
        weight = quantize.embedding.weight
        pick = torch.randint(latents.shape[0], (dead.numel(),), device=latents.device)
        weight[dead.to(weight.device)] = latents[pick].to(weight)
    return int(dead.numel())


# --- generator losses -------------------------------------------------------------------------------------------


@dataclass
class StepOut:
    """A micro-batch's generator loss (scalar), the fake images for the D step (or None), and logged values."""

    loss: torch.Tensor
    fake: torch.Tensor | None
    logs: dict[str, torch.Tensor]
    latents: torch.Tensor | None = None  # stage I: the encoder outputs (M, emb_dim), detached
    codes: torch.Tensor | None = None  # stage I: the code each of them chose (M,)


class StageLosses:
    """Generator losses of one stage. `disc` may be None; `perceptual` is the frozen network or None."""

    def __init__(self, stage: Stage, net: nn.Module, disc: nn.Module | None, perceptual: nn.Module | None) -> None:
        self.stage, self.net, self.disc, self.perceptual = stage, net, disc, perceptual
        self.terms = stage.losses

    def _on(self, name: str, it: int) -> bool:
        return name in self.terms and self.terms[name].active(it)

    def _image_losses(self, out: torch.Tensor, hq: torch.Tensor, it: int, logs: dict) -> tuple[torch.Tensor, bool]:
        """Weighted L1 + perceptual + adaptive GAN on an output image; returns (loss, whether D should step)."""
        recon = out.new_zeros(())
        if self._on("pixel", it):
            logs["pixel"] = L.l1_loss(out, hq)
            recon = recon + self.terms["pixel"].weight * logs["pixel"]
        if self._on("perceptual", it) and self.perceptual is not None:
            logs["perceptual"] = self.perceptual(out.float(), hq.float())
            recon = recon + self.terms["perceptual"].weight * logs["perceptual"]
        total = recon
        gan_on = self._on("gan", it) and self.disc is not None
        if gan_on:
            fake_logits = self.disc(out)
            logs["g_gan"] = L.g_loss(self.stage.gan, fake_logits)
            if self.stage.adaptive_max > 0 and recon.requires_grad:
                d_weight = L.adaptive_gan_weight(
                    recon, logs["g_gan"], adaptive_layer(self.stage, self.net), self.stage.adaptive_max
                )
            else:
                d_weight = torch.ones((), device=out.device)
            logs["d_weight"] = d_weight
            total = total + self.terms["gan"].weight * d_weight * logs["g_gan"]
        return total, gan_on

    def _token_losses(self, logits: torch.Tensor, lq_feat: torch.Tensor, idx_gt: torch.Tensor, it: int, logs: dict):
        total = lq_feat.new_zeros(()).float()
        if self._on("feat", it):
            s = lq_feat.shape[-1]
            quant_gt = self.net.quantize.lookup(idx_gt, (s, s))
            logs["feat"] = L.latent_l2(lq_feat.float(), quant_gt.float())
            total = total + self.terms["feat"].weight * logs["feat"]
        if self._on("ce", it):
            logs["ce"] = L.code_cross_entropy(logits, idx_gt)
            total = total + self.terms["ce"].weight * logs["ce"]
            logs["token_acc"] = (logits.argmax(2) == idx_gt).float().mean()
        return total

    def __call__(self, batch: dict[str, torch.Tensor], it: int) -> StepOut:
        logs: dict[str, torch.Tensor] = {}
        if self.stage.name == "stage1":
            hq = batch["hq"]
            z, _ = self.net.encoder(hq)
            z_q, cb_loss, stats = self.net.quantize(z)  # straight-through and codebook/commitment inside
            out = self.net.generator(z_q)
            loss, gan_on = self._image_losses(out, hq, it, logs)
            if self._on("codebook", it):
                logs["codebook"] = cb_loss
                loss = loss + self.terms["codebook"].weight * cb_loss
            logs["perplexity"] = stats.perplexity
            latents = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
            return StepOut(loss, out if gan_on else None, logs, latents, stats.indices[:, 0])
        mode = batch.get("mode", "large")
        if self.stage.name == "stage2" or mode == "large":
            logits, lq_feat = self.net(batch["lq"], code_only=True)
            loss = self._token_losses(logits, lq_feat, batch["idx"], it, logs)
            return StepOut(loss, None, logs)
        out, logits, lq_feat = self.net(batch["lq"], w=float(batch["w"]), detach_16=True, adain=False)
        loss = self._token_losses(logits, lq_feat, batch["idx"], it, logs)
        image_loss, gan_on = self._image_losses(out, batch["hq"], it, logs)
        return StepOut(loss + image_loss, out if gan_on else None, logs)
