"""PatchGAN discriminator of the VQGAN stage (official `VQGANDiscriminator`, re-implemented with its key names)."""

from __future__ import annotations

import torch
from torch import nn

from cfbench.models.config import DiscriminatorConfig


class VQGANDiscriminator(nn.Module):
    """(N, nc, S, S) in [-1, 1] -> (N, 1, S', S') patch logits (30x30 for a 512 input with 4 layers)."""

    def __init__(self, cfg: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg or DiscriminatorConfig()
        self.config.validate()
        ndf, n = self.config.ndf, self.config.n_layers
        layers: list[nn.Module] = [nn.Conv2d(self.config.nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for i in range(1, n + 1):
            prev, mult = mult, min(2**i, 8)
            stride = 2 if i < n else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)
