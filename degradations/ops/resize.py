"""Resize ops: ``downsample`` by a factor and ``resize`` to a size (e.g. back to the input size).

``downsample`` follows CodeFormer: the new size is ``int(H // scale) x int(W // scale)`` (a scale below 1
enlarges). Interpolations are named: ``bilinear`` (cv2.INTER_LINEAR), ``bicubic`` (cv2.INTER_CUBIC, a = -0.75)
and ``area`` (cv2.INTER_AREA). The torch backend uses ``F.interpolate`` (align_corners=False, no
antialiasing), which matches OpenCV's half-pixel convention for bilinear and bicubic, and for ``area`` a
separable resampling matrix with OpenCV's INTER_AREA weights (box overlaps when shrinking, its "area mode"
linear weights when enlarging), since torch's 'area' mode uses integer bins and differs for fractional
factors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from degradations.errors import DegradationsError
from degradations.ops.base import OPS, Op, Params
from degradations.params import Choice, Num, Size

INTERPOLATIONS = ("bilinear", "bicubic", "area")
_CV2 = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}


def _resize_cpu(img: np.ndarray, size: Sequence[int], interpolation: str) -> np.ndarray:
    h, w = int(size[0]), int(size[1])
    out = cv2.resize(img, (w, h), interpolation=_CV2[interpolation])
    return out.reshape(h, w, img.shape[2])  # cv2 drops a singleton channel axis


def area_matrix(src: int, dst: int, shrink: bool) -> np.ndarray:
    """(dst, src) weights of OpenCV's INTER_AREA along one axis.

    ``shrink`` is OpenCV's choice for the whole image (both axes shrink or keep size): box overlap weights;
    otherwise OpenCV falls back to linear interpolation with its "area mode" coefficients.
    """
    scale = src / dst
    inv = dst / src
    m = np.zeros((dst, src), dtype=np.float64)
    for dx in range(dst):
        if shrink:
            f1 = dx * scale
            f2 = f1 + scale
            cell = min(scale, src - f1)
            s2 = min(math.floor(f2), src - 1)
            s1 = min(math.ceil(f1), s2)
            if s1 - f1 > 1e-3:
                m[dx, s1 - 1] += (s1 - f1) / cell
            m[dx, s1:s2] += 1.0 / cell
            if f2 - s2 > 1e-3:
                m[dx, s2] += min(min(f2 - s2, 1.0), cell) / cell
        else:
            sx = math.floor(dx * scale)
            fx = (dx + 1) - (sx + 1) * inv
            fx = 0.0 if fx <= 0 else fx - math.floor(fx)
            if sx >= src - 1:
                sx, fx = src - 1, 0.0
            m[dx, sx] += 1.0 - fx
            if fx > 0:
                m[dx, sx + 1] += fx
    return m


def _resize_torch(x: torch.Tensor, size: Sequence[int], interpolation: str) -> torch.Tensor:
    h, w = int(size[0]), int(size[1])
    if interpolation == "area":
        shrink = h <= x.shape[-2] and w <= x.shape[-1]
        a_h = torch.from_numpy(area_matrix(x.shape[-2], h, shrink)).to(x.device, x.dtype)
        a_w = torch.from_numpy(area_matrix(x.shape[-1], w, shrink)).to(x.device, x.dtype)
        return torch.matmul(torch.matmul(a_h, x), a_w.T)
    return F.interpolate(x, size=(h, w), mode=interpolation, align_corners=False)


def _by_interpolation(
    x: torch.Tensor, ps: Sequence[Mapping[str, Any]], size: Sequence[int]
) -> torch.Tensor:  # one call per interpolation present in the batch
    out = torch.empty((x.shape[0], x.shape[1], int(size[0]), int(size[1])), dtype=x.dtype, device=x.device)
    for mode in sorted({p["interpolation"] for p in ps}):
        idx = [i for i, p in enumerate(ps) if p["interpolation"] == mode]
        sel = torch.tensor(idx, device=x.device)
        out[sel] = _resize_torch(x[sel], size, mode)
    return out


# --- downsample --------------------------------------------------------------------------------------------


def _down_size(p: Mapping[str, Any], hw: tuple[int, int]) -> tuple[int, int]:
    # CodeFormer: int(512 // scale) on the float scale (floor division, then truncation); at least 1 pixel.
    scale = float(p["scale"])
    return max(1, int(hw[0] // scale)), max(1, int(hw[1] // scale))


def _sample_down(rng: np.random.Generator, cfg: Mapping[str, Any]) -> Params:
    return {"scale": Num.draw(rng, cfg["scale"]), "interpolation": Choice.draw(rng, cfg["interpolation"])}


def _down_cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    return _resize_cpu(img, _down_size(p, img.shape[:2]), p["interpolation"])


def _down_torch(x: torch.Tensor, ps: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    sizes = {_down_size(p, (x.shape[-2], x.shape[-1])) for p in ps}
    if len(sizes) != 1:
        raise DegradationsError("downsample: images of one torch batch must share an output size; group them first")
    return _by_interpolation(x, ps, sizes.pop())


OPS.add(
    "downsample",
    Op(
        name="downsample",
        summary="resize by 1/scale to int(H // scale) x int(W // scale) with a named interpolation",
        fields={
            "scale": Num((1.0, 4.0), lo=0.0, lo_open=True, example="[0.8, 8]"),
            "interpolation": Choice(INTERPOLATIONS, "bilinear"),
        },
        sample=_sample_down,
        cpu=_down_cpu,
        torch=_down_torch,
        output_size=_down_size,
        params=("scale", "interpolation"),
    ),
)


# --- resize to a size --------------------------------------------------------------------------------------


def _target(p: Mapping[str, Any], hw: tuple[int, int]) -> tuple[int, int]:
    size = p["size"]
    return (hw[0], hw[1]) if size == "input" else (int(size[0]), int(size[1]))


def _sample_resize(rng: np.random.Generator, cfg: Mapping[str, Any]) -> Params:
    return {"size": cfg["size"], "interpolation": Choice.draw(rng, cfg["interpolation"])}


def _resize_op_cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    return _resize_cpu(img, _target(p, img.shape[:2]), p["interpolation"])


def _resize_op_torch(x: torch.Tensor, ps: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    sizes = {_target(p, (x.shape[-2], x.shape[-1])) for p in ps}
    if len(sizes) != 1:
        raise DegradationsError("resize: images of one torch batch must share a target size; group them first")
    return _by_interpolation(x, ps, sizes.pop())


OPS.add(
    "resize",
    Op(
        name="resize",
        summary="resize to a size; 'input' = the size the pipeline was given (CodeFormer: back to 512)",
        fields={"size": Size("input"), "interpolation": Choice(INTERPOLATIONS, "bilinear")},
        sample=_sample_resize,
        cpu=_resize_op_cpu,
        torch=_resize_op_torch,
        output_size=_target,
        params=("size", "interpolation"),
    ),
)
