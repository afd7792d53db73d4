"""Score a folder of restored images, optionally against a folder of ground truth (`cfbench metrics`).

Files are matched by name without extension (`00012.png` with `00012.jpg`, `cfbench.imageio.pair_by_stem`);
anything unmatched is an error that lists the names. Per-image metrics give one row per image; distribution metrics
(FID) one value for the folder.
GT-side FID statistics and GT landmarks (`cfbench.metrics.gt_landmarks`) come from the feature cache when the
same GT files were scored before with the same extractor and settings.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cfbench.errors import BadInputError, MissingWeightsError
from cfbench.hashing import content_hash
from cfbench.imageio import images_by_stem, name_list, pair_by_stem, read_image
from cfbench.metrics.base import DistributionMetric, FeatureStatistics, MetricSpec, PerImageMetric
from cfbench.metrics.cache import FeatureCache, GtSideEntry, restore_entries, store_entries
from cfbench.metrics.gt_landmarks import gt_landmark_entries
from cfbench.weights import require

FID_STATS_VERSION = 1  # of the stored GT statistics layout (n, sum, outer)


@dataclass(frozen=True)
class ImagePair:
    """A restored image and its ground truth (None for no-reference scoring), matched by stem."""

    name: str
    pred: Path
    gt: Path | None


@dataclass
class BuiltMetric:
    spec: MetricSpec
    metric: PerImageMetric | DistributionMetric

    @property
    def column(self) -> str:
        return getattr(self.metric, "column_name", self.spec.name)


@dataclass
class FolderScores:
    """`per_image`: one row per image (column `file`, then one column per per-image metric);
    `distribution`: one dict per distribution metric; `skipped`: metric name -> why it did not run."""

    per_image: pd.DataFrame
    distribution: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def pair_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike | None = None) -> list[ImagePair]:
    """Restored images of `pred_dir` matched by stem with those of `gt_dir` (`cfbench.imageio.pair_by_stem`),
    sorted by stem."""
    if gt_dir is None:
        return [ImagePair(p.name, p, None) for p in images_by_stem(pred_dir).values()]
    preds, gts = pair_by_stem(pred_dir, gt_dir, ("restored", "GT"))
    return [ImagePair(p.name, p, gts[s]) for s, p in preds.items()]


def build_metrics(
    specs: Sequence[MetricSpec], device: torch.device | str, options: dict[str, Any] | None = None
) -> tuple[list[BuiltMetric], dict[str, str]]:
    """Build each metric with the options it declares; a metric whose weights or Python package are missing is
    skipped, with the message saying how to install them, instead of failing the others."""
    options = options or {}
    built, skipped = [], {}
    for spec in specs:
        try:
            for name in spec.weights:
                require(name)
            built.append(BuiltMetric(spec, spec.build(device, **spec.own_options(options))))
        except (MissingWeightsError, ImportError) as exc:
            skipped[spec.name] = str(exc)
    return built, skipped


def _load_batch(paths: Sequence[Path]) -> torch.Tensor:
    images = [read_image(p, require_rgb=True) for p in paths]
    sizes = {tuple(im.shape[1:]) for im in images}
    if len(sizes) > 1:
        names = name_list([p.name for p in paths])
        raise BadInputError(f"images of one folder must share a size; found {sorted(sizes)} among {names}")
    return torch.stack(images)


def _batches(pairs: Sequence[ImagePair], batch_size: int) -> list[list[ImagePair]]:
    return [list(pairs[i : i + batch_size]) for i in range(0, len(pairs), batch_size)]


def gt_files_hash(pairs: Sequence[ImagePair]) -> str:
    """Content hash of the GT files in pair order (their bytes, so a re-encoded file counts as different)."""
    return content_hash(p.gt.read_bytes() for p in pairs if p.gt is not None)


def score_folders(
    pairs: Sequence[ImagePair],
    metrics: Sequence[BuiltMetric],
    batch_size: int = 8,
    cache: FeatureCache | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> FolderScores:
    """Run every metric over `pairs`, batch by batch. `on_batch(n_done)` reports progress.

    Distribution metrics that compare with the GT set (`uses_gt`) need its statistics: taken from `cache` when
    present, otherwise computed in the same pass and stored there.
    """
    has_gt = all(p.gt is not None for p in pairs)
    _check_references(metrics, has_gt)
    per_image = [m for m in metrics if isinstance(m.metric, PerImageMetric)]
    dist = [m for m in metrics if isinstance(m.metric, DistributionMetric)]
    pred_stats = {m.column: m.metric.new_statistics() for m in dist}
    named = functools.cache(lambda: {"gt_content": gt_files_hash(pairs), "n": len(pairs)})  # hashed at most once
    gt_stats: dict[str, FeatureStatistics] = {}
    todo = restore_entries(gt_statistics_entries(dist, named, gt_stats) + gt_landmark_entries(per_image, named), cache)
    to_fill = {e.name for e in todo}
    columns: dict[str, list[torch.Tensor]] = {m.column: [] for m in per_image}
    done = 0
    with torch.inference_mode():
        for chunk in _batches(pairs, batch_size):
            pred = _load_batch([p.pred for p in chunk])
            gt = _load_batch([p.gt for p in chunk]) if has_gt else None
            if gt is not None and pred.shape != gt.shape:
                bad = [p.name for p in chunk if read_image(p.pred).shape != read_image(p.gt).shape]
                raise BadInputError(f"restored and GT sizes differ for {name_list(bad)}; resize one side first")
            for m in per_image:
                columns[m.column].append(m.metric(pred, gt).cpu())
            for m in dist:
                pred_stats[m.column].add(m.metric.features(pred))
                if m.column in to_fill:
                    gt_stats[m.column].add(m.metric.features(gt))
            done += len(chunk)
            if on_batch:
                on_batch(done)
    store_entries(todo, cache)
    table = pd.DataFrame({"file": [p.name for p in pairs]})
    for column, values in columns.items():
        table[column] = torch.cat(values).numpy()
    distribution = [_finish(m, pred_stats[m.column], gt_stats.get(m.column), m.column in to_fill) for m in dist]
    return FolderScores(table, distribution)


def _check_references(metrics: Sequence[BuiltMetric], has_gt: bool) -> None:
    for m in metrics:
        if m.spec.needs_gt and not has_gt:
            raise BadInputError(f"{m.spec.name} is full-reference: give a GT folder, or leave it out of --metrics")
        if _uses_gt(m.metric) and not has_gt:
            raise BadInputError(f"{m.column} compares with the GT set: give a GT folder or another --fid-ref")


def gt_statistics_entries(
    dist: Sequence[BuiltMetric], content: Callable[[], dict[str, Any]], stats: dict[str, FeatureStatistics]
) -> list[GtSideEntry]:
    """The cache entries of the GT statistics of the distribution metrics that compare with the GT set; each puts
    its accumulator in `stats[column]` (empty until computed or restored). `content()` names the GT set (a content
    hash and the number of images); it is called only when some metric needs it, since hashing a dataset reads it.
    """
    users = [m for m in dist if _uses_gt(m.metric)]
    named = content() if users else {}
    entries = []
    for m in users:
        stats[m.column] = m.metric.new_statistics()

        def restore(arrays: dict[str, Any], column: str = m.column, kind: type = m.metric.statistics_type) -> None:
            stats[column] = kind.from_arrays(arrays)

        def arrays(column: str = m.column) -> dict[str, Any]:
            return stats[column].to_arrays()

        key = {**m.metric.cache_key(), **named}
        entries.append(GtSideEntry(m.column, "fid_stats", key, FID_STATS_VERSION, restore, arrays))
    return entries


def _finish(m: BuiltMetric, pred: FeatureStatistics, gt: FeatureStatistics | None, computed: bool) -> dict[str, Any]:
    ref_from = m.column if gt is None else "gt" if computed else "gt (cached)"
    value = m.metric.value(pred, gt)
    return {"metric": m.column, "value": value, "images": pred.n, "reference": ref_from, **_describe(m.metric)}


def _uses_gt(metric: PerImageMetric | DistributionMetric) -> bool:
    return isinstance(metric, DistributionMetric) and metric.uses_gt


def _describe(metric: DistributionMetric) -> dict[str, Any]:
    key = metric.cache_key()
    return {k: key[k] for k in ("resize",) if k in key}
