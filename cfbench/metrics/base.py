"""What a metric is: its registry entry (`MetricSpec`) and the two interfaces a metric implements.

Per-image metrics (`PerImageMetric`) take batches of float32 RGB NCHW images in [0, 1] and return one value per image,
a float64 tensor of shape (N,). Distribution metrics (`DistributionMetric`, FID) turn batches into feature vectors,
which are accumulated per group into `FeatureStatistics` and compared once per group.

The facts about a metric (kind, direction, reference implementation, weights it needs) live in its `MetricSpec`;
reports and the regression gate read them from there.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cfbench.errors import BadInputError
from cfbench.imageio import check_images


class MetricKind(str, enum.Enum):
    FULL_REFERENCE = "full-reference"  # per image, needs the GT image
    NO_REFERENCE = "no-reference"  # per image, restored image only
    DISTRIBUTION = "distribution"  # per group of images (FID)


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    `name` is the column name and carries the variant (`lpips[vgg]`, `psnr[y]`); `family` the metric without the
    variant. `build(device, **options)` returns the metric object; `options` lists the keyword options it accepts,
    with defaults. `weights` are the names in `cfbench.weights.WEIGHTS` it needs (checked before building, so a
    missing file skips the metric with the placement message instead of failing the run).
    """

    name: str
    family: str
    backend: str
    kind: MetricKind
    higher_is_better: bool
    reference: str  # the implementation (and version) this metric equals, and to what tolerance
    build: Callable[..., Any]
    description: str
    weights: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    value_range: tuple[float, float] = (-math.inf, math.inf)
    unit: str = ""
    input: str = "float32 RGB NCHW in [0, 1]"
    # weights that depend on the options (fid with ref=ffhq512 needs the statistics file too)
    option_weights: Callable[[dict[str, Any]], tuple[str, ...]] | None = None
    label: str = ""  # display name in figures and tables (default: the family)
    role: str = ""  # "fidelity" (agreement with the GT face) or "quality" (realism), for the fidelity-vs-quality report
    package: str | None = None  # the Python package it runs through, whose version the run manifest records
    identity: float | None = None  # the value of a full-reference metric on identical images, where it has one
    gt_set: bool = False  # a distribution metric that compares with the run's GT set (fid[gt], kid)

    def own_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """The entries of `options` (a run's metric options) that this metric declares and that are set."""
        return {k: v for k, v in (options or {}).items() if k in self.options and v is not None}

    def required_weights(self, options: dict[str, Any] | None = None) -> tuple[str, ...]:
        """Every registered weights file this metric needs when built with `options` (a run's metric options)."""
        extra = self.option_weights({**self.options, **self.own_options(options)}) if self.option_weights else ()
        return tuple(dict.fromkeys((*self.weights, *extra)))

    @property
    def display(self) -> str:
        """The display name: `label`, else the family."""
        return self.label or self.family

    @property
    def needs_gt(self) -> bool:
        return self.kind is MetricKind.FULL_REFERENCE

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


def check_pair(pred: torch.Tensor, gt: torch.Tensor) -> None:
    """`check_images` on both, and the same shape."""
    check_images(pred, "restored images")
    check_images(gt, "ground-truth images")
    if pred.shape != gt.shape:
        raise BadInputError(f"restored and ground-truth sizes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")


class PerImageMetric:
    """Base of per-image metrics: `metric(pred, gt)` -> float64 tensor (N,), on `pred`'s device.

    Subclasses implement `compute`, which receives checked inputs already on `self.device`; `gt` is None for
    no-reference metrics.
    """

    spec: MetricSpec

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.needs_gt:
            if gt is None:
                raise BadInputError(f"{self.spec.name} is full-reference: it needs ground-truth images")
            check_pair(pred, gt)
            gt = gt.to(self.device, torch.float32)
        else:
            check_images(pred, "restored images")
        out = self.compute(pred.to(self.device, torch.float32), gt)
        return out.to(torch.float64)

    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


class FeatureStatistics:
    """Running mean and covariance of feature vectors (float64 sums), mergeable and saveable.

    `cov` uses the unbiased estimator (ddof=1), as `np.cov(features, rowvar=False)` in pytorch-fid and BasicSR.
    """

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.sum = np.zeros(dim, np.float64)
        self.outer = np.zeros((dim, dim), np.float64)

    def add(self, features: torch.Tensor | np.ndarray) -> None:
        """Accumulate features of shape (N, dim)."""
        f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
        f = f.astype(np.float64, copy=False)
        self.n += f.shape[0]
        self.sum += f.sum(0)
        self.outer += f.T @ f

    def merge(self, other: FeatureStatistics) -> None:
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise BadInputError(f"a covariance needs at least 2 images; this group has {self.n}")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n": np.asarray(self.n), "sum": self.sum, "outer": self.outer}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FeatureStatistics:
        stats = cls(arrays["sum"].shape[0])
        stats.n, stats.sum, stats.outer = int(arrays["n"]), arrays["sum"].copy(), arrays["outer"].copy()
        return stats


class FeatureSet(FeatureStatistics):
    """`FeatureStatistics` that also keeps the feature vectors themselves (float64 (N, dim)), for metrics that need
    more than the mean and covariance (KID)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self._rows: list[np.ndarray] = []

    def add(self, features: torch.Tensor | np.ndarray) -> None:
        f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
        super().add(f)
        self._rows.append(f.astype(np.float64, copy=False).reshape(-1, self.sum.shape[0]))

    def merge(self, other: FeatureStatistics) -> None:
        if not isinstance(other, FeatureSet):
            raise BadInputError("a feature set merges only with another feature set (the features are needed)")
        super().merge(other)
        self._rows.extend(other._rows)

    @property
    def features(self) -> np.ndarray:
        """(n, dim) float64, in the order added."""
        return np.concatenate(self._rows) if self._rows else np.zeros((0, self.sum.shape[0]))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {**super().to_arrays(), "features": self.features}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FeatureSet:
        stats = cls(arrays["sum"].shape[0])
        stats.add(arrays["features"])
        return stats


class DistributionMetric:
    """Base of distribution metrics (FID, KID).

    `features(images)` -> (N, D) float tensor for a batch; callers accumulate them in `new_statistics()` per group
    (a `statistics_type`: sums only, or a `FeatureSet` that keeps the vectors) and call `value(pred, gt)` once per
    group, with the GT set's accumulator when `uses_gt`. `cache_key()` returns everything that changes the features
    (extractor, weights sha256, resize mode, resolution), for the GT feature cache.
    """

    spec: MetricSpec
    dim: int
    statistics_type: type[FeatureStatistics] = FeatureStatistics  # what a group's features accumulate into

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    def new_statistics(self) -> FeatureStatistics:
        return self.statistics_type(self.dim)

    def extractor_key(self) -> dict[str, Any] | None:
        """What makes this metric's `features` of an image what they are (network, weights, resize), or None: two
        metrics with equal keys give equal features, so a sweep extracts them once (fid[gt] and kid)."""
        return None

    def compare(self, pred: FeatureStatistics, ref: FeatureStatistics) -> float:
        """The metric between two accumulated groups (the restored images and the GT set)."""
        return self.distance(pred, ref.mean, ref.cov)

    def value(self, pred: FeatureStatistics, gt: FeatureStatistics | None) -> float:
        """The metric of one group of restored images: `compare` with the GT set's accumulator `gt` when the metric
        `uses_gt`, else `distance` to `reference_statistics()` (`gt` is then None)."""
        if gt is not None:
            return self.compare(pred, gt)
        reference = self.reference_statistics()
        if reference is None:
            raise ValueError(f"{self.spec.name} compares with the GT set, and no GT statistics were given")
        return self.distance(pred, *reference)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def cache_key(self) -> dict[str, Any]:
        raise NotImplementedError

    def distance(self, pred: FeatureStatistics, ref_mean: np.ndarray, ref_cov: np.ndarray) -> float:
        raise NotImplementedError

    def reference_statistics(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, cov) of a fixed reference (a statistics file), or None when the reference is the GT set."""
        return None

    @property
    def uses_gt(self) -> bool:
        """Whether the reference is the GT set of the evaluation (then its statistics are computed and cached)."""
        return self.reference_statistics() is None
