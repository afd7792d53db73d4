"""Blur ops: Gaussian (isotropic or anisotropic), generalized Gaussian and plateau kernels.

CPU: ``cv2.filter2D`` with ``BORDER_REFLECT_101``, as CodeFormer's FFHQBlindDataset does. Torch: the same
kernels (built in float64 numpy, then float32), applied as an FFT correlation over a reflect-101 padded batch,
so a 41x41 kernel costs the same as a 3x3 one and every image in a batch may have its own kernel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from degradations.kernels import gaussian_kernel, generalized_gaussian_kernel, plateau_kernel
from degradations.ops.base import OPS, Op, Params
from degradations.params import Choice, Int, Num

_KINDS = ("iso", "aniso")


def _common_fields(sigma_default: tuple[float, float]) -> dict:
    return {
        "kernel_size": Int(41, lo=1, hi=201, odd=True),
        "kernel_type": Choice(_KINDS, {"iso": 0.5, "aniso": 0.5}),
        "sigma": Num(sigma_default, lo=0.0, lo_open=True, example="[0.1, 10]"),
        "rotation": Num((-math.pi, math.pi), lo=-math.pi, hi=math.pi, example="[-3.14159, 3.14159]"),
    }


def _sample_shape(rng: np.random.Generator, cfg: Mapping[str, Any]) -> Params:
    # iso: one sigma, no rotation; aniso: sigma_x and sigma_y drawn independently (not sorted), then a
    # rotation, the order CodeFormer/BasicSR draw them in.
    kind = Choice.draw(rng, cfg["kernel_type"])
    sigma_x = Num.draw(rng, cfg["sigma"])
    if kind == "aniso":
        sigma_y = Num.draw(rng, cfg["sigma"])
        rotation = Num.draw(rng, cfg["rotation"])
    else:
        sigma_y, rotation = sigma_x, 0.0
    return {
        "kernel_type": kind,
        "kernel_size": cfg["kernel_size"],
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "rotation": rotation,
    }


def _sample_with_beta(rng: np.random.Generator, cfg: Mapping[str, Any]) -> Params:
    params = _sample_shape(rng, cfg)
    params["beta"] = Num.draw(rng, cfg["beta"])
    return params


def _kernel(name: str, p: Mapping[str, Any]) -> np.ndarray:
    shape = (int(p["kernel_size"]), float(p["sigma_x"]), float(p["sigma_y"]), float(p["rotation"]))
    if name == "gaussian_blur":
        return gaussian_kernel(*shape)
    if name == "generalized_blur":
        return generalized_gaussian_kernel(*shape, float(p["beta"]))
    return plateau_kernel(*shape, float(p["beta"]))


def blur_cpu_with(kernel: np.ndarray, img: np.ndarray) -> np.ndarray:
    """Correlate an HWC float32 image with a 2D kernel, reflect-101 borders (OpenCV's default)."""
    out = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(img.shape)  # filter2D drops a singleton channel axis


def reflect101_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Source indices of a reflect-101 padded axis of length n + 2*pad (any pad, unlike F.pad's 'reflect')."""
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


def blur_torch_with(kernels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Correlate each image of an NCHW batch with its own (N, k, k) kernel (odd k), reflect-101 borders.

    Works by FFT: pad by k//2 with reflect-101, correlate circularly at the padded size; the first H x W
    outputs never wrap around, so they equal the linear correlation.
    """
    h, w = x.shape[-2], x.shape[-1]
    k = kernels.shape[-1]
    r = k // 2
    if r < h and r < w:
        xp = F.pad(x, (r, r, r, r), mode="reflect")  # torch's 'reflect' is reflect-101
    else:  # F.pad cannot reflect more than once; index arithmetic can
        xp = x.index_select(2, reflect101_index(h, r, x.device)).index_select(3, reflect101_index(w, r, x.device))
    hp, wp = h + 2 * r, w + 2 * r
    spec_x = torch.fft.rfft2(xp, s=(hp, wp))
    spec_k = torch.fft.rfft2(kernels.to(x.dtype), s=(hp, wp))
    out = torch.fft.irfft2(spec_x * spec_k.conj().unsqueeze(1), s=(hp, wp))
    return out[..., :h, :w].contiguous()


def _make(name: str) -> tuple:
    def cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
        return blur_cpu_with(_kernel(name, p), img)

    def torch_fn(x: torch.Tensor, ps: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        kernels = [_kernel(name, p) for p in ps]
        size = max(k.shape[0] for k in kernels)
        # Zero-pad smaller kernels to a common centred size: the extra zero taps read only padding.
        stack = np.zeros((len(kernels), size, size), dtype=np.float64)
        for i, k in enumerate(kernels):
            off = (size - k.shape[0]) // 2
            stack[i, off : off + k.shape[0], off : off + k.shape[0]] = k
        return blur_torch_with(torch.from_numpy(stack).to(device=x.device, dtype=torch.float32), x)

    return cpu, torch_fn


_SHAPE_PARAMS = ("kernel_type", "kernel_size", "sigma_x", "sigma_y", "rotation")

_cpu, _torch = _make("gaussian_blur")
OPS.add(
    "gaussian_blur",
    Op(
        name="gaussian_blur",
        summary="Gaussian blur, iso or aniso: exp(-xᵀΣ⁻¹x/2), Σ = R diag(σx², σy²) Rᵀ",
        fields=_common_fields((0.1, 10.0)),
        sample=_sample_shape,
        cpu=_cpu,
        torch=_torch,
        params=_SHAPE_PARAMS,
    ),
)

_cpu, _torch = _make("generalized_blur")
OPS.add(
    "generalized_blur",
    Op(
        name="generalized_blur",
        summary="generalized Gaussian blur exp(-(xᵀΣ⁻¹x)^β/2)",
        fields={
            **_common_fields((0.2, 3.0)),
            "beta": Num((0.5, 4.0), lo=0.0, lo_open=True, example="[0.5, 4]"),
        },
        sample=_sample_with_beta,
        cpu=_cpu,
        torch=_torch,
        params=(*_SHAPE_PARAMS, "beta"),
    ),
)

_cpu, _torch = _make("plateau_blur")
OPS.add(
    "plateau_blur",
    Op(
        name="plateau_blur",
        summary="plateau blur 1/(1 + (xᵀΣ⁻¹x)^β)",
        fields={
            **_common_fields((0.2, 3.0)),
            "beta": Num((1.0, 2.0), lo=0.0, lo_open=True, example="[1, 2]"),
        },
        sample=_sample_with_beta,
        cpu=_cpu,
        torch=_torch,
        params=(*_SHAPE_PARAMS, "beta"),
    ),
)
