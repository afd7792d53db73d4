"""The pieces a `Trainer` is built from: the autocast dtype, the LR schedulers of the stage config, and initial
weights loaded into a network (the official `vqgan_path` / strict=False init)."""

from __future__ import annotations

import torch
from torch import nn

from cfbench.state_dict import load_checked, load_state_dict_file
from cfbench.train.config import Scheduler


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """bf16 for `bf16`, or for `auto` on a CUDA device that supports it; None (fp32) otherwise."""
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def make_scheduler(opt: torch.optim.Optimizer, spec: Scheduler) -> torch.optim.lr_scheduler.LRScheduler:
    if spec.type == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(spec.period, 1), eta_min=spec.eta_min)
    milestones = list(spec.milestones) if spec.type == "multistep" else []
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=spec.gamma)


def load_init(net: nn.Module, path: str, what: str) -> None:
    """Load the tensors of `path` that `net` has (official `vqgan_path` / strict=False init); shape mismatches and
    a file sharing no key with `net` are errors (CheckpointError)."""
    load_checked(net, load_state_dict_file(path)[0], f"{what} {path}", "the model", strict=False)
