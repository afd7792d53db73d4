"""The baseline file: what `cfbench baseline` writes and `cfbench regress` compares against (JSON, written
atomically).

    kind, schema_version, created, cfbench (version)
    checkpoint   {label, source, sha256} of the accepted checkpoint
    config       the resolved sweep config (cfbench.eval.config.SweepConfig fields; run_dir dropped)
    seeds        {degradation: the sweep seed, bootstrap: the resampling seed}
    bootstrap    {n_boot, seed, confidence}
    dataset      {name, content_hash, n}
    metrics      {column: {spec, backend, reference, weights_sha256, higher_is_better, kind}}
    device       where the baseline ran
    rows         [{severity, w, metric, value, ci_low, ci_high, n_images}]   (null for a missing value/interval)
    w_sensitivity  {w_low, w_high, severity, faces, mean_abs_diff} (`cfbench.regress.wsens`; null with one w)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cfbench import __version__
from cfbench.atomic import atomic_write_bytes
from cfbench.errors import BadInputError
from cfbench.eval.config import SweepConfig, check_options
from cfbench.eval.spec import parse_severity_spec, parse_w_spec
from cfbench.metrics.registry import get_metric, parse_metric_list
from cfbench.registry import UnknownNameError
from cfbench.regress.summary import Cell

BASELINE_KIND = "cfbench-baseline"
SCHEMA_VERSION = 1
GRID_KEYS = ("w", "severity", "metrics")  # config keys that define the rows a baseline must hold
CI_SLACK = 1e-9  # relative float noise allowed between a value and its interval
REQUIRED = ("checkpoint", "config", "seeds", "bootstrap", "dataset", "metrics", "rows", "cfbench")

BaselineRow = Cell
SWEEP_FIELDS = {f.name for f in dataclasses.fields(SweepConfig)}


@dataclass
class Baseline:
    checkpoint: dict[str, Any]
    config: dict[str, Any]
    seeds: dict[str, int]
    bootstrap: dict[str, Any]
    dataset: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    rows: list[Cell]
    cfbench: str
    device: str = "cpu"
    w_sensitivity: dict[str, Any] | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def directions(self) -> dict[str, bool]:
        return {name: bool(m["higher_is_better"]) for name, m in self.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return {"kind": BASELINE_KIND, "schema_version": SCHEMA_VERSION, **d}


def write_baseline(baseline: Baseline, path: str | os.PathLike) -> Path:
    text = json.dumps(baseline.to_dict(), indent=2, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode())


def _need(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, source: str) -> Any:
    if key not in data:
        raise BadInputError(f"{source}: {where}{key} is missing; is this a baseline written by `cfbench baseline`?")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BadInputError(f"{source}: {where}{key} has the wrong type ({type(value).__name__})")
    return value


def _number(data: Mapping[str, Any], key: str, where: str, source: str) -> float | None:
    """A finite number or null (json reads NaN and Infinity, which would make every comparison pass)."""
    value = _need(data, key, (int, float, type(None)), where, source)
    if value is not None and not math.isfinite(value):
        raise BadInputError(f"{source}: {where}{key} is {value}; a baseline holds finite numbers or null")
    return value


def _row(data: Any, i: int, source: str) -> Cell:
    where = f"rows[{i}]."
    if not isinstance(data, Mapping):
        raise BadInputError(f"{source}: rows[{i}] must be an object")
    row = Cell(
        severity=str(_need(data, "severity", (str, int, float), where, source)),
        w=float(
            _number(data, "w", where, source) if data.get("w") is not None else _need(data, "w", float, where, source)
        ),
        metric=_need(data, "metric", str, where, source),
        value=_number(data, "value", where, source),
        ci_low=_number(data, "ci_low", where, source),
        ci_high=_number(data, "ci_high", where, source),
        n_images=int(_need(data, "n_images", int, where, source)),
    )
    if row.n_images < 1:
        raise BadInputError(f"{source}: {where}n_images is {row.n_images}; it must be at least 1")
    if (row.ci_low is None) != (row.ci_high is None):
        raise BadInputError(f"{source}: {where}ci_low and ci_high must both be numbers or both null")
    if row.ci_low is not None and row.value is not None:
        slack = CI_SLACK * max(1.0, abs(row.value))
        if not row.ci_low - slack <= row.value <= row.ci_high + slack:
            raise BadInputError(
                f"{source}: {where}value {row.value:.6g} is outside [ci_low, ci_high] = "
                f"[{row.ci_low:.6g}, {row.ci_high:.6g}]; the interval must contain the value"
            )
    return row


def _check_metric(name: str, entry: Any, source: str) -> None:
    """The entry's types, and its direction against the metric registry (a flipped direction inverts the gate)."""
    if not isinstance(entry, Mapping):
        raise BadInputError(f"{source}: metrics.{name} must be an object")
    for key, kind in (("spec", str), ("backend", str), ("weights_sha256", dict), ("higher_is_better", bool)):
        _need(entry, key, kind, f"metrics.{name}.", source)
    try:
        spec = get_metric(entry["spec"])
    except (UnknownNameError, BadInputError) as err:
        raise BadInputError(f"{source}: metrics.{name}.spec: {err}") from None
    if spec.higher_is_better != entry["higher_is_better"]:
        raise BadInputError(
            f"{source}: metrics.{name}.higher_is_better is {str(entry['higher_is_better']).lower()}, but "
            f"{spec.name} is {spec.direction} is better in the metric registry; re-create the baseline"
        )


def _check_config(config: dict[str, Any], source: str) -> dict[str, Any]:
    """The stored sweep config, checked like a sweep YAML file; it must name the grid (w, severity, metrics)."""
    unknown = sorted(set(config) - set(SWEEP_FIELDS))
    if unknown:
        raise BadInputError(f"{source}: config.{unknown[0]} is not a sweep option of this cfbench {__version__}")
    for key in GRID_KEYS:
        if config.get(key) is None:
            raise BadInputError(f"{source}: config.{key} is missing; is this a baseline written by `cfbench baseline`?")
    return check_options(config, lambda key: f"{source}: config.{key}")


def _check_coverage(config: dict[str, Any], metrics: Mapping[str, Any], rows: list[Cell], source: str) -> None:
    """Rows hold exactly one value per (severity, w, metric) of the configured grid: a removed row would leave a
    metric ungated, an extra or repeated one would gate what the run does not measure."""
    named = {spec.name for spec in parse_metric_list(config["metrics"])}
    specs = {get_metric(e["spec"]).name for e in metrics.values()}
    if named != specs:
        diff = sorted(named ^ specs)
        raise BadInputError(
            f"{source}: config.metrics ({config['metrics']}) and the metrics entries differ on {', '.join(diff)}"
        )
    expected = [
        (sev, w, m)
        for sev in parse_severity_spec(config["severity"])
        for w in parse_w_spec(config["w"])
        for m in metrics
    ]
    seen: set[tuple[str, float, str]] = set()
    for i, r in enumerate(rows):
        if r.key not in expected:
            raise BadInputError(
                f"{source}: rows[{i}] (severity {r.severity}, w {r.w:g}, {r.metric}) is not in the configured grid "
                f"(config.severity {config['severity']!r}, config.w {config['w']!r})"
            )
        if r.key in seen:
            raise BadInputError(f"{source}: rows[{i}] repeats (severity {r.severity}, w {r.w:g}, {r.metric})")
        seen.add(r.key)
    missing = [k for k in expected if k not in seen]
    if missing:
        sev, w, metric = missing[0]
        raise BadInputError(
            f"{source}: rows lack {len(missing)} value(s) of the configured grid, e.g. {metric} at severity {sev}, "
            f"w {w:g}; a metric without rows would not be gated: re-create the baseline"
        )


def parse_baseline(data: Any, source: str = "baseline") -> Baseline:
    if not isinstance(data, Mapping) or data.get("kind") != BASELINE_KIND:
        raise BadInputError(
            f"{source} is not a cfbench baseline (kind {BASELINE_KIND!r}); make one with `cfbench baseline`"
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise BadInputError(
            f"{source}: schema_version is {data.get('schema_version')!r}, this cfbench reads {SCHEMA_VERSION}; "
            "re-create the baseline"
        )
    for key in REQUIRED:
        _need(data, key, (dict, list, str), "", source)
    dataset = _need(data, "dataset", dict, "", source)
    _need(dataset, "content_hash", str, "dataset.", source)
    metrics = _need(data, "metrics", dict, "", source)
    if not metrics:
        raise BadInputError(f"{source}: metrics is empty")
    for name, entry in metrics.items():
        _check_metric(name, entry, source)
    rows = [_row(r, i, source) for i, r in enumerate(_need(data, "rows", list, "", source))]
    if not rows:
        raise BadInputError(f"{source}: rows is empty")
    for i, r in enumerate(rows):
        if r.metric not in metrics:
            raise BadInputError(f"{source}: rows[{i}].metric {r.metric!r} is not in metrics")
    config = _check_config(_need(data, "config", dict, "", source), source)
    _check_coverage(config, metrics, rows, source)
    return Baseline(
        checkpoint=_need(data, "checkpoint", dict, "", source),
        config=config,
        seeds=_need(data, "seeds", dict, "", source),
        bootstrap=_need(data, "bootstrap", dict, "", source),
        dataset=dataset,
        metrics={k: dict(v) for k, v in metrics.items()},
        rows=rows,
        cfbench=_need(data, "cfbench", str, "", source),
        device=str(data.get("device", "cpu")),
        w_sensitivity=data.get("w_sensitivity"),
        created=str(data.get("created", "")),
    )


def read_baseline(path: str | os.PathLike) -> Baseline:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"baseline file not found: {path}") from None
    except (OSError, ValueError) as err:
        raise BadInputError(f"baseline {path} is unreadable: {err}") from None
    return parse_baseline(data, str(path))
