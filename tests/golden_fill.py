"""The portable weight fill of tests/data/reference/GOLDEN.md (splitmix64 over (seed, tensor index, element index))."""

from __future__ import annotations

import math

import numpy as np
import torch


def splitmix_uniform(seed: int, k: int, n: int) -> np.ndarray:
    """n float64 values in [-1, 1) for the k-th tensor."""
    with np.errstate(over="ignore"):
        x = np.uint64(seed) * np.uint64(2**40) + np.uint64(k) * np.uint64(2**32) + np.arange(n, dtype=np.uint64)
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return 2.0 * (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 - 1.0


def golden_state_dict(manifest_keys: dict, seed: int = 1) -> dict[str, torch.Tensor]:
    """State dict in manifest order filled by the GOLDEN.md rule."""
    out = {}
    for k, (key, (shape, _dtype)) in enumerate(manifest_keys.items()):
        n = math.prod(shape)
        u = splitmix_uniform(seed, k, n)
        if len(shape) >= 2:
            v = u * math.sqrt(3) / math.sqrt(n / shape[0])
        elif key.endswith("weight"):
            v = 1 + 0.1 * u
        else:
            v = 0.02 * u
        out[key] = torch.from_numpy(v.astype(np.float32).reshape(shape))
    return out
