"""`cfbench bench eval`: the sweep against the naive pipeline, on the same faces, w values and metrics, in one run.

Naive: the official inference script followed by separate metric scripts. The LQ faces are synthesized and written
as PNG (with their GT) once; then, for every w (one run of the inference script each) and every face, the LQ file
is read, the full model runs (`net(x, w=w, adain=True)`, encoder and transformer included) and the restored face is
written as PNG; then every metric script runs once per w folder (a fresh metric object: its GT side, such as GT
landmarks, is recomputed per folder), reading the files one image at a time (FID: the features of every restored
and every GT image of the folder, pytorch-fid style). The metric implementations are cfbench's: only the pipeline
differs.

Ours: `FidelityWeightSweep` with the same config in a temporary run directory; its stage times come from its
manifest's `timings`. Both run after the same untimed warm-up (one forward and one call of every metric).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cfbench.data import get_dataset, with_severity
from cfbench.eval.config import SweepConfig
from cfbench.eval.requirements import metric_options
from cfbench.eval.runner import FidelityWeightSweep
from cfbench.eval.spec import parse_w_spec
from cfbench.eval.timing import DECODE, ENCODE, TOTAL, StageTimes
from cfbench.imageio import read_image, write_image
from cfbench.metrics import DistributionMetric, build_metrics, parse_metric_list
from cfbench.metrics.folders import BuiltMetric
from cfbench.precision import autocast
from cfbench.restoration import load_restorer


def _times(device: str) -> StageTimes:
    return StageTimes(torch.cuda.synchronize if torch.device(device).type == "cuda" else None)


def warm_up(cfg: SweepConfig, device: str) -> None:
    """One forward and one call of every metric, untimed, so neither pipeline pays first-call costs; also fills the
    dataset's resize cache for both."""
    base = get_dataset(cfg.dataset, cfg.data_root)
    n = len(base) if cfg.limit is None else min(cfg.limit, len(base))
    for i in range(n):
        base.load(i)
    sample = with_severity(base, cfg.severity, seed=cfg.seed).load(0)
    net = load_restorer(cfg.checkpoints[0], device)
    lq, gt = sample.lq[None].to(device), sample.gt[None].to(device)
    built, _ = build_metrics(parse_metric_list(cfg.metrics or ""), device, metric_options(cfg))
    with torch.inference_mode():
        with autocast(device, cfg.precision):
            out = (net(lq * 2 - 1, w=0.5, adain=True)[0].float().clamp(-1, 1) + 1) / 2
        for m in built:
            if isinstance(m.metric, DistributionMetric):
                m.metric.features(out)
            else:
                m.metric(out, gt if m.spec.needs_gt else None)


def naive_pipeline(cfg: SweepConfig, root: Path, device: str) -> dict[str, Any]:
    """Per w and per face a full forward from and to PNG files, then each metric script per w folder (module
    docstring). Returns seconds, seconds per part (setup, data, io, model, metrics), per-image `values`
    ((image_id, w) -> column -> value), per-w distribution `groups` and the `skipped` metrics."""
    times = _times(device)
    ws = parse_w_spec(cfg.w)
    specs = parse_metric_list(cfg.metrics or "")
    start = time.perf_counter()
    with times("setup"):  # the inference script loads its model once
        data = with_severity(get_dataset(cfg.dataset, cfg.data_root), cfg.severity, seed=cfg.seed)
        n = len(data) if cfg.limit is None else min(cfg.limit, len(data))
        net = load_restorer(cfg.checkpoints[0], device)
    lq_dir, gt_dir, out_dir = root / "lq", root / "gt", root / "restored"
    ids = []
    for i in range(n):  # the degradation script: LQ (and GT) files
        with times("data"):
            s = data.load(i)
        with times("io"):
            write_image(lq_dir / f"{s.id}.png", s.lq)
            write_image(gt_dir / f"{s.id}.png", s.gt)
        ids.append(s.id)
    for w in ws:  # the inference script, once per w
        for image_id in ids:
            with times("io"):
                x = read_image(lq_dir / f"{image_id}.png")[None].to(device)
            with times("model", device=True), torch.inference_mode(), autocast(device, cfg.precision):
                restored = (net(x * 2 - 1, w=w, adain=True)[0].float().clamp(-1, 1) + 1) / 2
            with times("io"):
                write_image(out_dir / f"w{w:g}" / f"{image_id}.png", restored[0].cpu())
    values: dict[tuple[str, float], dict[str, float]] = defaultdict(dict)
    groups: dict[float, dict[str, float]] = defaultdict(dict)
    skipped: dict[str, str] = {}
    for spec in specs:  # one metric script after the other, one run per w folder
        for w in ws:
            with times("setup"):
                built, failed = build_metrics([spec], device, metric_options(cfg))
            skipped.update(failed)
            for m in built:
                _score_folder(m, out_dir / f"w{w:g}", gt_dir, ids, w, times, values, groups)
    return {
        "seconds": time.perf_counter() - start,
        "parts": dict(times.seconds),
        "values": values,
        "groups": groups,
        "skipped": skipped,
    }


def _score_folder(
    m: BuiltMetric,
    folder: Path,
    gt_dir: Path,
    ids: list[str],
    w: float,
    times: StageTimes,
    values: dict[tuple[str, float], dict[str, float]],
    groups: dict[float, dict[str, float]],
) -> None:
    """One metric script on one w folder: per-image `values`, or the folder's FID or KID into `groups`."""
    dist = isinstance(m.metric, DistributionMetric)
    if dist:
        pred_stats, gt_stats = m.metric.new_statistics(), m.metric.new_statistics()
    for image_id in ids:
        with times("io"):
            pred = read_image(folder / f"{image_id}.png", require_rgb=True)[None]
            gt = read_image(gt_dir / f"{image_id}.png", require_rgb=True)[None] if dist or m.spec.needs_gt else None
        with times("metrics", device=True), torch.inference_mode():
            if dist:
                pred_stats.add(m.metric.features(pred))
                gt_stats.add(m.metric.features(gt))
            else:
                values[image_id, w][m.column] = float(m.metric(pred, gt)[0])
    if dist:
        with times("metrics"):
            groups[w][m.column] = m.metric.value(pred_stats, gt_stats if m.metric.uses_gt else None)


def sweep_pipeline(cfg: SweepConfig) -> dict[str, Any]:
    """`FidelityWeightSweep` with `cfg`: seconds, seconds per part (model = encode + decode, metrics = the metric
    columns, other), its `timings`, `rows` (results.parquet) and `groups` (groups.parquet)."""
    start = time.perf_counter()
    sweep = FidelityWeightSweep(cfg, log=lambda *_a, **_k: None)
    result = sweep.run()
    seconds = time.perf_counter() - start
    stages = result.timings["seconds"]
    model = stages.get(ENCODE, 0.0) + stages.get(DECODE, 0.0)
    metrics = sum(stages.get(m.column, 0.0) for m in sweep.metrics)
    return {
        "seconds": seconds,
        "parts": {"model": model, "metrics": metrics},
        "timings": result.timings,
        "wall_over_model": stages[TOTAL] / model if model else None,
        "rows": pd.read_parquet(result.run_dir / "results.parquet"),
        "groups": pd.read_parquet(result.run_dir / "groups.parquet"),
        "skipped": result.skipped,
    }


def compare_with_naive(cfg: SweepConfig, device: str, workdir: Path | None = None) -> dict[str, Any]:
    """Warm up, run the naive pipeline, then the sweep, on `cfg` (its run_dir is replaced by a temporary one);
    returns both results and `ratio` (naive seconds over the sweep's) and the sweep's `wall_over_model`."""
    with tempfile.TemporaryDirectory(prefix="cfbench-bench-eval-", dir=workdir) as tmp:
        cfg = dataclasses.replace(cfg, run_dir=str(Path(tmp) / "run"))
        warm_up(cfg, device)
        naive = naive_pipeline(cfg, Path(tmp) / "naive", device)
        ours = sweep_pipeline(cfg)
    return {"naive": naive, "ours": ours, "ratio": naive["seconds"] / ours["seconds"]}
