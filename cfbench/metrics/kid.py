"""KID, the Kernel Inception Distance (Binkowski et al., ICLR 2018) of restored faces to the GT set, as torch-fidelity
0.4 computes it.

Features: the Inception pool3 features of `fid[gt]` (`cfbench.metrics.fid`, `clean` resize), float64. Value: the
unbiased MMD^2 estimate with the polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over 100 random subsets of
1000 restored and 1000 GT faces drawn without replacement from `numpy.random.RandomState(2020)` (restored first,
then GT, per subset): torch-fidelity's `kid_features_to_metric` with its defaults. A group with fewer than 1000
faces uses subsets of all its faces (torch-fidelity refuses there); the subset size is in the cache key and the
metric's description. Tolerance: equal to torch-fidelity within 1e-6 relative on the same features
(tests/metrics/test_kid.py). `cfbench metrics` and `cfbench eval` both compute it (`DistributionMetric.value`): a
sweep keeps each part's raw features and merges them per (checkpoint, severity, w) group into a `FeatureSet`, in the
run's face order, and caches the GT set's features like FID's GT statistics (tests/eval/test_kid_sweep.py). Above
1000 faces the subsets, hence the value, depend on that order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cfbench.errors import BadInputError
from cfbench.metrics.base import FeatureSet, FeatureStatistics, MetricKind, MetricSpec
from cfbench.metrics.fid import FID
from cfbench.metrics.registry import register

SUBSETS = 100
SUBSET_SIZE = 1000
SEED = 2020  # torch-fidelity's default rng_seed
DEGREE, COEF0 = 3, 1.0


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = DEGREE, coef0: float = COEF0) -> np.ndarray:
    """(x y^T / d + coef0) ** degree for (n, d) and (m, d) float64 features -> (n, m)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimate between two equal-size samples (m, d) with the polynomial kernel: the diagonal of
    the within-sample kernels is left out, the cross term keeps it."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kid(
    pred: np.ndarray, ref: np.ndarray, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE, seed: int = SEED
) -> tuple[float, float]:
    """(mean, std) of `mmd2_unbiased` over `subsets` random subsets of min(subset_size, len(pred), len(ref))."""
    size = min(subset_size, len(pred), len(ref))
    if size < 2:
        raise BadInputError(f"KID needs at least 2 restored and 2 GT images; got {len(pred)} and {len(ref)}")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        a = pred[rng.choice(len(pred), size, replace=False)]
        b = ref[rng.choice(len(ref), size, replace=False)]
        values[i] = mmd2_unbiased(a, b)
    return float(values.mean()), float(values.std())


class KID(FID):
    """KID against the GT set over `fid[gt]`'s Inception features (see the module docstring)."""

    statistics_type = FeatureSet

    def __init__(self, device: Any = "cpu", batch_size: int = 16) -> None:
        super().__init__(device, "gt", "clean", batch_size)

    @property
    def column_name(self) -> str:
        return "kid"

    def cache_key(self) -> dict[str, Any]:
        return {**super().cache_key(), "metric": "kid", "kept": "features"}

    def compare(self, pred: FeatureStatistics, ref: FeatureStatistics) -> float:
        if not isinstance(pred, FeatureSet) or not isinstance(ref, FeatureSet):
            raise BadInputError("kid needs the feature vectors of both groups, not only their mean and covariance")
        return kid(pred.features, ref.features)[0]

    def distance(self, pred: FeatureStatistics, ref_mean: np.ndarray, ref_cov: np.ndarray) -> float:
        raise BadInputError("kid compares with the GT set's features; a mean and covariance are not enough")


KID.spec = register(
    MetricSpec(
        name="kid",
        family="kid",
        backend="inception",
        kind=MetricKind.DISTRIBUTION,
        higher_is_better=False,
        reference="torch-fidelity 0.4 kid_features_to_metric (poly kernel degree 3, gamma 1/d, coef0 1, 100 subsets of "
        "1000, seed 2020) on the pytorch-fid Inception pool3 features of fid[gt]: within 1e-6 relative",
        build=lambda device="cpu": KID(device),
        description="Kernel Inception Distance to the GT set (unbiased polynomial MMD^2, mean over subsets)",
        weights=("pt_inception",),
        value_range=(-math.inf, math.inf),  # the unbiased estimate can dip below 0
        label="KID",
        role="quality",
        gt_set=True,
    )
)
