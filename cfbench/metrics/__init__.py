"""The metrics harness: registered metrics (`METRICS`), per-image and distribution interfaces, the GT feature cache
and folder scoring. Importing this package registers every metric; heavy backends load lazily when built."""

from cfbench.hashing import content_hash
from cfbench.metrics import fid, identity, kid, landmarks, lpips, niqe, psnr_ssim, pyiqa_metric  # noqa: F401  (registration side effect)
from cfbench.metrics.base import (
    DistributionMetric,
    FeatureStatistics,
    MetricKind,
    MetricSpec,
    PerImageMetric,
    check_images,
    check_pair,
)
from cfbench.metrics.cache import FeatureCache
from cfbench.metrics.folders import FolderScores, ImagePair, build_metrics, pair_folders, score_folders
from cfbench.metrics.registry import ALIASES, METRICS, get_metric, parse_metric_list

__all__ = [
    "ALIASES",
    "METRICS",
    "DistributionMetric",
    "FeatureCache",
    "FeatureStatistics",
    "FolderScores",
    "ImagePair",
    "MetricKind",
    "MetricSpec",
    "PerImageMetric",
    "build_metrics",
    "check_images",
    "check_pair",
    "content_hash",
    "get_metric",
    "pair_folders",
    "parse_metric_list",
    "score_folders",
]
