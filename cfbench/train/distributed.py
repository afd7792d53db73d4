"""Data-parallel training under `torchrun` (gloo on CPU, nccl on CUDA).

Every process holds the whole model and trains on its slice of each iteration's batch (`BatchMaker.batch`); after
the backward pass the gradients are averaged over the processes with one all-reduce per optimizer, which is what
`DistributedDataParallel` does. The wrapper itself is not used because the stage losses call submodules (encoder,
quantizer, generator, the code-only path) directly, outside a wrapped `forward`. With equal shares and losses that
are means over the batch, the averaged gradient is the gradient of the whole batch, so the processes stay identical
and only rank 0 writes checkpoints, logs and weights. Batch statistics (the discriminator's BatchNorm) and the
adaptive GAN weight stay per process, as in the official DDP training.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class Group:
    """This process's place: rank in [0, world)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where collective tensors live (nccl needs CUDA tensors)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env(device: torch.device) -> Group:
    """The group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT); joins it
    (gloo for CPU devices, nccl for CUDA) unless this process already did. A single process when WORLD_SIZE is
    unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    comm = f"cuda:{local}" if device.type == "cuda" else "cpu"
    return Group(dist.get_rank(), dist.get_world_size(), local, comm)


def average_gradients(params: Iterable[torch.nn.Parameter], group: Group) -> None:
    """Replace every gradient by its mean over the processes (one all-reduce of the flattened gradients)."""
    if not group.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= group.world
    for g, avg in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        g.copy_(avg)


def mean_values(values: dict[str, float], group: Group) -> dict[str, float]:
    """The mean of each logged value over the processes (every process logs the same keys)."""
    if not group.active or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=group.device)
    dist.all_reduce(t)
    return {k: float(v) / group.world for k, v in zip(keys, t.tolist(), strict=True)}


def sum_(t: torch.Tensor, group: Group) -> torch.Tensor:
    """`t` summed over the processes (a new tensor on t's device)."""
    if not group.active:
        return t
    out = t.to(group.device)
    dist.all_reduce(out)
    return out.to(t.device)


def broadcast_(t: torch.Tensor, group: Group) -> torch.Tensor:
    """Rank 0's `t` on every process, in place."""
    if group.active:
        dist.broadcast(t, 0)
    return t


def barrier(group: Group) -> None:
    if group.active:
        dist.barrier()
