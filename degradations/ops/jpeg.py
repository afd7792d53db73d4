"""JPEG compression at a quality.

CPU: libjpeg(-turbo) through ``cv2.imencode``/``cv2.imdecode`` of the BGR uint8 image (the 8-bit conversion
rounds to nearest, as OpenCV's float-to-uint8 conversion in CodeFormer's pipeline does; OpenCV's default 4:2:0
chroma subsampling). The quality is drawn uniformly and truncated with ``int()`` as CodeFormer does, so a
range [60, 100] yields the integers 60..99.

Torch: a batched re-implementation of the same baseline path in libjpeg's integer arithmetic (not a blur):
8-bit rounding, fixed-point RGB->YCbCr, 4:2:0 chroma (2x2 box with libjpeg's rounding biases), edge-replicated
16x16 macroblocks, the "islow" integer 8x8 DCT, quantisation with the IJG tables (JPEG Annex K) scaled for the
quality as libjpeg's ``jpeg_quality_scaling`` does, dequantisation, the islow IDCT, "fancy" chroma upsampling
and fixed-point YCbCr->RGB. With OpenCV's bundled libjpeg-turbo it reproduces
``cv2.imencode``/``cv2.imdecode`` bit for bit in our tests (docs/degradations.md); it is not differentiable
(LQ synthesis needs no gradients).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from degradations.ops.base import OPS, Op, Params
from degradations.params import Num

# IJG / JPEG Annex K base tables, natural (row-major) order.
LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)
CHROMA_TABLE = np.full((8, 8), 99, dtype=np.int64)
CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def quant_table(quality: int, chroma: bool = False) -> np.ndarray:
    """The (8, 8) int64 quantisation table libjpeg uses at ``quality`` 1..100 (baseline: entries 1..255)."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    base = CHROMA_TABLE if chroma else LUMA_TABLE
    return np.clip((base * scale + 50) // 100, 1, 255)


def _jpeg_cpu(img: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    bgr = np.ascontiguousarray(np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)[:, :, ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(p["quality"])])
    if not ok:
        raise RuntimeError("cv2.imencode('.jpg') failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(dec[:, :, ::-1]).astype(np.float32) / 255.0


# Fixed-point constants of libjpeg: colour conversion uses 16 fractional bits; the "islow" integer DCT uses 13
# (CONST_BITS) and keeps 2 extra bits between its passes (PASS1_BITS).
_SCALEBITS, _CONST_BITS, _PASS1_BITS = 16, 13, 2
_HALF = 1 << (_SCALEBITS - 1)


def _fix(x: float, bits: int) -> int:
    return int(x * (1 << bits) + 0.5)


(_F0298, _F0390, _F0541, _F0765, _F0899, _F1175, _F1501, _F1847, _F1961, _F2053, _F2562, _F3072) = (
    _fix(c, _CONST_BITS)
    for c in (
        0.298631336, 0.390180644, 0.541196100, 0.765366865, 0.899976223, 1.175875602,
        1.501321110, 1.847759065, 1.961570560, 2.053119869, 2.562915447, 3.072711026,
    )
)  # fmt: skip


def _descale(x: torch.Tensor, n: int) -> torch.Tensor:
    """Divide by 2**n rounding half up (libjpeg's DESCALE; >> is an arithmetic shift on signed ints)."""
    return (x + (1 << (n - 1))) >> n


def _odd_part(t4: torch.Tensor, t5: torch.Tensor, t6: torch.Tensor, t7: torch.Tensor) -> tuple:
    # The shared rotation network of the islow FDCT/IDCT odd part (Loeffler-Ligtenberg-Moschytz).
    z1, z2, z3, z4 = t4 + t7, t5 + t6, t4 + t6, t5 + t7
    z5 = (z3 + z4) * _F1175
    z1, z2 = z1 * -_F0899, z2 * -_F2562
    z3, z4 = z3 * -_F1961 + z5, z4 * -_F0390 + z5
    return t4 * _F0298 + z1 + z3, t5 * _F2053 + z2 + z4, t6 * _F3072 + z2 + z3, t7 * _F1501 + z1 + z4


def _fdct_1d(d: list[torch.Tensor], final: bool) -> list[torch.Tensor]:
    """One pass of libjpeg's integer forward DCT over 8 vectors (8 x the true DCT after both passes)."""
    t0, t7 = d[0] + d[7], d[0] - d[7]
    t1, t6 = d[1] + d[6], d[1] - d[6]
    t2, t5 = d[2] + d[5], d[2] - d[5]
    t3, t4 = d[3] + d[4], d[3] - d[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    shift = _CONST_BITS + _PASS1_BITS if final else _CONST_BITS - _PASS1_BITS
    if final:
        out0, out4 = _descale(t10 + t11, _PASS1_BITS), _descale(t10 - t11, _PASS1_BITS)
    else:
        out0, out4 = (t10 + t11) << _PASS1_BITS, (t10 - t11) << _PASS1_BITS
    z1 = (t12 + t13) * _F0541
    out2, out6 = _descale(z1 + t13 * _F0765, shift), _descale(z1 - t12 * _F1847, shift)
    o7, o5, o3, o1 = (_descale(v, shift) for v in _odd_part(t4, t5, t6, t7))
    return [out0, o1, out2, o3, out4, o5, out6, o7]


def _idct_1d(d: list[torch.Tensor], final: bool) -> list[torch.Tensor]:
    """One pass of libjpeg's integer inverse DCT (the final pass also removes the factor 8)."""
    z1 = (d[2] + d[6]) * _F0541
    t2, t3 = z1 - d[6] * _F1847, z1 + d[2] * _F0765
    t0, t1 = (d[0] + d[4]) << _CONST_BITS, (d[0] - d[4]) << _CONST_BITS
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    o0, o1, o2, o3 = _odd_part(d[7], d[5], d[3], d[1])
    shift = _CONST_BITS + _PASS1_BITS + 3 if final else _CONST_BITS - _PASS1_BITS
    pairs = [(t10, o3), (t11, o2), (t12, o1), (t13, o0)]
    return [_descale(a + b, shift) for a, b in pairs] + [_descale(a - b, shift) for a, b in reversed(pairs)]


def _code_plane(samples: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Encode and decode one plane: (N, H, W) int32 samples 0..255 (H, W multiples of 8), (N, 8, 8) tables."""
    n, h, w = samples.shape
    blocks = samples.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4) - 128  # (n, by, bx, row, col)
    rows = torch.stack(_fdct_1d([blocks[..., c] for c in range(8)], final=False), -1)
    coef = torch.stack(_fdct_1d([rows[..., r, :] for r in range(8)], final=True), -2)  # 8 x the true DCT
    q = tables[:, None, None]
    q8 = q * 8
    # Quantise: divide by 8 q rounding half away from zero (libjpeg's quantiser), then dequantise.
    levels = torch.where(coef < 0, -((-coef + (q8 >> 1)) // q8), (coef + (q8 >> 1)) // q8)
    deq = levels * q
    cols = torch.stack(_idct_1d([deq[..., r, :] for r in range(8)], final=False), -2)
    out = torch.stack(_idct_1d([cols[..., c] for c in range(8)], final=True), -1)
    return (out + 128).clamp(0, 255).permute(0, 1, 3, 2, 4).reshape(n, h, w)


def _ycc_to_rgb(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
    cb, cr = cb - 128, cr - 128
    r = y + ((_fix(1.402, _SCALEBITS) * cr + _HALF) >> _SCALEBITS)
    g = y + ((-_fix(0.34414, _SCALEBITS) * cb - _fix(0.71414, _SCALEBITS) * cr + _HALF) >> _SCALEBITS)
    b = y + ((_fix(1.772, _SCALEBITS) * cb + _HALF) >> _SCALEBITS)
    return torch.stack([r, g, b], 1).clamp(0, 255)


def _pad_rows(plane: torch.Tensor) -> torch.Tensor:
    """Replicate the last row of (..., H, W) int samples to a multiple of 8 rows."""
    extra = (-plane.shape[-2]) % 8
    return torch.cat([plane, plane[..., -1:, :].expand(*plane.shape[:-2], extra, plane.shape[-1])], -2)


def _upsample_chroma(c: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """libjpeg's 2x2 chroma upsampling of (N, 2, ceil(H/2), ceil(W/2)) samples to (N, 2, H, W).

    "Fancy" upsampling is a triangle filter (3/4 nearer + 1/4 farther sample, vertically then horizontally,
    edges replicated, rounding biases 8 and 7 alternating); libjpeg uses plain pixel replication instead when
    the chroma is at most 2 samples wide.
    """
    if c.shape[-1] <= 2:
        return c.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :h, :w]
    cp = torch.cat([c[..., :1, :], c, c[..., -1:, :]], -2)
    near3 = 3 * cp[..., 1:-1, :]
    col = torch.stack([near3 + cp[..., :-2, :], near3 + cp[..., 2:, :]], -2).flatten(-3, -2)
    colp = torch.cat([col[..., :1], col, col[..., -1:]], -1)
    near3 = 3 * colp[..., 1:-1]
    out = torch.stack([(near3 + colp[..., :-2] + 8) >> 4, (near3 + colp[..., 2:] + 7) >> 4], -1).flatten(-2)
    return out[..., :h, :w]


def jpeg_torch(x: torch.Tensor, qualities: Sequence[int]) -> torch.Tensor:
    """Baseline JPEG (4:2:0) encode + decode of an (N, 3, H, W) RGB batch in [0, 1], one quality per image,
    in libjpeg's integer arithmetic. Returns float32 multiples of 1/255 on the input's device."""
    n, _, h, w = x.shape
    dev, i32 = x.device, torch.int32
    rgb = torch.round(x.clamp(0, 1) * 255.0)
    # Edges as libjpeg pads them: columns replicated at full resolution to whole 16-pixel macroblocks; rows
    # only to an even count here, then each plane's last row is replicated to whole 8-row blocks.
    rgb = F.pad(rgb, (0, (-w) % 16, 0, h % 2), mode="replicate").to(i32)
    r, g, b = rgb.unbind(1)
    fx = lambda v: _fix(v, _SCALEBITS)  # noqa: E731
    offset = (128 << _SCALEBITS) + _HALF - 1
    y = (fx(0.299) * r + fx(0.587) * g + fx(0.114) * b + _HALF) >> _SCALEBITS
    cb = (-fx(0.16874) * r - fx(0.33126) * g + fx(0.5) * b + offset) >> _SCALEBITS
    cr = (fx(0.5) * r - fx(0.41869) * g - fx(0.08131) * b + offset) >> _SCALEBITS
    c = torch.stack([cb, cr], 1)
    # 2x2 box downsampling with libjpeg's alternating rounding bias 1, 2, 1, 2, ... along each row.
    s = c[..., 0::2, 0::2] + c[..., 0::2, 1::2] + c[..., 1::2, 0::2] + c[..., 1::2, 1::2]
    bias = torch.tensor([1, 2], dtype=i32, device=dev).repeat(s.shape[-1] // 2)
    c = _pad_rows((s + bias) >> 2)
    y = _pad_rows(y)
    luma_q = torch.from_numpy(np.stack([quant_table(q) for q in qualities])).to(dev, i32)
    chroma_q = torch.from_numpy(np.stack([quant_table(q, chroma=True) for q in qualities])).to(dev, i32)
    y = _code_plane(y, luma_q)[:, :h, :w]
    c = torch.stack([_code_plane(c[:, i], chroma_q) for i in range(2)], 1)
    c = _upsample_chroma(c[:, :, : (h + 1) // 2, : (w + 1) // 2], h, w)
    return (_ycc_to_rgb(y, c[:, 0], c[:, 1]).to(torch.float32) / 255.0).to(x.dtype)


def _sample(rng: np.random.Generator, cfg: Mapping[str, Any]) -> Params:
    return {"quality": int(Num.draw(rng, cfg["quality"]))}


OPS.add(
    "jpeg",
    Op(
        name="jpeg",
        summary="JPEG compression; quality drawn uniformly then truncated with int() (CodeFormer)",
        fields={"quality": Num((30.0, 95.0), lo=1.0, hi=100.0, example="[60, 100]")},
        sample=_sample,
        cpu=_jpeg_cpu,
        torch=lambda x, ps: jpeg_torch(x, [int(p["quality"]) for p in ps]),
        params=("quality",),
    ),
)
