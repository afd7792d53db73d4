"""Single ops on both backends: sizes, noise statistics, JPEG monotonicity, colour ops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from degradations import OPS, apply_op
from degradations.ops.jpeg import quant_table
from tests.degradations.helpers import psnr

BACKENDS = ["cpu", "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("scale", "expected"),
    [(4.3, 119), (4.0, 128), (8.0, 64), (30.0, 17), (0.8, 639), (1.0, 512)],  # int(512 // scale)
)
def test_downsample_size_follows_int_floor_division(backend: str, scale: float, expected: int) -> None:
    img = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(1))
    for interp in ("bilinear", "bicubic", "area"):
        out = apply_op("downsample", img, {"scale": scale, "interpolation": interp}, backend)
        assert out.shape == (1, 3, expected, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_downsample_non_square_and_resize_to_a_size(backend: str) -> None:
    img = torch.rand(2, 3, 100, 60, generator=torch.Generator().manual_seed(2))
    down = apply_op("downsample", img, {"scale": 3.0, "interpolation": "area"}, backend)
    assert down.shape == (2, 3, 33, 20)
    up = apply_op("resize", down, {"size": [100, 60], "interpolation": "bicubic"}, backend)
    assert up.shape == (2, 3, 100, 60)


def test_area_downsample_by_an_integer_factor_is_the_block_mean() -> None:
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ref = torch.nn.functional.avg_pool2d(img, 4)
    for backend in BACKENDS:
        out = apply_op("downsample", img, {"scale": 4.0, "interpolation": "area"}, backend)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sigma", [2.0, 10.0, 20.0])
def test_gaussian_noise_std_matches_sigma(backend: str, sigma: float) -> None:
    img = torch.full((1, 3, 256, 256), 0.5)  # far from the clip limits
    out = apply_op("gaussian_noise", img, {"sigma": sigma, "gray": False, "seed": 11}, backend)
    measured = float((out - img).std()) * 255.0
    assert abs(measured - sigma) < 0.02 * sigma
    assert abs(float((out - img).mean())) * 255 < 0.05 * sigma


@pytest.mark.parametrize("backend", BACKENDS)
def test_gray_noise_is_the_same_in_every_channel(backend: str) -> None:
    img = torch.full((1, 3, 64, 64), 0.5)
    out = apply_op("gaussian_noise", img, {"sigma": 10.0, "gray": True, "seed": 5}, backend) - img
    torch.testing.assert_close(out[:, 0], out[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(out[:, 0], out[:, 2], rtol=0, atol=0)
    color = apply_op("gaussian_noise", img, {"sigma": 10.0, "gray": False, "seed": 5}, backend) - img
    assert not torch.equal(color[:, 0], color[:, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_poisson_noise_std_is_shot_noise(backend: str) -> None:
    level, peak, scale = 0.4, 255.0, 2.0
    img = torch.full((1, 3, 256, 256), level)
    out = apply_op("poisson_noise", img, {"scale": scale, "gray": False, "seed": 3, "peak": peak}, backend)
    expected = scale * np.sqrt(level / peak)  # std of Poisson(λ)/peak is sqrt(λ)/peak
    assert abs(float((out - img).std()) - expected) < 0.03 * expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_jpeg_error_grows_as_quality_drops(backend: str, faces128: torch.Tensor) -> None:
    qualities = [95, 80, 60, 40, 20, 10]
    scores = [float(psnr(apply_op("jpeg", faces128, {"quality": q}, backend), faces128).mean()) for q in qualities]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores


def test_jpeg_cpu_is_libjpeg_on_the_bgr_image(faces128: torch.Tensor) -> None:
    """The CPU op equals a direct cv2.imencode of the BGR uint8 image (channel order matters for YCbCr)."""
    rgb = faces128[0].permute(1, 2, 0).numpy()
    bgr = np.ascontiguousarray(np.rint(rgb * 255).astype(np.uint8)[:, :, ::-1])
    _, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 37])
    ref = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
    out = apply_op("jpeg", faces128[:1], {"quality": 37}, "cpu")[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out, ref)


def test_quant_tables_follow_libjpeg_scaling() -> None:
    assert quant_table(50)[0, 0] == 16 and quant_table(50, chroma=True)[0, 0] == 17
    assert (quant_table(100) == 1).all()
    assert quant_table(10)[0, 0] == (16 * 500 + 50) // 100  # scale 5000 / q
    assert quant_table(1).max() == 255  # baseline clamp
    assert quant_table(75)[7, 7] == (99 * 50 + 50) // 100  # scale 200 - 2q


@pytest.mark.parametrize("backend", BACKENDS)
def test_grayscale_has_equal_channels(backend: str, faces128: torch.Tensor) -> None:
    out = apply_op("grayscale", faces128, {}, backend)
    torch.testing.assert_close(out[:, 0], out[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(out[:, 1], out[:, 2], rtol=0, atol=0)
    luma = 0.299 * faces128[:, 0] + 0.587 * faces128[:, 1] + 0.114 * faces128[:, 2]
    torch.testing.assert_close(out[:, 0], luma, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_neutral_color_jitter_is_identity(backend: str, faces128: torch.Tensor) -> None:
    params = {
        "brightness": 1.0,
        "contrast": 1.0,
        "saturation": 1.0,
        "hue": 0.0,
        "order": ["hue", "saturation", "contrast", "brightness"],
    }
    torch.testing.assert_close(apply_op("color_jitter", faces128, params, backend), faces128, rtol=0, atol=2e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_color_jitter_factors_act_as_named(backend: str, faces128: torch.Tensor) -> None:
    def jitter(**kw: float) -> torch.Tensor:
        p = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0, **kw}
        p["order"] = ["brightness", "contrast", "saturation", "hue"]
        return apply_op("color_jitter", faces128, p, backend)

    assert float(jitter(brightness=0.5).mean()) < 0.55 * float(faces128.mean())
    per_image_std = jitter(contrast=0.3).std(dim=(1, 2, 3))  # contrast blends towards each image's mean
    torch.testing.assert_close(per_image_std, 0.3 * faces128.std(dim=(1, 2, 3)), rtol=0.02, atol=0)
    gray = jitter(saturation=0.0)
    torch.testing.assert_close(gray[:, 0], gray[:, 2], rtol=0, atol=1e-6)
    full_turn = jitter(hue=0.5)
    assert float((full_turn - faces128).abs().mean()) > 0.02
    torch.testing.assert_close(full_turn.amax(1), faces128.amax(1), rtol=0, atol=1e-5)  # hue keeps HSV value


@pytest.mark.parametrize("backend", BACKENDS)
def test_color_shift_adds_the_offsets(backend: str) -> None:
    img = torch.full((1, 3, 8, 8), 0.5)
    out = apply_op("color_shift", img, {"shift": [10.0, -20.0, 0.0]}, backend)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.5 + 10 / 255, 0.5 - 20 / 255, 0.5]), rtol=0, atol=1e-6)


def test_every_op_has_both_backends_and_documented_params() -> None:
    for name, op in OPS.items():
        assert op.name == name and op.summary
        assert callable(op.cpu) and callable(op.torch) and callable(op.sample)
        params = op.sample(np.random.default_rng(0), op.resolve({}, name))
        assert set(params) == set(op.params), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_color_jitter_matches_torchvision(backend: str, faces128: torch.Tensor) -> None:
    """CodeFormer's color_jitter_pt calls torchvision's adjust_* functions; ours must agree with them."""
    tf = pytest.importorskip("torchvision.transforms.functional")
    params = {"brightness": 1.2, "contrast": 0.8, "saturation": 1.3, "hue": 0.07}
    order = ["hue", "contrast", "brightness", "saturation"]
    adjust = {
        "brightness": tf.adjust_brightness,
        "contrast": tf.adjust_contrast,
        "saturation": tf.adjust_saturation,
        "hue": tf.adjust_hue,
    }
    ref = faces128
    for name in order:
        ref = adjust[name](ref, params[name])
    out = apply_op("color_jitter", faces128, {**params, "order": order}, backend)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
