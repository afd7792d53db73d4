"""PSNR and SSIM with BasicSR's definitions (`basicsr/metrics/psnr_ssim.py`, used unchanged by GFPGAN, VQFR and
CodeFormer), batched in torch float64 on the 0-255 scale. Higher is better; full reference.

Input: restored and GT float32 RGB NCHW in [0, 1] of the same size. Output: one value per image (PSNR +inf for
identical images). Variants, each with its own column: `psnr`/`ssim` (RGB, BasicSR's default), `psnr[y]`/`ssim[y]`
(BT.601 luma, not rounded), `psnr[mv]`/`ssim[mv]` (VQFR's mean-variance correction first); `crop_border` in the
name when not 0 (`psnr[y,crop4]`). Tolerance: BasicSR's values up to its float32 luma (about 1e-5 dB). The
definitions, the variants and the differences from BasicSR and VQFR in detail: docs/metrics/psnr_ssim.md.
"""

from __future__ import annotations

import math

import torch

from cfbench.errors import BadInputError
from cfbench.metrics.base import MetricKind, MetricSpec, PerImageMetric
from cfbench.metrics.registry import register

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
Y_WEIGHTS = (65.481, 128.553, 24.966)  # R, G, B; /255 for [0, 1] input, offset 16/255


def gaussian_kernel_1d(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA, dtype=torch.float64) -> torch.Tensor:
    """The normalised 1-D Gaussian (as cv2.getGaussianKernel(size, sigma) for sigma > 0), shape (size,)."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA, dtype=torch.float64) -> torch.Tensor:
    """The 2-D SSIM window: outer product of `gaussian_kernel_1d`, shape (size, size), sums to 1."""
    g = gaussian_kernel_1d(size, sigma, dtype)
    return torch.outer(g, g)


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 Y in [16/255, 235/255], not rounded."""
    w = torch.tensor(Y_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True) / 255 + 16 / 255


def correct_mean_var(pred: torch.Tensor, gt: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """VQFR's mean-variance correction: each channel of `pred` gets the mean and population std of `gt`'s.

    `passes` rounds of shift-then-scale (VQFR uses two; after them mean and std both match to rounding). A constant
    channel of `pred` becomes the GT mean. No clipping.
    """
    m = gt.mean((2, 3), keepdim=True)
    s = gt.std((2, 3), correction=0, keepdim=True)
    x = pred
    for _ in range(passes):
        x = x - x.mean((2, 3), keepdim=True) + m
        std = x.std((2, 3), correction=0, keepdim=True)
        # x / std * s; where std is 0 the channel is already constant at m and stays there
        x = torch.where(std > 0, x / torch.where(std > 0, std, 1) * s, x)
    return x


def crop(images: torch.Tensor, border: int) -> torch.Tensor:
    return images[..., border : images.shape[-2] - border, border : images.shape[-1] - border] if border else images


def psnr(pred: torch.Tensor, gt: torch.Tensor, max_value: float = 255.0) -> torch.Tensor:
    """PSNR (N,) in dB of two (N, C, H, W) batches on the 0-`max_value` scale; +inf where they are identical."""
    mse = (pred - gt).pow(2).flatten(1).mean(1)
    return torch.where(mse > 0, 20 * torch.log10(max_value / mse.sqrt()), math.inf)


def _filter_valid(x: torch.Tensor, g: list[float]) -> torch.Tensor:
    """Separable filter of every channel of (N, C, H, W) with the 1-D taps `g`, 'valid' region only.

    Written as a weighted sum of shifted views (rows, then columns): several times faster on CPU than a grouped
    float64 convolution, and the same to 1e-15.
    """
    k = len(g)
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = x[..., 0:h, :] * g[0]
    for i in range(1, k):
        rows.add_(x[..., i : i + h, :], alpha=g[i])
    out = rows[..., 0:w] * g[0]
    for i in range(1, k):
        out.add_(rows[..., i : i + w], alpha=g[i])
    return out


def ssim(pred: torch.Tensor, gt: torch.Tensor, max_value: float = 255.0) -> torch.Tensor:
    """SSIM (N,) of two (N, C, H, W) batches on the 0-`max_value` scale, BasicSR's definition
    (docs/metrics/psnr_ssim.md)."""
    if min(pred.shape[-2:]) < WINDOW_SIZE:
        raise BadInputError(f"SSIM needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE}; got {tuple(pred.shape[-2:])}")
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    g = gaussian_kernel_1d().tolist()
    mu1, mu2 = _filter_valid(pred, g), _filter_valid(gt, g)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    var1 = _filter_valid(pred * pred, g) - mu1_sq
    var2 = _filter_valid(gt * gt, g) - mu2_sq
    cov = _filter_valid(pred * gt, g) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * cov + c2)) / ((mu1_sq + mu2_sq + c1) * (var1 + var2 + c2))
    return ssim_map.mean((2, 3)).mean(1)


# Images per call on the CPU: one at a time, whose float64 arrays stay in cache, is the fastest (SSIM of five 512
# faces: 0.27-0.30 s one by one against 0.47-0.51 s as one batch, the same values); on a GPU the whole batch.
CPU_CHUNK = 1


class _PairMetric(PerImageMetric):
    """PSNR or SSIM on a variant ('rgb', 'y' or 'mv'), with `crop_border`; subclasses set `family` and `_fn`."""

    family: str
    _fn = staticmethod(psnr)

    def __init__(self, device: torch.device | str = "cpu", variant: str = "rgb", crop_border: int = 0) -> None:
        super().__init__(device)
        if variant not in VARIANTS:
            raise BadInputError(f"unknown {self.family} variant {variant!r}; use one of {', '.join(VARIANTS)}")
        if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
            raise BadInputError(f"crop_border must be an integer >= 0; got {crop_border!r}")
        self.variant = variant
        self.crop_border = crop_border
        self.spec = SPECS[self.family, variant]

    @property
    def column_name(self) -> str:
        """The spec name, plus `crop<k>` among the variant tags when `crop_border` is not 0 (`psnr[y,crop4]`)."""
        if not self.crop_border:
            return self.spec.name
        tags = [] if self.variant == "rgb" else [self.variant]
        return f"{self.family}[{','.join([*tags, f'crop{self.crop_border}'])}]"

    def prepare(self, pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float [0, 1] inputs -> the float64 0-255 tensors the metric is computed on (variant, then crop)."""
        pred, gt = pred.double(), gt.double()
        if self.variant == "y":
            pred, gt = rgb_to_y(pred), rgb_to_y(gt)
        elif self.variant == "mv":
            pred = correct_mean_var(pred, gt)
        b = self.crop_border
        if b and 2 * b >= min(pred.shape[-2:]):
            raise BadInputError(f"crop_border={b} leaves nothing of {tuple(pred.shape[-2:])} images")
        return crop(pred, b) * 255, crop(gt, b) * 255

    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        fn, n = type(self)._fn, pred.shape[0]
        step = CPU_CHUNK if self.device.type == "cpu" else n
        if n <= step:
            return fn(*self.prepare(pred, gt))
        return torch.cat([fn(*self.prepare(pred[i : i + step], gt[i : i + step])) for i in range(0, n, step)])


class PSNR(_PairMetric):
    """`psnr`, `psnr[y]`, `psnr[mv]`: BasicSR PSNR in dB, (N,), higher is better, +inf for identical images."""

    family = "psnr"
    _fn = staticmethod(psnr)


class SSIM(_PairMetric):
    """`ssim`, `ssim[y]`, `ssim[mv]`: BasicSR SSIM, (N,), higher is better, 1 for identical images."""

    family = "ssim"
    _fn = staticmethod(ssim)


VARIANTS = {
    "rgb": "on the RGB channels",
    "y": "on the BT.601 Y channel (BasicSR bgr2ycbcr y_only, not rounded)",
    "mv": "on RGB after VQFR's per-channel mean-variance correction of the restored image to the GT",
}
_REFERENCE = {
    "psnr": "BasicSR calculate_psnr (= skimage peak_signal_noise_ratio, data_range=255), equal within 1e-4",
    "ssim": "BasicSR calculate_ssim (= skimage structural_similarity, Gaussian sigma 1.5, population covariance, "
    "data_range=255), equal within 1e-4",
}


def _spec(cls: type[_PairMetric], variant: str) -> MetricSpec:
    is_psnr = cls is PSNR
    reference = _REFERENCE[cls.family]
    if variant == "mv":
        reference += ", after the mean-variance correction of VQFR metric_paper/calculate_psnr_ssim.py"
    return MetricSpec(
        name=cls.family if variant == "rgb" else f"{cls.family}[{variant}]",
        family=cls.family,
        backend="basicsr",
        kind=MetricKind.FULL_REFERENCE,
        higher_is_better=True,
        reference=reference,
        build=lambda device="cpu", crop_border=0: cls(device, variant=variant, crop_border=crop_border),
        description=f"{'PSNR' if is_psnr else 'SSIM'} (0-255 scale, BasicSR) {VARIANTS[variant]}",
        options={"crop_border": 0},
        # the corrected image may leave [0, 1], so psnr[mv] is not bounded below by 0
        value_range=((0.0 if variant != "mv" else -math.inf), math.inf) if is_psnr else (-1.0, 1.0),
        unit="dB" if is_psnr else "",
        label="PSNR" if is_psnr else "SSIM",
        role="fidelity",
        # the mean-variance correction rounds: psnr[mv] of identical images is large (~330 dB), not infinite
        identity=None if variant == "mv" else math.inf if is_psnr else 1.0,
    )


SPECS: dict[tuple[str, str], MetricSpec] = {
    (cls.family, v): register(_spec(cls, v)) for cls in (PSNR, SSIM) for v in VARIANTS
}
