"""Exponential moving average of the generator's parameters (the official `model_ema`, saved as `params_ema`)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """ema <- decay * ema + (1 - decay) * param for every parameter (frozen ones included: they stay equal);
    buffers are copied. `module` is a frozen copy of the network holding the averaged weights."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(net).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        own = dict(self.module.named_parameters())
        for name, p in net.named_parameters():
            own[name].lerp_(p.detach().to(own[name].dtype), 1 - self.decay)
        own_buffers = dict(self.module.named_buffers())
        for name, b in net.named_buffers():
            own_buffers[name].copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
