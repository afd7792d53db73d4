"""Per (severity, w, metric) values of a finished eval run: the mean over images with its bootstrap interval
(`cfbench.eval.tables.bootstrap_interval`, re-seeded per cell so cells are paired across w), and the
distribution metrics (FID) from groups.parquet, which have no interval."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cfbench.errors import BadInputError
from cfbench.eval.store.schema import GROUPS, N_IMAGES, RESULTS
from cfbench.eval.tables import bootstrap_interval

N_BOOT = 1000
BOOT_SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Cell:
    """One (severity, w, metric) value; `ci_low`/`ci_high` are None for distribution metrics."""

    severity: str
    w: float
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n_images: int

    @property
    def key(self) -> tuple[str, float, str]:
        return (self.severity, float(self.w), self.metric)


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def summarize_run(
    run_dir: str | os.PathLike,
    metrics: Sequence[str],
    *,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    confidence: float = CONFIDENCE,
) -> list[Cell]:
    """The cells of the one checkpoint in `run_dir`, for the metric columns `metrics`, sorted by severity, w and
    the order of `metrics`."""
    run_dir = Path(run_dir)
    results, groups = pd.read_parquet(run_dir / RESULTS), pd.read_parquet(run_dir / GROUPS)
    if results["checkpoint"].nunique() > 1:
        raise BadInputError(f"{run_dir} holds several checkpoints; a baseline is made from one")
    missing = [m for m in metrics if m not in results.columns and m not in groups.columns]
    if missing:
        raise BadInputError(f"{run_dir} has no values for the metric(s) {missing}")
    cells: list[Cell] = []
    by_group = {(str(g.severity), float(g.w)): g for g in groups.itertuples(index=False)}
    for (severity, w), block in results.groupby(["severity", "w"], sort=True):
        group = by_group[(str(severity), float(w))]
        n_images = int(getattr(group, N_IMAGES))
        for metric in metrics:
            if metric in results.columns:
                mean, low, high = bootstrap_interval(block[metric].to_numpy(), n_boot, seed, confidence)
                cells.append(Cell(str(severity), float(w), metric, _num(mean), _num(low), _num(high), n_images))
            else:
                value = groups.loc[(groups.severity == severity) & (groups.w == w), metric].item()
                cells.append(Cell(str(severity), float(w), metric, _num(value), None, None, n_images))
    return cells
