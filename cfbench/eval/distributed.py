"""Sharding `cfbench eval` over processes started by `torchrun` (gloo on CPU, nccl on GPUs).

Each rank restores the parts whose index modulo the world size is its rank and writes them into the shared run
directory; rank 0 opens the run first, computes the GT statistics (the others then read them from the cache), and
after the last barrier merges every part (FID features included) and writes the table. The result equals a
single-process run because parts and per-image seeds do not depend on which process ran them.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: str) -> tuple[int, int]:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and dist.is_available() and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return rank_and_world()


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_device(device: str) -> str:
    """cuda -> cuda:LOCAL_RANK under torchrun, so each process drives its own GPU."""
    if device == "cuda" and "LOCAL_RANK" in os.environ and torch.cuda.device_count() > 1:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
