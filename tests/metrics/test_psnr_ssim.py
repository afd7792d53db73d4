"""PSNR/SSIM (BasicSR definitions) against scikit-image, the Y and mean-variance variants, invariants, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cfbench.errors import BadInputError
from cfbench.imageio import read_image
from cfbench.metrics import psnr_ssim
from cfbench.metrics.psnr_ssim import PSNR, SSIM, correct_mean_var, gaussian_window
from cfbench.metrics.registry import get_metric

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"
NAMES = sorted(p.name for p in (DATA / "gt").glob("*.png"))


@pytest.fixture(scope="module")
def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """(restored, gt): the 4 degraded test faces and their GT, (4, 3, 512, 512) in [0, 1]."""
    lq = torch.stack([read_image(DATA / "lq" / n) for n in NAMES])
    gt = torch.stack([read_image(DATA / "gt" / n) for n in NAMES])
    return lq, gt


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.double().permute(1, 2, 0).numpy()


def _y(img: np.ndarray) -> np.ndarray:
    """BT.601 Y of an HWC RGB [0, 1] array, as BasicSR's bgr2ycbcr(y_only=True), not rounded."""
    return img @ np.array([65.481, 128.553, 24.966]) / 255 + 16 / 255


def _vqfr_correct(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """VQFR calculate_psnr_ssim.py's mean-variance correction, written out with numpy (HWC)."""
    out = pred.copy()
    for c in range(out.shape[2]):
        for _ in range(2):
            out[:, :, c] = out[:, :, c] - out[:, :, c].mean() + gt[:, :, c].mean()
            out[:, :, c] = out[:, :, c] / out[:, :, c].std() * gt[:, :, c].std()
    return out


def _reference(pred: np.ndarray, gt: np.ndarray, border: int) -> tuple[float, float]:
    """scikit-image PSNR and SSIM on the 0-255 scale, settings chosen to equal BasicSR's definitions:

    - data_range=255: BasicSR's PSNR 20 log10(255 / sqrt(MSE)) and its c1 = (0.01*255)^2, c2 = (0.03*255)^2;
    - gaussian_weights=True, sigma=1.5: skimage's window is then 2 * int(3.5 * 1.5 + 0.5) + 1 = 11 taps of the
      normalised Gaussian, the outer product of cv2.getGaussianKernel(11, 1.5) that BasicSR uses;
    - use_sample_covariance=False: population (co)variances, as BasicSR's E[xy] - E[x]E[y];
    - skimage averages the map after cropping (11 - 1) / 2 = 5 pixels on each side, the region BasicSR keeps after
      cv2.filter2D + [5:-5, 5:-5] (the border handling of the filter never reaches it);
    - channel_axis: per-channel SSIM, then the mean over channels, as BasicSR.
    """
    if border:
        pred, gt = pred[border:-border, border:-border], gt[border:-border, border:-border]
    gt255, pred255 = gt * 255, pred * 255
    p = peak_signal_noise_ratio(gt255, pred255, data_range=255)
    s = structural_similarity(
        gt255,
        pred255,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=2 if gt255.ndim == 3 else None,
    )
    return p, s


@pytest.mark.parametrize("border", [0, 4])
@pytest.mark.parametrize("variant", ["rgb", "y", "mv"])
def test_matches_scikit_image(pairs, variant, border):
    pred, gt = pairs
    ours_p = PSNR(variant=variant, crop_border=border)(pred, gt)
    ours_s = SSIM(variant=variant, crop_border=border)(pred, gt)
    assert ours_p.shape == ours_s.shape == (len(NAMES),)
    for i in range(len(NAMES)):
        p, g = _hwc(pred[i]), _hwc(gt[i])
        if variant == "y":
            p, g = _y(p), _y(g)
        elif variant == "mv":
            p = _vqfr_correct(p, g)
        ref_p, ref_s = _reference(p, g, border)
        assert abs(float(ours_p[i]) - ref_p) < 1e-4, (NAMES[i], float(ours_p[i]), ref_p)
        assert abs(float(ours_s[i]) - ref_s) < 1e-4, (NAMES[i], float(ours_s[i]), ref_s)


def test_window_is_the_opencv_gaussian():
    g = cv2.getGaussianKernel(11, 1.5)
    np.testing.assert_allclose(gaussian_window().numpy(), g @ g.T, rtol=0, atol=1e-15)


def test_mean_var_correction_matches_gt_statistics(pairs):
    pred, gt = (x.double() for x in pairs)
    out = correct_mean_var(pred, gt)
    torch.testing.assert_close(out.mean((2, 3)), gt.mean((2, 3)), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.std((2, 3), correction=0), gt.std((2, 3), correction=0), rtol=0, atol=1e-12)


def test_mean_var_correction_of_a_constant_channel_gives_the_gt_mean(pairs):
    gt = pairs[1][:1].double()
    pred = gt.clone()
    pred[:, 1] = 0.5
    out = correct_mean_var(pred, gt)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 1], gt[:, 1].mean().expand_as(out[:, 1]))


@pytest.mark.parametrize("variant", ["rgb", "y", "mv"])
def test_identical_images(pairs, variant):
    x = pairs[1][:2, :, :64, :64]
    p = PSNR(variant=variant)(x, x)
    if variant == "mv":  # the correction of an image to itself moves it by rounding errors only (~1e-16)
        assert (p > 250).all()
    else:
        assert p.tolist() == [math.inf, math.inf]
    torch.testing.assert_close(SSIM(variant=variant)(x, x), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 64])  # the CPU's one image per call, and one call per batch (as on a GPU)
@pytest.mark.parametrize("cls", [PSNR, SSIM])
def test_batch_size_independent(pairs, cls, chunk, monkeypatch):
    monkeypatch.setattr(psnr_ssim, "CPU_CHUNK", chunk)
    pred, gt = (x[..., 100:228, 100:228] for x in pairs)
    metric = cls(variant="mv", crop_border=2)
    together = metric(pred, gt)
    alone = torch.cat([metric(pred[i : i + 1], gt[i : i + 1]) for i in range(len(pred))])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-12)


def test_registry_and_column_names():
    for name in ("psnr", "ssim", "psnr[y]", "ssim[y]", "psnr[mv]", "ssim[mv]"):
        spec = get_metric(name)
        assert spec.higher_is_better and spec.needs_gt and spec.options == {"crop_border": 0}
        assert spec.build("cpu").column_name == name
    assert get_metric("psnr").unit == "dB" and get_metric("ssim").value_range == (-1.0, 1.0)
    assert get_metric("psnr[y]").build("cpu", crop_border=4).column_name == "psnr[y,crop4]"
    assert get_metric("ssim").build("cpu", crop_border=4).column_name == "ssim[crop4]"
    assert SSIM(variant="mv", crop_border=2).column_name == "ssim[mv,crop2]"


def test_rejects_bad_input():
    x = torch.rand(2, 3, 32, 32)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    bad = [
        (x, torch.rand(2, 3, 32, 30)),  # sizes differ
        (nan, x),  # NaN
        (x * 1.5, x),  # outside [0, 1]
        (x[:, :1], x[:, :1]),  # grayscale
    ]
    for cls in (PSNR, SSIM):
        for pred, gt in bad:
            with pytest.raises(BadInputError):
                cls()(pred, gt)
    with pytest.raises(BadInputError, match="crop_border"):
        PSNR(crop_border=16)(x, x)
    with pytest.raises(BadInputError, match="crop_border"):
        PSNR(crop_border=-1)
    with pytest.raises(BadInputError, match="at least 11x11"):
        SSIM()(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(BadInputError, match="variant"):
        SSIM(variant="ycbcr")
