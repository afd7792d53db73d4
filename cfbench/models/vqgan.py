"""The VQGAN autoencoder of CodeFormer stage I (official `basicsr/archs/vqgan_arch.py`, re-implemented).

Differences from the official code: the block lists are derived from the config rather than written for 512 only,
and the encoder records which block closes each resolution level, so CodeFormer can tap it (the official code keeps
hard-coded index maps that equal these for the official sizes). Images are in [-1, 1] here; `cfbench.restore` takes
[0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cfbench.models.blocks import AttnBlock, Downsample, ResBlock, Upsample, group_norm
from cfbench.models.config import VQGANConfig


class Encoder(nn.Module):
    """(N, 3, S, S) in [-1, 1] -> (N, emb_dim, S/2^L, S/2^L) continuous latents, L = len(ch_mult) - 1."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        mult = (1, *cfg.ch_mult)
        blocks: list[nn.Module] = [nn.Conv2d(3, cfg.nf, 3, 1, 1)]
        #: resolution -> index of the last ResBlock of that level (the official `fuse_encoder_block`)
        self.level_ends: dict[int, int] = {}
        res = cfg.img_size
        for i in range(len(cfg.ch_mult)):
            c_in, c_out = cfg.nf * mult[i], cfg.nf * mult[i + 1]
            for _ in range(cfg.res_blocks):
                blocks.append(ResBlock(c_in, c_out))
                self.level_ends[res] = len(blocks) - 1
                c_in = c_out
                if res in cfg.attn_resolutions:
                    blocks.append(AttnBlock(c_in))
            if i != len(cfg.ch_mult) - 1:
                blocks.append(Downsample(c_in))
                res //= 2
        blocks += [ResBlock(c_in, c_in), AttnBlock(c_in), ResBlock(c_in, c_in)]  # non-local block
        blocks += [group_norm(c_in), nn.Conv2d(c_in, cfg.emb_dim, 3, 1, 1)]
        self.blocks = nn.ModuleList(blocks)

    def forward(
        self, x: torch.Tensor, taps: dict[int, int] | None = None
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Returns the latents and the features after the blocks named in `taps` (resolution -> block index)."""
        wanted = {idx: res for res, idx in (taps or {}).items()}
        feats: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in wanted:
                feats[wanted[i]] = x
        return x, feats


class Generator(nn.Module):
    """(N, emb_dim, s, s) quantized latents -> (N, 3, S, S) image in about [-1, 1] (no tanh, no clamp)."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        c_in = cfg.nf * cfg.ch_mult[-1]
        res = cfg.latent_size
        blocks: list[nn.Module] = [nn.Conv2d(cfg.emb_dim, c_in, 3, 1, 1)]
        blocks += [ResBlock(c_in, c_in), AttnBlock(c_in), ResBlock(c_in, c_in)]  # non-local block
        #: resolution -> index of the first ResBlock after the upsampling into it (the official `fuse_generator_block`)
        self.level_starts: dict[int, int] = {}
        for i in reversed(range(len(cfg.ch_mult))):
            c_out = cfg.nf * cfg.ch_mult[i]
            for _ in range(cfg.res_blocks):
                blocks.append(ResBlock(c_in, c_out))
                self.level_starts.setdefault(res, len(blocks) - 1)
                c_in = c_out
                if res in cfg.attn_resolutions:
                    blocks.append(AttnBlock(c_in))
            if i != 0:
                blocks.append(Upsample(c_in))
                res *= 2
        blocks += [group_norm(c_in), nn.Conv2d(c_in, 3, 3, 1, 1)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@dataclass
class QuantStats:
    """What the quantizer saw: indices (N*h*w, 1) row-major over (n, h, w), perplexity, mean distance to the code."""

    indices: torch.Tensor
    perplexity: torch.Tensor
    mean_distance: torch.Tensor


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook (codebook_size x emb_dim) with the straight-through estimator.

    The loss is mean((sg[z_q] - z)^2) + beta * mean((z_q - sg[z])^2): as in the official code, the commitment term
    has weight 1 and the codebook term weight beta (the reverse of the VQ-VAE paper's convention).
    """

    def __init__(self, codebook_size: int, emb_dim: int, beta: float) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.emb_dim = emb_dim
        self.beta = beta
        self.embedding = nn.Embedding(codebook_size, emb_dim)
        self.embedding.weight.data.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared distances (M, codebook_size) of flat latents z (M, emb_dim), in the official expanded form."""
        e = self.embedding.weight
        return (z**2).sum(dim=1, keepdim=True) + (e**2).sum(dim=1) - 2 * z @ e.t()

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Indices (N, h*w) of the nearest code for latents z (N, emb_dim, h, w)."""
        n, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        return self.distances(flat).argmin(dim=1).reshape(n, h * w)

    def lookup(self, indices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Codebook vectors for indices (N, h*w) as a (N, emb_dim, h, w) feature map."""
        n = indices.shape[0]
        return F.embedding(indices, self.embedding.weight).reshape(n, *size, self.emb_dim).permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, QuantStats]:
        n, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        d = self.distances(flat)
        idx = d.argmin(dim=1)
        z_q = self.lookup(idx.reshape(n, h * w), (h, w))
        loss = torch.mean((z_q.detach() - z) ** 2) + self.beta * torch.mean((z_q - z.detach()) ** 2)
        z_q = z + (z_q - z).detach()  # straight-through estimator
        counts = torch.bincount(idx, minlength=self.codebook_size).to(z.dtype)
        p = counts / counts.sum()
        perplexity = torch.exp(-torch.sum(p * torch.log(p + 1e-10)))
        stats = QuantStats(idx[:, None], perplexity, d.gather(1, idx[:, None]).mean())
        return z_q, loss, stats


class VQAutoEncoder(nn.Module):
    """Encoder -> VectorQuantizer -> Generator. forward(x in [-1, 1]) -> (reconstruction, codebook_loss, stats)."""

    def __init__(self, cfg: VQGANConfig | None = None) -> None:
        super().__init__()
        self.config = cfg or VQGANConfig()
        self.config.validate()
        self.encoder = Encoder(self.config)
        self.quantize = VectorQuantizer(self.config.codebook_size, self.config.emb_dim, self.config.beta)
        self.generator = Generator(self.config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, QuantStats]:
        z, _ = self.encoder(x)
        z_q, loss, stats = self.quantize(z)
        return self.generator(z_q), loss, stats
