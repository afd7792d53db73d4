"""Noise ops: additive Gaussian noise and Poisson (shot) noise.

The noise realisation is part of the params: the sampler draws a ``seed`` and the implementations draw the
noise from ``numpy.random.Generator(PCG64(seed))`` in CHW order (C = 1 for gray noise). Both backends use the
same numpy draws (the torch backend copies them to the device), so noise is identical across backends, batch
sizes and devices; only the arithmetic that adds it may differ in the last float bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from degradations.ops.base import OPS, Op, Params
from degradations.params import Num

SEED_BOUND = 2**63  # noise seeds are drawn in [0, 2**63): they fit an int64 column


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(int(seed)))


def _sample(rng: np.random.Generator, cfg: Mapping[str, Any], amount: str) -> Params:
    value = Num.draw(rng, cfg[amount])
    gray = bool(rng.random() < cfg["gray_prob"][0])
    return {amount: value, "gray": gray, "seed": int(rng.integers(0, SEED_BOUND))}


# --- Gaussian ----------------------------------------------------------------------------------------------


def gaussian_noise_chw(p: Mapping[str, Any], height: int, width: int) -> np.ndarray:
    """The float32 (C, H, W) noise of a params record, already scaled to [0, 1] units (sigma / 255)."""
    c = 1 if p["gray"] else 3
    # float32 draws times a Python float stay float32, as in CodeFormer's np.float32(randn(...)) * sigma.
    return _rng(p["seed"]).standard_normal((c, height, width), dtype=np.float32) * (float(p["sigma"]) / 255.0)


def _gauss_cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    noise = gaussian_noise_chw(p, img.shape[0], img.shape[1]).transpose(1, 2, 0)
    return np.clip(img + noise, 0.0, 1.0)


def _gauss_torch(x: torch.Tensor, ps: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    h, w = x.shape[-2], x.shape[-1]
    noise = np.stack([np.broadcast_to(gaussian_noise_chw(p, h, w), (3, h, w)) for p in ps])
    return (x + torch.from_numpy(noise).to(x.device)).clamp_(0.0, 1.0)


OPS.add(
    "gaussian_noise",
    Op(
        name="gaussian_noise",
        summary="additive Gaussian noise, sigma on the 0-255 scale, per channel or gray (one field for RGB)",
        fields={
            "sigma": Num((0.0, 20.0), lo=0.0, hi=255.0, example="[0, 20]"),
            "gray_prob": Num(0.0, lo=0.0, hi=1.0, fixed_only=True),
        },
        sample=lambda rng, cfg: _sample(rng, cfg, "sigma"),
        cpu=_gauss_cpu,
        torch=_gauss_torch,
        params=("sigma", "gray", "seed"),
    ),
)


# --- Poisson -----------------------------------------------------------------------------------------------

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def poisson_noise_chw(img_chw: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    """The float32 (C, H, W) Poisson noise for a CHW float32 RGB image in [0, 1].

    Counts ~ Poisson(x * peak) with ``peak`` photons at white; noise = (counts / peak - x) * scale. Gray noise
    is drawn on the luma (0.299 R + 0.587 G + 0.114 B) and shared by the three channels.
    """
    src = np.tensordot(_LUMA, img_chw, axes=1)[None] if p["gray"] else img_chw
    lam = src.astype(np.float64) * float(p["peak"])
    counts = _rng(p["seed"]).poisson(lam)
    return ((counts / float(p["peak"]) - src) * float(p["scale"])).astype(np.float32)


def _poisson_cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    noise = poisson_noise_chw(np.ascontiguousarray(img.transpose(2, 0, 1)), p).transpose(1, 2, 0)
    return np.clip(img + noise, 0.0, 1.0)


def _poisson_torch(x: torch.Tensor, ps: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    # The counts depend on the image, and torch's Poisson sampler differs between devices, so the draws are
    # made with numpy on the host (the same draws as the CPU backend); only the addition runs on the device.
    host = x.detach().to("cpu", torch.float32).numpy()
    noise = np.stack([np.broadcast_to(poisson_noise_chw(host[i], p), host.shape[1:]) for i, p in enumerate(ps)])
    return (x + torch.from_numpy(noise).to(x.device)).clamp_(0.0, 1.0)


def _sample_poisson(rng: np.random.Generator, cfg: Mapping[str, Any]) -> Params:
    params = _sample(rng, cfg, "scale")
    params["peak"] = cfg["peak"][0]
    return params


OPS.add(
    "poisson_noise",
    Op(
        name="poisson_noise",
        summary="Poisson shot noise with `peak` photons at white, scaled by `scale`, per channel or gray",
        fields={
            "scale": Num((0.05, 3.0), lo=0.0, example="[0.05, 3]"),
            "gray_prob": Num(0.0, lo=0.0, hi=1.0, fixed_only=True),
            "peak": Num(255.0, lo=0.0, lo_open=True, fixed_only=True),
        },
        sample=_sample_poisson,
        cpu=_poisson_cpu,
        torch=_poisson_torch,
        params=("scale", "gray", "seed", "peak"),
    ),
)
