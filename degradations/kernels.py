"""Blur kernels on an integer grid (float64 numpy, normalised to sum 1).

All three families are functions of the quadratic form ``q(x) = xᵀ Σ⁻¹ x`` over the offsets ``x = (col, row)``
of a ``kernel_size`` square grid centred on 0, with ``Σ = R diag(σx², σy²) Rᵀ`` and ``R`` the rotation by
``rotation`` radians:

- Gaussian: ``exp(-q / 2)`` (CodeFormer/BasicSR ``bivariate_Gaussian``),
- generalized Gaussian: ``exp(-q^β / 2)`` (Real-ESRGAN; β = 1 is the Gaussian),
- plateau: ``1 / (1 + q^β)`` (Real-ESRGAN).

The kernels are point-symmetric (k[i, j] == k[-i, -j]), so correlation and convolution agree.
"""

from __future__ import annotations

import math

import numpy as np

from degradations.errors import DegradationsError


def sigma_matrix(sigma_x: float, sigma_y: float, rotation: float) -> np.ndarray:
    """Covariance ``R diag(σx², σy²) Rᵀ`` (2x2 float64); sigmas in pixels, rotation in radians."""
    c, s = math.cos(rotation), math.sin(rotation)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T


def _quadratic_form(kernel_size: int, sigma_x: float, sigma_y: float, rotation: float) -> np.ndarray:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise DegradationsError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if sigma_x <= 0 or sigma_y <= 0:
        raise DegradationsError(f"sigma_x and sigma_y must be > 0, got {sigma_x}, {sigma_y}")
    r = kernel_size // 2
    ax = np.arange(-r, r + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)  # xx varies along columns, yy along rows
    grid = np.stack([xx, yy], axis=-1)  # (k, k, 2)
    inv = np.linalg.inv(sigma_matrix(sigma_x, sigma_y, rotation))
    return np.einsum("hwi,ij,hwj->hw", grid, inv, grid)


def gaussian_kernel(kernel_size: int, sigma_x: float, sigma_y: float, rotation: float = 0.0) -> np.ndarray:
    """Anisotropic Gaussian, (kernel_size, kernel_size) float64 summing to 1; isotropic when σx == σy."""
    k = np.exp(-0.5 * _quadratic_form(kernel_size, sigma_x, sigma_y, rotation))
    return k / k.sum()


def generalized_gaussian_kernel(
    kernel_size: int, sigma_x: float, sigma_y: float, rotation: float, beta: float
) -> np.ndarray:
    """Generalized Gaussian ``exp(-q^β / 2)``; β > 0 (β < 1 heavier tails, β > 1 flatter top)."""
    k = np.exp(-0.5 * np.power(_quadratic_form(kernel_size, sigma_x, sigma_y, rotation), beta))
    return k / k.sum()


def plateau_kernel(kernel_size: int, sigma_x: float, sigma_y: float, rotation: float, beta: float) -> np.ndarray:
    """Plateau-shaped ``1 / (1 + q^β)``; β > 0."""
    k = 1.0 / (np.power(_quadratic_form(kernel_size, sigma_x, sigma_y, rotation), beta) + 1.0)
    return k / k.sum()
