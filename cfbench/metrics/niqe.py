"""NIQE `niqe` (Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE SPL 2013)
as BasicSR 1.4.2's `calculate_niqe(img, crop_border=0, input_order='HWC', convert_to='y')` computes it from the
MATLAB release: the protocol of GFPGAN, VQFR and CodeFormer. Lower is better; no ground truth.

Input: float32 RGB NCHW in [0, 1], at least 192x192 after `crop_border`. Output: one score per image, NaN for a flat
image (fewer than two 96x96 blocks with all features defined), as in BasicSR. Pristine model: the release's, bundled
as `cfbench/weights_bundled/niqe_pris_params.npz`. Tolerance: within 8e-4 of BasicSR on
tests/data/reference/niqe_golden.json (values in float64, rounded to float32 wherever BasicSR holds float32).
The algorithm step by step, the precision argument and the differences from BasicSR, MATLAB and pyiqa:
docs/metrics/niqe.md.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from cfbench import weights
from cfbench.errors import BadInputError
from cfbench.metrics.base import MetricKind, MetricSpec, PerImageMetric
from cfbench.metrics.registry import register

BLOCK = 96  # block side at the first scale; the second scale uses BLOCK // 2
MIN_SIZE = 2 * BLOCK  # two blocks per side, after crop_border
# Images processed together. On CPU one at a time is fastest (a 512x512 image's arrays stay in cache: 0.05 s per
# image on one core, against 0.13 s per image in batches of 4); on a GPU, batches of 16 (about 40 MB per image).
CHUNK = {"cpu": 1}
DEFAULT_CHUNK = 16
Y_WEIGHTS = (65.481, 128.553, 24.966)  # R, G, B


@functools.lru_cache(maxsize=1)
def _gamma_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The AGGD shape grid and, per grid point a: r(a), sqrt(G(1/a) / G(3/a)) and G(2/a) / G(1/a).

    r uses the reciprocal times 2 and 3 and the other two use 1/a, 2/a, 3/a, as BasicSR computes them.
    """
    grid = np.arange(0.2, 10.001, 0.001)
    g = np.vectorize(math.gamma, otypes=[np.float64])
    rec = np.reciprocal(grid)
    ratio = np.square(g(rec * 2)) / (g(rec) * g(rec * 3))
    beta = np.sqrt(g(1 / grid) / g(3 / grid))
    mean = g(2 / grid) / g(1 / grid)
    if not np.all(np.diff(ratio) > 0):  # the binary search below relies on it
        raise RuntimeError("the AGGD moment ratio is not strictly increasing on the shape grid")
    return grid, ratio, beta, mean


def _half_size_taps() -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Offsets (relative to 2i) and weights of the input pixels of output pixel i of MATLAB `imresize(x, 0.5)`.

    Output pixel i (0-based) is centred at input coordinate 2i + 0.5; the cubic convolution kernel (a = -0.5)
    stretched by 2 for antialiasing spans 8 pixels: 10 candidate taps from floor(centre - 4), normalised to sum 1,
    the two end taps of weight 0 dropped (as MATLAB and BasicSR do). The weights are dyadic fractions, exact in
    float32: -3/256, -9/256, 29/256, 111/256, 111/256, 29/256, -9/256, -3/256 at offsets -3..4.
    """
    scale = 0.5
    width = 4 / scale
    centre = 0.5 / scale - 0.5  # of output pixel 0, in input pixels (0-based)
    first = math.floor(centre + 1 - width / 2) - 1  # MATLAB's 1-based floor(u - width / 2), made 0-based
    offsets, coefs = [], []
    for j in range(math.ceil(width) + 2):
        d = abs(centre - (first + j)) * scale
        c = 1.5 * d**3 - 2.5 * d**2 + 1 if d <= 1 else (-0.5 * d**3 + 2.5 * d**2 - 4 * d + 2 if d <= 2 else 0.0)
        if c != 0:
            offsets.append(first + j)
            coefs.append(scale * c)
    total = sum(coefs)
    return tuple(offsets), tuple(c / total for c in coefs)


def _f32(x: torch.Tensor) -> torch.Tensor:
    """Round float64 values to the nearest float32 and back: one float32 operation, correctly rounded (float64
    results of +, -, *, / and sqrt of float32 operands round to float32 exactly as the float32 operation does)."""
    return x.float().double()


def shrink_half(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) float32 values -> (N, H/2, W/2) by MATLAB `imresize(x, 0.5)` (bicubic, antialiasing), H, W even.

    Separable, rows then columns, with symmetric (mirror, edge repeated) border; each output pixel is the sum of
    its 8 taps in order, every product and partial sum rounded to float32, as BasicSR's float32 torch `imresize`
    (bit for bit for its row pass; its column pass is an MKL `sgemv` with another summation order).
    """
    offsets, coefs = _half_size_taps()
    lo, hi = -min(offsets), max(offsets)

    def along_last(z: torch.Tensor) -> torch.Tensor:
        n = z.shape[-1]
        zp = torch.cat([z[..., :lo].flip(-1), z, z[..., n - hi :].flip(-1)], -1)
        acc = None
        for off, c in zip(offsets, coefs, strict=True):
            tap = _f32(zp[..., lo + off : lo + off + n : 2] * c)
            acc = tap if acc is None else _f32(acc + tap)
        return acc

    return along_last(along_last(x.transpose(-1, -2)).transpose(-1, -2))  # rows first, as BasicSR


def rgb_to_y_rounded(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float RGB in [0, 1] -> (N, H, W) float64 BasicSR NIQE luma: integers in [16, 235].

    The dot product and the offset in float64, the result stored as float32 [0, 1], times 255 in float32, rounded
    half to even (numpy's and torch's `round`), as BasicSR's `to_y_channel` followed by `.round()`.
    """
    x = images.to(torch.float32).double()
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = b * Y_WEIGHTS[2] + g * Y_WEIGHTS[1] + r * Y_WEIGHTS[0] + 16.0
    y = (y / 255).float() * 255
    return y.round().double()


def window_filter(z: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Convolve each (H, W) image of (M, H, W) with `window`, replicating the border; float64 sums.

    A separable window (the release's is the outer product of a 7-tap Gaussian, to 1e-17) is applied as a column
    then a row filter, 7 + 7 instead of 49 taps; any other window as a whole.
    """
    kh, kw = window.shape
    w = window.flip(0, 1)  # a true convolution (the release's window is symmetric anyway)
    zp = F.pad(z[:, None], (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2), mode="replicate")
    col, row = w.sum(1) / w.sum(), w.sum(0)
    if torch.allclose(torch.outer(col, row), w, rtol=0, atol=1e-15):
        return F.conv2d(F.conv2d(zp, col.view(1, 1, kh, 1)), row.view(1, 1, 1, kw))[:, 0]
    return F.conv2d(zp, w[None, None])[:, 0]


def mscn(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> MSCN coefficients (x - mu) / (sigma + 1), Gaussian-window statistics, replicated border.

    The window sums are taken in float64 and each result and each later operation rounded to float32, as BasicSR's
    float32 arrays through `scipy.ndimage.convolve` (float64 inside, output in the input's dtype) and numpy float32
    arithmetic: bit for bit the same coefficients.
    """
    r = _f32
    x = r(x)
    stats = r(window_filter(torch.cat([x, r(x * x)]), window))  # mu and E[x^2] of all images
    mu, mean_sq = stats[: x.shape[0]], stats[x.shape[0] :]
    sigma = r(r(mean_sq - r(mu * mu)).abs().sqrt())
    return r(r(x - mu) / r(sigma + 1))


def _blocks(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W) with H, W multiples of `size` -> (N, B, size, size), blocks column by column (BasicSR's order)."""
    n, h, w = x.shape
    return x.reshape(n, h // size, size, w // size, size).permute(0, 3, 1, 2, 4).reshape(n, -1, size, size)


class _Tables:
    """The gamma tables as tensors on one device."""

    def __init__(self, device: torch.device) -> None:
        grid, ratio, beta, mean = _gamma_tables()
        self.grid, self.ratio, self.beta, self.mean = (
            torch.from_numpy(a).to(device) for a in (grid, ratio, beta, mean)
        )

    def nearest(self, value: torch.Tensor) -> torch.Tensor:
        """Index of the grid ratio nearest to `value` (first on ties; 0 for NaN, as argmin over all-NaN)."""
        r = self.ratio
        hi = torch.searchsorted(r, value.contiguous()).clamp_(0, r.numel() - 1)
        lo = (hi - 1).clamp_(min=0)
        pick = torch.where((r[hi] - value) ** 2 < (r[lo] - value) ** 2, hi, lo)
        return torch.where(torch.isnan(value), torch.zeros_like(pick), pick)

    def aggd(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """AGGD fit of the last dimension: grid index, shape alpha, left and right scales (NaN for an empty side)."""
        sq = x * x
        neg, pos = x < 0, x > 0
        left = ((sq * neg).sum(-1) / neg.sum(-1)).sqrt()  # 0 / 0 = NaN when there is no negative value
        right = ((sq * pos).sum(-1) / pos.sum(-1)).sqrt()
        ghat = left / right
        rhat = x.abs().mean(-1) ** 2 / sq.mean(-1)
        rhat_norm = rhat * (ghat**3 + 1) * (ghat + 1) / (ghat**2 + 1) ** 2
        i = self.nearest(rhat_norm)
        return i, self.grid[i], left * self.beta[i], right * self.beta[i]

    def features(self, blocks: torch.Tensor) -> torch.Tensor:
        """(N, B, h, w) MSCN blocks -> (N, B, 18) NIQE features."""
        _, alpha, bl, br = self.aggd(blocks.flatten(-2))
        feats = [alpha, (bl + br) / 2]
        for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
            pair = blocks * torch.roll(blocks, shifts=shift, dims=(-2, -1))
            i, alpha, bl, br = self.aggd(pair.flatten(-2))
            feats += [alpha, (br - bl) * self.mean[i], bl, br]
        return torch.stack(feats, -1)


def niqe_from_luma(
    y: torch.Tensor,
    mu_pris: torch.Tensor,
    cov_pris: torch.Tensor,
    window: torch.Tensor,
    tables: _Tables,
) -> torch.Tensor:
    """NIQE (N,) of (N, H, W) float64 luma on the 0-255 scale (steps 2-6 of docs/metrics/niqe.md, no crop_border)."""
    n, h, w = y.shape
    x = y[:, : h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    feats = [tables.features(_blocks(mscn(x, window), BLOCK))]
    half = _f32(shrink_half(_f32(x / 255)) * 255)  # BasicSR: imresize(img / 255.) * 255. on float32 arrays
    feats.append(tables.features(_blocks(mscn(half, window), BLOCK // 2)))
    f = torch.cat(feats, -1)  # (N, B, 36)

    mu = torch.nanmean(f, 1)
    valid = ~torch.isnan(f).any(-1)  # blocks with all 36 features
    count = valid.sum(1)
    fv = torch.where(valid[..., None], f, 0)
    mean_v = fv.sum(1) / count.clamp(min=1)[:, None]
    d = (fv - mean_v[:, None]) * valid[..., None]
    cov = d.transpose(1, 2) @ d / (count - 1).clamp(min=1)[:, None, None]
    ok = count >= 2
    a = (cov_pris + cov) / 2
    a = torch.where(ok[:, None, None], a, torch.eye(a.shape[-1], dtype=a.dtype, device=a.device))
    diff = (mu_pris - mu)[:, None]  # (N, 1, 36)
    q = (diff @ torch.linalg.pinv(a, rtol=1e-15) @ diff.transpose(1, 2)).reshape(n)
    return torch.where(ok, q.sqrt(), math.nan)


class NIQE(PerImageMetric):
    """`niqe`: MATLAB-compatible NIQE (BasicSR 1.4.2 `calculate_niqe(convert_to='y')`), (N,), lower is better.

    All images of a batch must have the same size, at least 192x192 after `crop_border`.
    """

    def __init__(self, device: torch.device | str = "cpu", crop_border: int = 0) -> None:
        super().__init__(device)
        if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
            raise BadInputError(f"crop_border must be an integer >= 0; got {crop_border!r}")
        self.crop_border = crop_border
        params = np.load(weights.require("niqe_pris_params"))
        self.mu_pris = torch.from_numpy(params["mu_pris_param"].reshape(-1)).double().to(self.device)
        self.cov_pris = torch.from_numpy(params["cov_pris_param"]).double().to(self.device)
        self.window = torch.from_numpy(params["gaussian_window"]).double().to(self.device)
        self.tables = _Tables(self.device)
        self.chunk = CHUNK.get(self.device.type, DEFAULT_CHUNK)

    @property
    def column_name(self) -> str:
        """`niqe`, or `niqe[crop<k>]` when `crop_border` is k > 0."""
        return f"{self.spec.family}[crop{self.crop_border}]" if self.crop_border else self.spec.name

    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        b = self.crop_border
        if min(pred.shape[-2:]) - 2 * b < MIN_SIZE:
            after = f" after crop_border={b}" if b else ""
            raise BadInputError(
                f"NIQE needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels{after} (two {BLOCK}x{BLOCK} blocks per "
                f"side); got {pred.shape[-2]}x{pred.shape[-1]}"
            )
        out = []
        with _single_thread_on_cpu(self.device):
            for start in range(0, pred.shape[0], self.chunk):
                y = rgb_to_y_rounded(pred[start : start + self.chunk])
                if b:
                    y = y[:, b:-b, b:-b]
                out.append(niqe_from_luma(y, self.mu_pris, self.cov_pris, self.window, self.tables))
        return torch.cat(out)


@contextlib.contextmanager
def _single_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """NIQE is thousands of small tensor operations: on a busy 2-core CPU, torch's intra-op threads made it 40x
    slower than one thread (benchmarks/README.md); the thread count is restored afterwards."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


NIQE.spec = register(
    MetricSpec(
        name="niqe",
        family="niqe",
        backend="matlab",
        kind=MetricKind.NO_REFERENCE,
        higher_is_better=False,
        reference="MATLAB niqe_release via BasicSR 1.4.2 calculate_niqe(img, crop_border, input_order='HWC', "
        "convert_to='y'): equal within 1e-3 (max 8e-4 measured; BasicSR itself varies by 2e-3 with the MKL code "
        "path) on 14 real-face cases, tests/data/reference/niqe_golden.json",
        build=lambda device="cpu", crop_border=0: NIQE(device, crop_border=crop_border),
        description="MATLAB niqe_release via BasicSR 1.4.2 calculate_niqe(convert_to='y'): NIQE of the rounded "
        "BT.601 Y channel, 96x96 blocks, 2 scales, pristine model of the release",
        weights=("niqe_pris_params",),
        options={"crop_border": 0},
        value_range=(0.0, math.inf),
        label="NIQE",
        role="quality",
    )
)
