"""What a sweep needs before it may start: the weights of its checkpoints and metrics, and the metrics' packages.

A metric that was asked for (by `--metrics`, a protocol or a baseline) and cannot run stops the sweep before any
work with one `MissingRequirementsError` that lists every missing file and how to get it; with `skip_missing` (or
when the metrics were not named: the demo's "every available metric") it is left out and recorded as skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cfbench import weights
from cfbench.errors import MissingRequirementsError
from cfbench.eval.config import SweepConfig
from cfbench.export.runtime import OnnxCodeFormer, is_onnx
from cfbench.metrics import METRICS, MetricSpec, build_metrics, parse_metric_list
from cfbench.metrics.folders import BuiltMetric
from cfbench.metrics.registry import DEFAULT_METRICS
from cfbench.restoration import DEFAULT_CHECKPOINT, default_checkpoint, resolve_checkpoint


def metric_options(config: SweepConfig) -> dict[str, Any]:
    """The metric options a sweep config sets (each metric takes the ones it declares)."""
    return {"ref": config.fid_ref, "resize": config.fid_resize, "crop_border": config.crop_border or None}


def requested_metrics(config: SweepConfig) -> tuple[list[MetricSpec], bool]:
    """(specs, named): the metrics the config names, or the default set with named=False."""
    if config.metrics is not None:
        return parse_metric_list(config.metrics), True
    return [METRICS.get(n) for n in DEFAULT_METRICS], False


# The default set on a GPU: these dlib metrics run on the CPU, so the torch backend of the same measure replaces
# them when its weights are present (the column names say which backend ran).
GPU_DEFAULTS = {"identity_cos[dlib]": "identity_cos[arcface]", "lmd[dlib]": "lmd[fan]"}


def device_defaults(specs: list[MetricSpec], device: torch.device | str) -> list[MetricSpec]:
    """The default metric set for `device`: on CUDA, GPU_DEFAULTS' torch backends where their weights are present."""
    if torch.device(device).type != "cuda":
        return specs
    out = []
    for spec in specs:
        gpu = METRICS.get(GPU_DEFAULTS[spec.name]) if spec.name in GPU_DEFAULTS else None
        ready = gpu is not None and all(weights.locate(n) for n in gpu.required_weights())
        out.append(gpu if ready else spec)
    return out


def needs_gt(spec: MetricSpec, options: dict[str, Any]) -> bool:
    """Whether the metric compares with GT images: full-reference metrics, and distribution metrics against the GT
    set (`fid[gt]`, `kid`, or `fid` with the `ref` option gt)."""
    if "ref" in spec.options:
        return (options.get("ref") or spec.options["ref"]) == "gt"
    return spec.needs_gt or spec.gt_set


def checkpoint_names(checkpoints: Sequence[str]) -> list[str]:
    """The checkpoints of a sweep with 'auto' resolved (a registered name or a file path)."""
    return [default_checkpoint() if c == DEFAULT_CHECKPOINT else c for c in checkpoints]


def needed_weights(config: SweepConfig) -> dict[str, list[str]]:
    """Registered weights name -> what needs it ('checkpoint' or metric names), for the config's checkpoints and
    named metrics (`cfbench weights status/fetch --for`)."""
    out: dict[str, list[str]] = {}
    for c in checkpoint_names(config.checkpoints):
        if c in weights.WEIGHTS:
            out.setdefault(c, []).append("checkpoint")
    specs, _ = requested_metrics(config)
    options = metric_options(config)
    for spec in specs:
        for name in spec.required_weights(options):
            out.setdefault(name, []).append(spec.name)
    return out


@dataclass
class Preflight:
    """The outcome of `check_requirements`: the metrics to run, and the ones left out (column -> why)."""

    metrics: list[BuiltMetric]
    skipped: dict[str, str] = field(default_factory=dict)
    named: bool = True


def check_requirements(config: SweepConfig, has_gt: bool, device: torch.device | str) -> Preflight:
    """Build the sweep's metrics after checking that its checkpoints and metrics can run; see the module docstring.

    Raises MissingRequirementsError (exit 2) listing every missing checkpoint file, weights file and package of a
    requested metric, unless `config.skip_missing`; a missing checkpoint is never skipped."""
    specs, named = requested_metrics(config)
    specs = specs if named else device_defaults(specs, device)
    strict = named and not config.skip_missing
    options = metric_options(config)
    skipped: dict[str, str] = {}
    problems: list[str] = []
    absent: dict[str, list[str]] = {}
    for c in checkpoint_names(config.checkpoints):
        if c in weights.WEIGHTS and weights.locate(c) is None:
            absent.setdefault(c, []).append("checkpoint")
        elif is_onnx(c):  # an unreadable, wrongly shaped or unrunnable export stops the sweep here
            OnnxCodeFormer(resolve_checkpoint(c)[0], device)
    runnable = []
    for spec in specs:
        if not has_gt and needs_gt(spec, options):
            why = f"dataset {config.dataset!r} has no GT faces"
            if strict:
                problems.append(f"{spec.name}: {why}; it is a GT metric (drop it from --metrics)")
            skipped[spec.name] = why
            continue
        missing = [n for n in spec.required_weights(options) if weights.locate(n) is None]
        for n in missing:
            absent.setdefault(n, []).append(spec.name)
        if missing:
            skipped[spec.name] = "; ".join(weights.missing_message(n) for n in missing)
        else:
            runnable.append(spec)
    built, failed = build_metrics(runnable, device, options)
    for name, why in failed.items():
        problems.append(f"{name}: {why}")
        skipped[name] = why
    checkpoint_missing = any("checkpoint" in users for users in absent.values())
    if (strict and (absent or problems)) or checkpoint_missing:
        lines = [f"  {n} (for {', '.join(users)}): {weights.missing_message(n)}" for n, users in absent.items()]
        lines += [f"  {p}" for p in problems if strict]
        metric_missing = problems or any(u != ["checkpoint"] for u in absent.values())
        hint = " (--skip-missing runs without the missing metrics)" if strict and metric_missing else ""
        raise MissingRequirementsError(
            f"cannot run: {len(lines)} requirement(s) missing; nothing was restored or written{hint}:\n"
            + "\n".join(lines)
        )
    return Preflight(built, skipped, named)
