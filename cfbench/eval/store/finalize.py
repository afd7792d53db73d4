"""Finalize a run dir: merge the done parts into results.parquet, groups.parquet and codes.npz, and the feature
accumulators (FID sums, KID feature sets) of the parts per group, then mark the run complete in its manifest.

Features are stored per part and merged here, in a fixed order, so a resumed run never recomputes the
features of earlier parts and the result does not depend on which run wrote which part.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from cfbench.atomic import atomic_path, atomic_write_bytes
from cfbench.errors import BadInputError, CfbenchError
from cfbench.eval.store.manifest import TMP_FILE, now, read_manifest, to_jsonable, write_manifest
from cfbench.eval.store.parts import PartKey, Parts, npz_bytes, w_key
from cfbench.eval.store.schema import (
    CODE_SET_PREFIX,
    CODES,
    CODES_ARRAYS,
    CODES_KEY_ARRAYS,
    COMPLETE,
    GROUP_COLUMNS,
    GROUPS,
    ID_COLUMNS,
    MANIFEST_KEYS,
    N_IMAGES,
    OUTPUTS,
    RESULTS,
)
from cfbench.hashing import sha256_path
from cfbench.metrics.base import FeatureStatistics


class GroupKey(NamedTuple):
    checkpoint: str
    severity: str
    w: float


class StoreError(CfbenchError):
    """The stored parts disagree with each other (e.g. the same image twice); the message says which."""


def merged_features(
    parts: Parts, kinds: Mapping[str, type[FeatureStatistics]] | None = None
) -> dict[GroupKey, dict[str, FeatureStatistics]]:
    """The feature accumulators of all done parts, merged per (checkpoint, severity, w) group and metric, in a fixed
    order (sorted part keys). `kinds`: metric name -> the accumulator type it needs (`DistributionMetric.
    statistics_type`; default `FeatureStatistics`, sums only); a `FeatureSet` keeps the raw features of every part,
    concatenated in that order, so its metric needs parts stored in raw form."""
    kinds = kinds or {}
    out: dict[GroupKey, dict[str, FeatureStatistics]] = {}
    for key, stem in sorted(parts.scan().items()):
        arrays = parts.read_marker(stem)
        if "features" not in arrays:
            continue
        for i, entry in enumerate(json.loads(str(arrays["features"]))):
            group = GroupKey(key.checkpoint, key.severity, w_key(entry["w"]))
            kind = kinds.get(entry["metric"], FeatureStatistics)
            if entry["form"] == "raw":
                raw = arrays[f"f{i}_raw"]
                part = kind(raw.shape[1])
                part.add(raw)
            elif kind is FeatureStatistics:
                part = FeatureStatistics.from_arrays({k: arrays[f"f{i}_{k}"] for k in ("n", "sum", "outer")})
            else:
                raise StoreError(
                    f"features {entry['metric']!r} of part {stem} are stored as sums; {kind.__name__} needs the "
                    "feature vectors: use a new --run-dir"
                )
            per_metric = out.setdefault(group, {})
            have = per_metric.get(entry["metric"])
            if have is None:
                per_metric[entry["metric"]] = part
            elif have.sum.shape != part.sum.shape:
                raise StoreError(
                    f"features {entry['metric']!r} of group {tuple(group)} have dimensions "
                    f"{have.sum.shape[0]} and {part.sum.shape[0]} in different parts"
                )
            else:
                have.merge(part)
    return out


def _load_rows(parts: Parts, done: Mapping[PartKey, str]) -> pd.DataFrame:
    frames = []
    for _key, stem in sorted(done.items()):
        frame = parts.read_rows(stem)
        frame["_part"] = stem
        frames.append(frame)
    nonempty = [f for f in frames if len(f)] or frames
    results = pd.concat(nonempty, ignore_index=True)
    dup = results.duplicated(list(ID_COLUMNS), keep=False)
    if dup.any():
        first = results.loc[dup, list(ID_COLUMNS)].iloc[0].tolist()
        stems = sorted(set(results.loc[dup, "_part"]))
        raise StoreError(
            f"{int(dup.sum())} result rows repeat (checkpoint, severity, w, image_id), e.g. {tuple(first)}, in "
            f"parts {stems[:2]}: parts overlap (was the batch size changed on resume?); use a new --run-dir"
        )
    results = results.drop(columns="_part").sort_values(list(ID_COLUMNS), kind="mergesort")
    return results.reset_index(drop=True)


def metric_columns(results: pd.DataFrame) -> list[str]:
    """The default metric columns: every numeric (not boolean) column except the id columns."""
    return [
        c
        for c in results.columns
        if c not in ID_COLUMNS
        and pd.api.types.is_numeric_dtype(results[c])
        and not pd.api.types.is_bool_dtype(results[c])
    ]


def _groups(
    results: pd.DataFrame, columns: Sequence[str], distribution_rows: Sequence[Mapping[str, Any]] | None
) -> pd.DataFrame:
    keys = list(GROUP_COLUMNS)
    grouped = results.groupby(keys, sort=True)
    groups = grouped["image_id"].nunique().rename(N_IMAGES).to_frame()
    if columns:
        groups = groups.join(grouped[list(columns)].mean())
    groups = groups.reset_index()
    if not distribution_rows:
        return groups
    dist = pd.DataFrame([dict(r) for r in distribution_rows])
    missing = [c for c in keys if c not in dist.columns]
    if missing:
        raise ValueError(f"distribution rows need the columns {keys}; missing {missing}")
    clash = [c for c in dist.columns if c not in keys and c in groups.columns]
    if clash:
        raise ValueError(f"distribution rows repeat the columns {clash} of the per-image means")
    dist["checkpoint"] = dist["checkpoint"].astype(str)
    dist["severity"] = dist["severity"].astype(str)
    dist["w"] = dist["w"].astype(np.float64) + 0.0
    if dist.duplicated(keys).any():
        raise ValueError(f"distribution rows repeat the group {tuple(dist.loc[dist.duplicated(keys), keys].iloc[0])}")
    merged = groups.merge(dist, on=keys, how="outer", indicator=True, sort=False)
    orphan = merged[merged["_merge"] == "right_only"]
    if len(orphan):
        raise ValueError(f"distribution row for group {tuple(orphan[keys].iloc[0])} matches no results")
    merged = merged.drop(columns="_merge").sort_values(keys, kind="mergesort").reset_index(drop=True)
    merged[N_IMAGES] = merged[N_IMAGES].astype(np.int64)
    return merged


def _codes(parts: Parts, done: Mapping[PartKey, str]) -> dict[str, np.ndarray]:
    records: list[tuple[str, str, str, dict[str, np.ndarray]]] = []  # (checkpoint, severity, id, set -> row)
    for key, stem in sorted(done.items()):
        arrays = parts.read_marker(stem)
        if "codes" in arrays:
            sets = {"codes": arrays["codes"]}
            sets.update({k[len(CODE_SET_PREFIX) :]: v for k, v in arrays.items() if k.startswith(CODE_SET_PREFIX)})
            for i, image_id in enumerate(arrays["codes_image_id"]):
                records.append((key.checkpoint, key.severity, str(image_id), {k: v[i] for k, v in sets.items()}))
    records.sort(key=lambda r: r[:3])
    for a, b in zip(records, records[1:], strict=False):
        if a[:3] == b[:3]:
            raise StoreError(f"codes of image {a[:3]} are stored by two parts; use a new --run-dir")
    length = max((r[3]["codes"].shape[0] for r in records), default=0)
    names = ["codes", *sorted({k for r in records for k in r[3]} - {"codes"})]
    # -1 pads shorter code sequences (other models) and the images whose part did not store a set
    mats = {name: np.full((len(records), length), -1, np.int16) for name in names}
    for i, r in enumerate(records):
        for name, row in r[3].items():
            mats[name][i, : row.shape[0]] = row
    return {
        **{name: np.array([r[i] for r in records], dtype=str) for i, name in enumerate(CODES_KEY_ARRAYS)},
        **mats,
        "n_tokens": np.array([r[3]["codes"].shape[0] for r in records], np.int32),
    }


def _remove_stale_temps(run_dir: Path, parts: Parts) -> None:
    for folder in (run_dir, parts.parts_dir):
        if folder.is_dir():
            for path in folder.iterdir():
                if TMP_FILE.match(path.name) and path.is_file():
                    path.unlink(missing_ok=True)


def finalize(
    run_dir: Path,
    parts: Parts,
    distribution_rows: Sequence[Mapping[str, Any]] | None = None,
    columns: Sequence[str] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write results, groups and codes of the done `parts` into `run_dir` and mark the run complete; returns the
    paths written and the manifest (arguments: `cfbench.eval.store.RunStore.finalize`)."""
    removed = len(parts.removed)
    done = parts.scan()
    if len(parts.removed) > removed:
        raise StoreError(f"{parts.removed[-1]} during the run: removed; run the same command again to recompute it")
    if not done:
        raise StoreError(f"{run_dir} has no finished parts: nothing to finalize")
    results = _load_rows(parts, done)
    columns = list(columns) if columns is not None else metric_columns(results)
    absent = [c for c in columns if c not in results.columns]
    if absent:
        raise ValueError(f"metric columns {absent} are not in the results")
    groups = _groups(results, columns, distribution_rows)
    codes = _codes(parts, done)

    paths = {"results": run_dir / RESULTS, "groups": run_dir / GROUPS, "codes": run_dir / CODES}
    with atomic_path(paths["results"]) as tmp:
        results.to_parquet(tmp, index=False)
    with atomic_path(paths["groups"]) as tmp:
        groups.to_parquet(tmp, index=False)
    atomic_write_bytes(paths["codes"], npz_bytes(codes, compress=True))
    _remove_stale_temps(run_dir, parts)

    outputs = {
        "results": {"file": RESULTS, "rows": int(len(results)), "sha256": file_digest(paths["results"])},
        "groups": {"file": GROUPS, "rows": int(len(groups)), "sha256": file_digest(paths["groups"])},
        "codes": {
            "file": CODES,
            "images": int(len(codes["image_id"])),
            "code_sets": sorted(k for k in codes if k not in CODES_ARRAYS),
        },
        "parts": len(done),
        "metric_columns": columns,
        "distribution_columns": [
            c for c in groups.columns if c not in GROUP_COLUMNS and c != N_IMAGES and c not in columns
        ],
    }
    manifest = read_manifest(run_dir)
    extra = to_jsonable(dict(manifest_extra or {}))
    reserved = set(MANIFEST_KEYS) & set(extra)
    if reserved:
        raise ValueError(f"manifest_extra may not set {sorted(reserved)}")
    already = manifest.get("status") == COMPLETE and manifest.get(OUTPUTS) == outputs
    if not (already and all(manifest.get(k) == v for k, v in extra.items())):
        manifest.update(extra)
        manifest.update({"status": COMPLETE, "finished": now(), OUTPUTS: outputs})
        write_manifest(run_dir, manifest)
    return paths, manifest


def file_digest(path: Path) -> str:
    return sha256_path(path)


def check_outputs(run_dir: Path, manifest: Mapping[str, Any]) -> None:
    """BadInputError when results.parquet or groups.parquet is not the file `finalize` wrote (its sha256 in the
    manifest's outputs; runs finished before the hash was recorded are not checked)."""
    for name, record in (manifest.get(OUTPUTS) or {}).items():
        if not isinstance(record, dict) or "sha256" not in record:
            continue
        path = run_dir / str(record["file"])
        if path.is_file() and file_digest(path) != record["sha256"]:
            raise BadInputError(
                f"{path} was changed after `cfbench eval` finished (its sha256 differs from the manifest's {name} "
                "record); run the same `cfbench eval` command again to rebuild it from the stored parts"
            )
