"""CPU vs torch backend agreement: per-op and whole-pipeline PSNR bounds (see docs/degradations.md)."""

from __future__ import annotations

import cv2
import pytest
import torch

from degradations import apply_op, derive_seed, load_preset
from tests.degradations.helpers import psnr

# (op, params, minimum PSNR in dB between the backends). Float ops agree to float rounding; the torch JPEG
# uses libjpeg's integer arithmetic and is identical to OpenCV's libjpeg-turbo (tested below), so its bound
# here is a floor for other libjpeg builds.
BLUR = {"kernel_type": "aniso", "kernel_size": 41, "sigma_x": 3.0, "sigma_y": 7.0, "rotation": 0.6}
JITTER = {"brightness": 1.2, "contrast": 0.8, "saturation": 1.3, "hue": 0.05}
CASES = [
    ("gaussian_blur", BLUR, 100),
    ("generalized_blur", {**BLUR, "kernel_size": 21, "beta": 0.7}, 100),
    ("plateau_blur", {**BLUR, "kernel_size": 21, "beta": 1.5}, 100),
    ("downsample", {"scale": 4.3, "interpolation": "bilinear"}, 100),
    ("downsample", {"scale": 4.3, "interpolation": "bicubic"}, 100),
    ("downsample", {"scale": 4.3, "interpolation": "area"}, 100),
    ("downsample", {"scale": 0.8, "interpolation": "area"}, 100),
    ("resize", {"size": [300, 300], "interpolation": "bilinear"}, 100),
    ("gaussian_noise", {"sigma": 15.0, "gray": False, "seed": 3}, 100),
    ("poisson_noise", {"scale": 1.0, "gray": True, "seed": 3, "peak": 255.0}, 100),
    ("color_jitter", {**JITTER, "order": ["hue", "contrast", "brightness", "saturation"]}, 100),
    ("color_shift", {"shift": [10.0, -5.0, 3.0]}, 100),
    ("grayscale", {}, 100),
    ("jpeg", {"quality": 30}, 50),
    ("jpeg", {"quality": 60}, 50),
    ("jpeg", {"quality": 90}, 50),
]

# Whole pipelines: the float ops differ in the last bits, which can move a pixel across an 8-bit rounding
# boundary before JPEG; measured 58-200 dB at 128 and 512 px (docs/degradations.md).
PIPELINE_BOUND_DB = 50.0
LIBJPEG_TURBO = "libjpeg-turbo" in cv2.getBuildInformation()


@pytest.mark.parametrize(("op", "params", "bound"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_backends_agree_per_op(op: str, params: dict, bound: float, faces128: torch.Tensor) -> None:
    cpu = apply_op(op, faces128, params, "cpu")
    tch = apply_op(op, faces128, params, "torch")
    assert cpu.shape == tch.shape
    assert float(psnr(cpu, tch).min()) >= bound


@pytest.mark.skipif(not LIBJPEG_TURBO, reason="OpenCV is not built with libjpeg-turbo")
@pytest.mark.parametrize("quality", [1, 10, 37, 50, 75, 95, 100])
def test_torch_jpeg_is_bit_exact_with_libjpeg_turbo(quality: int, faces128: torch.Tensor) -> None:
    noise = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(quality))
    for img in (faces128, noise):
        cpu = apply_op("jpeg", img, {"quality": quality}, "cpu")
        assert torch.equal(apply_op("jpeg", img, {"quality": quality}, "torch"), cpu)


@pytest.mark.skipif(not LIBJPEG_TURBO, reason="OpenCV is not built with libjpeg-turbo")
@pytest.mark.parametrize("size", [(119, 123), (17, 9), (30, 3), (4, 4), (1, 1), (2, 30), (33, 16)])
def test_torch_jpeg_is_exact_for_sizes_that_are_not_multiples_of_16(
    size: tuple[int, int], faces128: torch.Tensor
) -> None:
    crop = faces128[:, :, : size[0], : size[1]].contiguous()
    cpu = apply_op("jpeg", crop, {"quality": 50}, "cpu")
    assert torch.equal(apply_op("jpeg", crop, {"quality": 50}, "torch"), cpu)


@pytest.mark.parametrize("preset", ["celeba-test", "codeformer-train"])
def test_backends_agree_on_whole_pipelines(preset: str, faces128: torch.Tensor) -> None:
    pipe = load_preset(preset)
    records = [pipe.sample(derive_seed(0, "backends", str(i))) for i in range(3)]
    cpu = pipe.apply(faces128, records, "cpu")
    tch = pipe.apply(faces128, records, "torch")
    assert float(psnr(cpu, tch).min()) >= PIPELINE_BOUND_DB


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_torch_backend_on_cuda_matches_torch_on_cpu(faces128: torch.Tensor) -> None:
    pipe = load_preset("celeba-test")
    records = [pipe.sample(s) for s in (1, 2, 3)]
    on_cpu = pipe.apply(faces128, records, "torch")
    on_gpu = pipe.apply(faces128.cuda(), records, "torch").cpu()
    assert float(psnr(on_cpu, on_gpu).min()) >= 45
