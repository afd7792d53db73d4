"""Blur kernels: normalisation, symmetry, the official Gaussian formula; blur of a constant image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from degradations import apply_op, gaussian_kernel, generalized_gaussian_kernel, plateau_kernel, sigma_matrix

KERNELS = {
    "gaussian": lambda k, sx, sy, r: gaussian_kernel(k, sx, sy, r),
    "generalized": lambda k, sx, sy, r: generalized_gaussian_kernel(k, sx, sy, r, 0.7),
    "plateau": lambda k, sx, sy, r: plateau_kernel(k, sx, sy, r, 1.5),
}


@pytest.mark.parametrize("family", KERNELS)
@pytest.mark.parametrize("shape", [(41, 3.0, 3.0, 0.0), (41, 1.5, 6.0, 0.7), (21, 0.3, 9.0, -2.5), (7, 2.0, 2.0, 0.0)])
def test_kernel_sums_to_one_and_is_point_symmetric(family: str, shape: tuple) -> None:
    k = KERNELS[family](*shape)
    assert k.shape == (shape[0], shape[0])
    assert abs(k.sum() - 1.0) < 1e-12
    assert (k >= 0).all()
    np.testing.assert_allclose(k, k[::-1, ::-1], rtol=0, atol=1e-15)  # k(x) == k(-x)
    assert k.argmax() == k.size // 2  # peak at the centre


@pytest.mark.parametrize("family", KERNELS)
def test_isotropic_kernel_has_all_grid_symmetries(family: str) -> None:
    k = KERNELS[family](41, 4.0, 4.0, 0.0)
    for sym in (k.T, k[::-1], k[:, ::-1]):
        np.testing.assert_allclose(k, sym, rtol=0, atol=1e-15)


def test_anisotropic_kernel_without_rotation_is_mirror_symmetric_and_rotation_swaps_axes() -> None:
    k = gaussian_kernel(41, 2.0, 6.0, 0.0)
    np.testing.assert_allclose(k, k[::-1], atol=1e-15)
    np.testing.assert_allclose(k, k[:, ::-1], atol=1e-15)
    assert not np.allclose(k, k.T)
    # A quarter turn swaps the roles of sigma_x and sigma_y.
    np.testing.assert_allclose(
        gaussian_kernel(41, 2.0, 6.0, math.pi / 2), gaussian_kernel(41, 6.0, 2.0, 0.0), atol=1e-12
    )


def test_gaussian_kernel_is_the_official_formula() -> None:
    """exp(-0.5 xᵀ Σ⁻¹ x) on the integer grid, Σ = R diag(sx², sy²) Rᵀ, normalised to sum 1."""
    sx, sy, rot, size = 2.5, 5.0, 0.4, 41
    c, s = math.cos(rot), math.sin(rot)
    r = np.array([[c, -s], [s, c]])
    cov = r @ np.diag([sx**2, sy**2]) @ r.T
    np.testing.assert_allclose(sigma_matrix(sx, sy, rot), cov, atol=1e-14)
    inv = np.linalg.inv(cov)
    ref = np.zeros((size, size))
    for row in range(size):
        for col in range(size):
            v = np.array([col - size // 2, row - size // 2])  # (x = column offset, y = row offset)
            ref[row, col] = math.exp(-0.5 * v @ inv @ v)
    np.testing.assert_allclose(gaussian_kernel(size, sx, sy, rot), ref / ref.sum(), atol=1e-15)


def test_generalized_with_beta_one_is_gaussian() -> None:
    np.testing.assert_allclose(
        generalized_gaussian_kernel(21, 2.0, 3.0, 0.3, 1.0), gaussian_kernel(21, 2.0, 3.0, 0.3), atol=1e-15
    )


def test_kernel_rejects_even_size_and_nonpositive_sigma() -> None:
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel(40, 1.0, 1.0)
    with pytest.raises(ValueError, match="> 0"):
        gaussian_kernel(41, 0.0, 1.0)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("op", ["gaussian_blur", "generalized_blur", "plateau_blur"])
def test_blur_of_a_constant_image_is_that_constant(op: str, backend: str) -> None:
    img = torch.full((2, 3, 48, 40), 0.37)
    img[1] = 0.81
    params = {
        "kernel_type": "aniso",
        "kernel_size": 41,
        "sigma_x": 3.0,
        "sigma_y": 8.0,
        "rotation": 1.1,
        "beta": 1.3,
    }
    out = apply_op(op, img, params, backend)
    torch.testing.assert_close(out, img, rtol=0, atol=2e-6)


@pytest.mark.parametrize("size", [(5, 7), (1, 9), (30, 2)])
def test_blur_backends_agree_on_images_smaller_than_the_kernel(size: tuple[int, int]) -> None:
    """Reflect-101 padding wider than the image (OpenCV reflects repeatedly; the torch backend must too)."""
    img = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    params = {"kernel_type": "iso", "kernel_size": 41, "sigma_x": 2.0, "sigma_y": 2.0, "rotation": 0.0}
    a = apply_op("gaussian_blur", img, params, "cpu")
    b = apply_op("gaussian_blur", img, params, "torch")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
