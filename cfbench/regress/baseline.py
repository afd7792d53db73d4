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

import datetime as _dt
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cfbench.atomic import atomic_write_bytes
from cfbench.errors import BadInputError
from cfbench.regress.summary import Cell

BASELINE_KIND = "cfbench-baseline"
SCHEMA_VERSION = 1
REQUIRED = ("checkpoint", "config", "seeds", "bootstrap", "dataset", "metrics", "rows", "cfbench")

BaselineRow = Cell


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


def _row(data: Any, i: int, source: str) -> Cell:
    where = f"rows[{i}]."
    if not isinstance(data, Mapping):
        raise BadInputError(f"{source}: rows[{i}] must be an object")
    num = (int, float, type(None))
    return Cell(
        severity=str(_need(data, "severity", (str, int, float), where, source)),
        w=float(_need(data, "w", (int, float), where, source)),
        metric=_need(data, "metric", str, where, source),
        value=_need(data, "value", num, where, source),
        ci_low=_need(data, "ci_low", num, where, source),
        ci_high=_need(data, "ci_high", num, where, source),
        n_images=int(_need(data, "n_images", int, where, source)),
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
        if not isinstance(entry, Mapping):
            raise BadInputError(f"{source}: metrics.{name} must be an object")
        for key, kind in (("backend", str), ("weights_sha256", dict), ("higher_is_better", bool)):
            _need(entry, key, kind, f"metrics.{name}.", source)
    rows = [_row(r, i, source) for i, r in enumerate(_need(data, "rows", list, "", source))]
    if not rows:
        raise BadInputError(f"{source}: rows is empty")
    for i, r in enumerate(rows):
        if r.metric not in metrics:
            raise BadInputError(f"{source}: rows[{i}].metric {r.metric!r} is not in metrics")
    config = _need(data, "config", dict, "", source)
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
