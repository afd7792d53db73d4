"""Colour ops: ``color_shift`` (CodeFormer's ``color_jitter``), ``color_jitter`` (CodeFormer's
``color_jitter_pt``: torchvision-style brightness, contrast, saturation, hue in a random order) and
``grayscale``.

All are plain per-pixel arithmetic, written twice (numpy HWC for the CPU backend, torch NCHW for the torch
backend) with the same formulas. Gray is the BT.601 luma 0.299 R + 0.587 G + 0.114 B (cv2.COLOR_RGB2GRAY); the
jitter uses torchvision's formulas (0.2989/0.587/0.114 luma for contrast and saturation, hue shifted in HSV)
and agrees with torchvision's ``adjust_*`` functions to 1e-5 (tests/degradations/test_deg_ops.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from degradations.ops.base import OPS, Op, Params
from degradations.params import Num

# --- color_shift -------------------------------------------------------------------------------------------


def _sample_shift(rng: np.random.Generator, cfg: Mapping[str, Any]) -> Params:
    limit = cfg["shift"][0]
    return {"shift": [float(v) for v in rng.uniform(-limit, limit, 3)]}


def _shift_cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    return np.clip(img + np.asarray(p["shift"], dtype=np.float32) / np.float32(255.0), 0.0, 1.0)


def _shift_torch(x: torch.Tensor, ps: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    shift = torch.tensor([p["shift"] for p in ps], dtype=torch.float32, device=x.device) / 255.0
    return (x + shift[:, :, None, None]).clamp_(0.0, 1.0)


OPS.add(
    "color_shift",
    Op(
        name="color_shift",
        summary="add a uniform per-channel offset in [-shift, shift] (0-255 scale)",
        fields={"shift": Num(20.0, lo=0.0, hi=255.0, fixed_only=True)},
        sample=_sample_shift,
        cpu=_shift_cpu,
        torch=_shift_torch,
        params=("shift",),
    ),
)


# --- grayscale ---------------------------------------------------------------------------------------------


def _gray_cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _gray_torch(x: torch.Tensor, ps: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


OPS.add(
    "grayscale",
    Op(
        name="grayscale",
        summary="convert to gray (BT.601 luma) and repeat it in the three channels",
        fields={},
        sample=lambda rng, cfg: {},
        cpu=_gray_cpu,
        torch=_gray_torch,
        params=(),
    ),
)


# --- color_jitter ------------------------------------------------------------------------------------------

JITTERS = ("brightness", "contrast", "saturation", "hue")


def _sample_jitter(rng: np.random.Generator, cfg: Mapping[str, Any]) -> Params:
    order = [JITTERS[int(i)] for i in rng.permutation(len(JITTERS))]
    params: Params = {name: Num.draw(rng, cfg[name]) for name in JITTERS}
    params["order"] = order
    return params


def _rgb_to_hsv_np(img: np.ndarray) -> np.ndarray:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    v = img.max(axis=-1)
    c = v - img.min(axis=-1)
    flat = c == 0
    c_safe = np.where(flat, 1.0, c).astype(img.dtype)
    s = c / np.where(v == 0, 1.0, v).astype(img.dtype)
    rc, gc, bc = (v - r) / c_safe, (v - g) / c_safe, (v - b) / c_safe
    h = np.where(v == r, bc - gc, np.where(v == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.where(flat, 0.0, np.mod(h / 6.0, 1.0))
    return np.stack([h, s, v], axis=-1).astype(img.dtype)


def _hsv_to_rgb_np(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0).astype(hsv.dtype)


def _jitter_cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    out = img
    for name in p["order"]:
        f = np.float32(p[name])
        if name == "brightness":
            out = np.clip(out * f, 0.0, 1.0)
        elif name == "contrast":
            mean = np.float32((out @ np.array([0.2989, 0.587, 0.114], dtype=np.float32)).mean())
            out = np.clip(f * out + (1 - f) * mean, 0.0, 1.0)
        elif name == "saturation":
            gray = (out @ np.array([0.2989, 0.587, 0.114], dtype=np.float32))[..., None]
            out = np.clip(f * out + (1 - f) * gray, 0.0, 1.0)
        else:
            hsv = _rgb_to_hsv_np(out)
            hsv[..., 0] = np.mod(hsv[..., 0] + f, 1.0)
            out = _hsv_to_rgb_np(hsv)
    return out.astype(np.float32)


def _rgb_to_hsv_t(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    v = x.amax(1)
    c = v - x.amin(1)
    flat = c == 0
    c_safe = torch.where(flat, torch.ones_like(c), c)
    s = c / torch.where(v == 0, torch.ones_like(v), v)
    rc, gc, bc = (v - r) / c_safe, (v - g) / c_safe, (v - b) / c_safe
    h = torch.where(v == r, bc - gc, torch.where(v == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(flat, torch.zeros_like(h), torch.remainder(h / 6.0, 1.0))
    return torch.stack([h, s, v], 1)


def _hsv_to_rgb_t(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = torch.remainder(i.long(), 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack(
        [
            torch.stack([v, q, p, p, t, v], 1),
            torch.stack([t, v, v, q, p, p], 1),
            torch.stack([p, p, t, v, v, q], 1),
        ],
        1,
    )  # (N, 3, 6, H, W)
    idx = i[:, None, None].expand(-1, 3, 1, -1, -1)
    return torch.gather(table, 2, idx).squeeze(2).clamp(0.0, 1.0)


def _jitter_one_t(x: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    luma = torch.tensor([0.2989, 0.587, 0.114], device=x.device, dtype=x.dtype)
    out = x
    for name in p["order"]:
        f = float(p[name])
        if name == "brightness":
            out = (out * f).clamp(0.0, 1.0)
        elif name == "contrast":
            mean = torch.einsum("nchw,c->nhw", out, luma).mean()
            out = (f * out + (1 - f) * mean).clamp(0.0, 1.0)
        elif name == "saturation":
            gray = torch.einsum("nchw,c->nhw", out, luma).unsqueeze(1)
            out = (f * out + (1 - f) * gray).clamp(0.0, 1.0)
        else:
            hsv = _rgb_to_hsv_t(out)
            hsv = torch.stack([torch.remainder(hsv[:, 0] + f, 1.0), hsv[:, 1], hsv[:, 2]], 1)
            out = _hsv_to_rgb_t(hsv)
    return out


def _jitter_torch(x: torch.Tensor, ps: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    # The order of the four adjustments differs per image, so images are processed one at a time.
    return torch.cat([_jitter_one_t(x[i : i + 1], p) for i, p in enumerate(ps)])


OPS.add(
    "color_jitter",
    Op(
        name="color_jitter",
        summary="torchvision-style brightness, contrast, saturation (factors), hue (shift); random order",
        fields={
            "brightness": Num((0.5, 1.5), lo=0.0, example="[0.5, 1.5]"),
            "contrast": Num((0.5, 1.5), lo=0.0, example="[0.5, 1.5]"),
            "saturation": Num((0.0, 1.5), lo=0.0, example="[0, 1.5]"),
            "hue": Num((-0.1, 0.1), lo=-0.5, hi=0.5, example="[-0.1, 0.1]"),
        },
        sample=_sample_jitter,
        cpu=_jitter_cpu,
        torch=_jitter_torch,
        params=("brightness", "contrast", "saturation", "hue", "order"),
    ),
)
