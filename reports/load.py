"""Read a finished `cfbench eval` run directory (its schema: `cfbench.eval.store.schema`) into memory; nothing else.

A report reads only the run dir: manifest.json (config, provenance, metric directions, skipped metrics),
results.parquet (one row per image x w x severity x checkpoint), groups.parquet (per-group means and FID) and
codes.npz (the predicted code indices). Saved images, when the run wrote them, are found under ``images/``.
Anything missing or unreadable raises `BadInputError` with one line saying what and where.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cfbench.errors import BadInputError
from cfbench.eval.protocols import protocol_line
from cfbench.eval.store.finalize import check_outputs
from cfbench.eval.store.schema import (
    CODES,
    CODES_KEY_ARRAYS,
    COMPLETE,
    DIRECTIONS,
    GROUPS,
    ID_COLUMNS,
    MANIFEST,
    RESULTS,
    RUN_KIND,
    SKIPPED_METRICS,
    input_image_path,
    restored_image_path,
)
from reports.style import MetricFacts, metric_label


@dataclass
class Run:
    """One run dir in memory. `directions`: metric column -> higher_is_better, in manifest order, only metrics the
    run measured; `absent`: metrics the run skipped (name -> why)."""

    run_dir: Path
    manifest: dict[str, Any]
    results: pd.DataFrame
    groups: pd.DataFrame
    codes: dict[str, np.ndarray] | None
    directions: dict[str, bool]
    absent: dict[str, str] = field(default_factory=dict)
    # checkpoint label -> (run dir, checkpoint name there), for labels renamed by `combine`
    sources: dict[str, tuple[Path, str]] = field(default_factory=dict)
    # metric column -> label, unit, role, as the manifest records them (columns of older runs: absent)
    facts: dict[str, MetricFacts] = field(default_factory=dict)

    def label(self, column: str, short: bool = False) -> str:
        """The column's figure label with its unit and direction (`reports.style.metric_label`)."""
        return metric_label(column, self.directions.get(column), short, self.facts.get(column))

    def role(self, column: str) -> str:
        facts = self.facts.get(column)
        return facts.role if facts else ""

    def _where(self, checkpoint: str) -> tuple[Path, str]:
        return self.sources.get(checkpoint, (self.run_dir, checkpoint))

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def severities(self) -> list[str]:
        return order_severities(self.results["severity"].unique())

    @property
    def ws(self) -> list[float]:
        return sorted(float(w) for w in self.results["w"].unique())

    @property
    def checkpoints(self) -> list[str]:
        return sorted(self.results["checkpoint"].unique())

    @property
    def per_image_metrics(self) -> list[str]:
        return [m for m in self.directions if m in self.results.columns]

    @property
    def distribution_metrics(self) -> list[str]:
        return [m for m in self.directions if m not in self.results.columns and m in self.groups.columns]

    def image_path(self, checkpoint: str, severity: str, w: float, image_id: str) -> Path | None:
        """The restored face `cfbench eval --save-images` wrote, or None when the run did not save it."""
        root, ckpt = self._where(checkpoint)
        path = restored_image_path(root, ckpt, severity, w, image_id)
        return path if path.is_file() else None

    def source_image_path(self, kind: str, checkpoint: str, severity: str, image_id: str) -> Path | None:
        """The LQ (`kind` "lq") or GT ("gt") face if the run dir holds it (``images/<ckpt>/severity_<s>/lq/`` or
        ``images/gt/``, written by `cfbench eval --save-images`), else None (runs made without them, or before they were
        saved, such as the committed test fixture)."""
        root, ckpt = self._where(checkpoint)
        path = input_image_path(root, kind, ckpt, severity, image_id)
        return path if path.is_file() else None


def severity_key(label: str) -> tuple[int, float, str]:
    """Numeric severities first in increasing order (0, 0.5, 2), then text labels (none, celeba-test)."""
    try:
        value = float(label)
    except (TypeError, ValueError):
        return (1, 0.0, str(label))
    return (0, value if math.isfinite(value) else math.inf, str(label))


def order_severities(labels) -> list[str]:
    return sorted({str(s) for s in labels}, key=severity_key)


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise BadInputError(f"{run_dir} is not a folder; give the run directory of a `cfbench eval` run")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"{run_dir} has no {MANIFEST}: it is not a cfbench eval run directory") from None
    except (OSError, ValueError) as err:
        raise BadInputError(f"{path} is unreadable ({err})") from None
    if not isinstance(data, dict) or data.get("kind") != RUN_KIND:
        raise BadInputError(f"{path} is not a cfbench eval manifest (kind is not {RUN_KIND!r})")
    if data.get("status") != COMPLETE:
        raise BadInputError(f"{run_dir} holds an unfinished run (status {data.get('status')!r}); finish or resume it")
    return data


def _read_parquet(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise BadInputError(f"{path.parent} has no {path.name} ({what}); re-run or finish the eval run") from None
    except Exception as err:  # pyarrow raises its own error types for damaged files
        raise BadInputError(f"{path} is unreadable ({type(err).__name__}: {err})".splitlines()[0]) from None


def _read_codes(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            codes = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise BadInputError(f"{path} is unreadable ({err})") from None
    missing = [k for k in (*CODES_KEY_ARRAYS, "codes") if k not in codes]
    if missing:
        raise BadInputError(f"{path} lacks the arrays {missing}")
    return codes


def load_run(run_dir: str | os.PathLike) -> Run:
    """The run in `run_dir`; BadInputError when it is not a finished cfbench eval run dir or a file is damaged."""
    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    check_outputs(run_dir, manifest)
    results = _read_parquet(run_dir / RESULTS, "per-image results")
    groups = _read_parquet(run_dir / GROUPS, "per-group means")
    missing = [c for c in ID_COLUMNS if c not in results.columns]
    if missing:
        raise BadInputError(f"{run_dir / RESULTS} lacks the columns {missing}")
    if results.empty:
        raise BadInputError(f"{run_dir / RESULTS} has no rows")
    for col in ("checkpoint", "severity", "image_id"):
        results[col] = results[col].astype(str)
        if col in groups.columns:
            groups[col] = groups[col].astype(str)
    results["w"] = results["w"].astype(np.float64)
    stored = manifest.get(DIRECTIONS)
    if not isinstance(stored, dict):  # an older run: guess nothing, use every numeric column as lower-is-better
        raise BadInputError(f"{run_dir / MANIFEST} records no metric directions; re-run `cfbench eval`")
    wrong = {k: v for k, v in stored.items() if not isinstance(v, bool)}
    if wrong:
        raise BadInputError(f"{run_dir / MANIFEST}: metric directions must be true or false, got {wrong}")
    directions = {str(k): v for k, v in stored.items() if k in results.columns or k in groups.columns}
    absent = {str(k): str(v) for k, v in (manifest.get(SKIPPED_METRICS) or {}).items()}
    for k in stored:
        if k not in directions:
            absent.setdefault(str(k), "listed in the manifest but not in the results")
    run = Run(run_dir, manifest, results, groups, _read_codes(run_dir / CODES), directions, absent)
    run.facts = metric_facts(manifest)
    return run


def metric_facts(manifest: dict[str, Any]) -> dict[str, MetricFacts]:
    """column -> MetricFacts from the manifest's metric records (`cfbench.eval.provenance.metric_record`)."""
    records = (manifest.get("provenance") or {}).get("metrics") or {}
    return {
        str(column): MetricFacts(str(r["label"]), str(r.get("unit") or ""), str(r.get("role") or ""))
        for column, r in records.items()
        if isinstance(r, dict) and r.get("label")
    }


def combine(runs: list[Run]) -> Run:
    """Several runs as one: checkpoint labels that repeat across runs become ``<run dir name>/<checkpoint>``."""
    if len(runs) == 1:
        return runs[0]
    seen: dict[str, int] = {}
    for run in runs:
        for c in run.checkpoints:
            seen[c] = seen.get(c, 0) + 1
    results, groups, codes = [], [], []
    directions: dict[str, bool] = {}
    absent: dict[str, str] = {}
    sources: dict[str, tuple[Path, str]] = {}
    facts: dict[str, MetricFacts] = {}
    names = [run.name for run in runs]
    for i, run in enumerate(runs):
        prefix = run.name if names.count(run.name) == 1 else f"run{i + 1}"
        rename = {c: f"{prefix}/{c}" if seen[c] > 1 else c for c in run.checkpoints}
        sources.update({new: (run.run_dir, old) for old, new in rename.items()})
        results.append(run.results.assign(checkpoint=run.results["checkpoint"].map(rename)))
        groups.append(run.groups.assign(checkpoint=run.groups["checkpoint"].map(rename)))
        if run.codes is not None:
            c = dict(run.codes)
            c["checkpoint"] = np.array([rename.get(str(x), str(x)) for x in c["checkpoint"]], dtype=str)
            codes.append(c)
        for k, v in run.directions.items():
            if directions.setdefault(k, v) != v:
                raise BadInputError(f"metric {k!r} has opposite directions in {runs[0].run_dir} and {run.run_dir}")
        absent.update(run.absent)
        facts = {**run.facts, **facts}
    absent = {k: v for k, v in absent.items() if k not in directions}
    merged_codes = None
    if codes:
        width = max(c["codes"].shape[1] for c in codes)
        merged_codes = {k: np.concatenate([c[k] for c in codes]) for k in CODES_KEY_ARRAYS}
        # every (N, tokens) code set of any run (codes, nn_codes...); -1 pads short rows and runs without the set
        names = sorted({k for c in codes for k, v in c.items() if k not in merged_codes and v.ndim == 2})
        for name in names:
            mats = []
            for c in codes:
                mat = c.get(name, np.full(c["codes"].shape, -1, np.int16))
                mats.append(np.pad(mat, ((0, 0), (0, width - mat.shape[1])), constant_values=-1))
            merged_codes[name] = np.concatenate(mats)
    manifest = {"runs": {str(r.run_dir): r.manifest for r in runs}}
    first = runs[0]
    return Run(
        first.run_dir,
        manifest,
        pd.concat(results, ignore_index=True),
        pd.concat(groups, ignore_index=True),
        merged_codes,
        directions,
        absent,
        sources,
        facts,
    )


def run_protocol_line(run: Run) -> str:
    """What the run measured, as its manifest records it ('protocol celeba-test (v ...), overrides: ...'); empty
    for run dirs made before protocols were recorded."""
    record = (run.manifest.get("provenance") or {}).get("protocol")
    return protocol_line(record) if record else ""
