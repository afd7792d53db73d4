"""The results store of one `cfbench eval` run: a run directory that is written atomically and can be resumed.

Layout of ``RUN_DIR``::

    manifest.json      kind, schema version, status (running/complete), started/finished, the resolved config,
                       provenance (cfbench version, metric backends and library versions, weights hashes, seeds,
                       device, git revision), resumes, and after `finalize` a summary of the outputs
    parts/<stem>.parquet  the rows of one part: one row per image x w
    parts/<stem>.npz      the part's key, its code indices and its FID accumulators; written last, so it is the
                          commit marker: a part is done exactly when its .npz exists (and its .parquet beside it)
    results.parquet    all rows, sorted by (checkpoint, severity, w, image_id)    -- written by `finalize`
    groups.parquet     per (checkpoint, severity, w): n_images, the mean of every metric column, and the
                       distribution metrics (FID) the caller computed from `merged_features`
    codes.npz          per (checkpoint, severity, image_id): the predicted code indices (they do not depend on w),
                       and any further code sets the parts stored (``nn_codes``...), -1 where a part had none

The unit of work is a *part*, `PartKey(checkpoint, severity, batch)`. Every file is written through
`cfbench.atomic` (temp file + rename), so a killed run leaves each part complete or absent, and a re-run with the
same run dir skips the parts in `done_parts()`. FID accumulators are stored per part and merged at the end, so a
resumed run never recomputes the features of earlier parts.

A run dir is resumed only when its stored config equals the new one on every key that changes results; the keys
that do not (device, run dir...) are passed as ``ignore_keys``. Note that the batch index is part of a part's
identity: if ``batch_size`` is ignored, the runner must cut parts independently of it (or skip by
`done_image_ids`), otherwise a resumed run with another batch size would overlap earlier parts (`finalize` then
refuses the duplicated rows).

Only one process opens a run dir as primary (rank 0 under torchrun); other ranks call ``open(..., primary=False)``,
which checks the manifest without writing it, and then write their own parts. `finalize` runs after every writer
has finished.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from cfbench.atomic import atomic_path, atomic_write_bytes
from cfbench.errors import BadInputError, CfbenchError
from cfbench.metrics.base import FeatureStatistics

RUN_KIND = "cfbench-eval-run"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
RESULTS = "results.parquet"
GROUPS = "groups.parquet"
CODES = "codes.npz"
PARTS = "parts"
CODES_ARRAYS = ("checkpoint", "severity", "image_id", "codes", "n_tokens")  # codes.npz always holds these
CODE_SET_PREFIX = "codeset_"  # a part marker's array of a further code set (write_part's code_sets)

ID_COLUMNS = ("checkpoint", "severity", "w", "image_id")  # unique per row of results.parquet
GROUP_COLUMNS = ("checkpoint", "severity", "w")
N_IMAGES = "n_images"
DEFAULT_IGNORE_KEYS = ("run_dir", "device", "json")

_CODE_SET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TMP = re.compile(r"^\..+\.tmp$")  # what cfbench.atomic leaves behind when a process is killed mid-write
_MISSING = object()


class PartKey(NamedTuple):
    checkpoint: str
    severity: str
    batch: int


class GroupKey(NamedTuple):
    checkpoint: str
    severity: str
    w: float


class StoreError(CfbenchError):
    """The stored parts disagree with each other (e.g. the same image twice); the message says which."""


FeatureInput = FeatureStatistics | np.ndarray  # accumulated statistics, or raw features of shape (N, dim)


# --------------------------------------------------------------------------------------------------- helpers


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    return str(obj)


def to_jsonable(obj: Any) -> Any:
    """`obj` as it reads back from JSON (tuples become lists, paths strings), so stored and new configs compare."""
    return json.loads(json.dumps(obj, default=_json_default))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def config_differences(
    old: Mapping[str, Any], new: Mapping[str, Any], ignore_keys: Iterable[str] = ()
) -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every key whose value differs, nested dicts compared key by key.

    A key in `ignore_keys` also ignores everything under it (``metrics`` ignores ``metrics.lpips.net``). An absent
    key reads as `_MISSING`."""
    ignore = tuple(ignore_keys)
    flat_old, flat_new = _flatten(to_jsonable(dict(old))), _flatten(to_jsonable(dict(new)))
    keys = list(flat_new) + [k for k in flat_old if k not in flat_new]
    out = []
    for key in keys:
        if any(key == k or key.startswith(f"{k}.") for k in ignore):
            continue
        a, b = flat_old.get(key, _MISSING), flat_new.get(key, _MISSING)
        if a != b:
            out.append((key, a, b))
    return out


def _show(value: Any, limit: int = 60) -> str:
    text = "(absent)" if value is _MISSING else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def npz_bytes(arrays: Mapping[str, np.ndarray], compress: bool = False) -> bytes:
    """An .npz archive of `arrays` that `np.load` reads, byte-identical for identical inputs (np.savez stamps
    the current time into the zip; this uses a fixed date and sorted names)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arrays[name]), allow_pickle=False)
    return buf.getvalue()


def _part_stem(key: PartKey) -> str:
    """A file-system-safe, injective name: readable slugs plus a hash of the exact key."""
    digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:16]

    def slug(text: str, n: int) -> str:
        return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("._")[-n:] or "x"

    return f"{slug(key.checkpoint, 48)}__{slug(key.severity, 24)}__b{key.batch:06d}__{digest}"


def _check_key(key: Any) -> PartKey:
    try:
        checkpoint, severity, batch = key
    except (TypeError, ValueError):
        raise TypeError(f"a part key is (checkpoint, severity, batch index), got {key!r}") from None
    if not isinstance(checkpoint, str) or not checkpoint or not isinstance(severity, str) or not severity:
        raise TypeError(f"a part key needs a checkpoint name and a severity label as text, got {key!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
        raise TypeError(f"a part key's batch index must be an int >= 0, got {batch!r}")
    return PartKey(checkpoint, severity, int(batch))


def _w_key(w: float) -> float:
    return float(w) + 0.0


def _code_matrix(key: PartKey, what: str, ids: Sequence[str], codes: Mapping[str, np.ndarray]) -> np.ndarray:
    """The 1-D integer code arrays of `ids` (in that order) as one (len(ids), L) int16 matrix; ValueError naming
    the image when one is not 1-D integer, does not fit int16, or has another length."""
    mats = []
    for image_id in ids:
        arr = np.asarray(codes[image_id])
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what} of image {image_id!r} must be a 1-D integer array, got {arr.dtype} {arr.shape}")
        if arr.size and (arr.min() < np.iinfo(np.int16).min or arr.max() > np.iinfo(np.int16).max):
            raise ValueError(f"{what} of image {image_id!r} do not fit int16")
        mats.append(arr.astype(np.int16))
    if len({m.shape for m in mats}) != 1:
        raise ValueError(f"{what} of part {tuple(key)} have different lengths")
    return np.stack(mats)


# ------------------------------------------------------------------------------------------------- the store


class RunStore:
    """The results store of one eval run in `run_dir` (see the module docstring for the layout)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.parts_dir = self.run_dir / PARTS
        self.manifest: dict[str, Any] | None = None
        self._key_of_file: dict[str, PartKey] = {}  # file names derive from keys, so this never goes stale

    # ----------------------------------------------------------------------------------------- manifest
    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    def read_manifest(self) -> dict[str, Any]:
        """The stored manifest; BadInputError when it is missing, unreadable, or not a cfbench eval manifest."""
        path = self.manifest_path
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise BadInputError(f"{self.run_dir} has no {MANIFEST}: it is not a cfbench eval run directory") from None
        except (OSError, ValueError) as err:
            raise BadInputError(
                f"{path} is unreadable ({err}); use another --run-dir, or delete the folder to start over"
            ) from None
        if not isinstance(data, dict) or data.get("kind") != RUN_KIND:
            raise BadInputError(f"{path} is not a cfbench eval manifest; use another --run-dir")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise BadInputError(
                f"{path} has schema version {data.get('schema_version')}, this cfbench writes {SCHEMA_VERSION}; "
                "use another --run-dir"
            )
        return data

    def _write_manifest(self, manifest: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.manifest_path, (json.dumps(manifest, indent=2, default=_json_default) + "\n").encode())

    def open(
        self,
        config: Mapping[str, Any],
        provenance: Mapping[str, Any],
        ignore_keys: Iterable[str] = DEFAULT_IGNORE_KEYS,
        *,
        primary: bool = True,
    ) -> None:
        """Start a new run in `run_dir`, or resume the run stored there if its config equals `config` on every key
        not in `ignore_keys`. BadInputError when the configs differ (naming the keys, old and new values), or when
        `run_dir` holds files but no manifest. `primary=False` (ranks other than 0) checks without writing."""
        config, provenance = to_jsonable(dict(config)), to_jsonable(dict(provenance))
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise BadInputError(f"--run-dir {self.run_dir} is a file; give a folder (new or from an earlier run)")
        if self.manifest_path.exists():
            manifest = self.read_manifest()
            diffs = config_differences(manifest.get("config", {}), config, ignore_keys)
            if diffs:
                shown = "; ".join(f"{k}: {_show(a)} -> {_show(b)}" for k, a, b in diffs[:3])
                more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
                raise BadInputError(
                    f"--run-dir {self.run_dir} holds a run with another config ({shown}{more}); use another "
                    "--run-dir, or the stored settings to resume it"
                )
            if primary:
                manifest["status"] = "running"
                manifest["finished"] = None
                resume: dict[str, Any] = {"at": _now(), "provenance": provenance}
                if config != manifest.get("config"):
                    resume["config"] = config  # differs only in ignored keys
                manifest.setdefault("resumed", []).append(resume)
                self._write_manifest(manifest)
        else:
            if not primary:
                raise CfbenchError(f"{self.run_dir} has no {MANIFEST} yet: the primary process (rank 0) opens first")
            if self.run_dir.is_dir():
                stray = [p.name for p in self.run_dir.iterdir() if not _TMP.match(p.name)]
                if stray:
                    raise BadInputError(
                        f"--run-dir {self.run_dir} is not a cfbench run directory (it holds {stray[0]!r} but no "
                        f"{MANIFEST}); give a new or empty folder"
                    )
            manifest = {
                "kind": RUN_KIND,
                "schema_version": SCHEMA_VERSION,
                "status": "running",
                "started": _now(),
                "finished": None,
                "config": config,
                "provenance": provenance,
                "resumed": [],
            }
            self._write_manifest(manifest)
        self.manifest = manifest

    def _require_open(self, what: str) -> None:
        if self.manifest is None:
            raise RuntimeError(f"RunStore.{what}: call open() first")

    # -------------------------------------------------------------------------------------------- parts
    def _paths(self, key: PartKey) -> tuple[Path, Path]:
        stem = _part_stem(key)
        return self.parts_dir / f"{stem}.parquet", self.parts_dir / f"{stem}.npz"

    def _scan(self) -> dict[PartKey, str]:
        """Done parts (their .npz marker and .parquet both exist) -> file stem, read from disk now."""
        out: dict[PartKey, str] = {}
        if not self.parts_dir.is_dir():
            return out
        for path in sorted(self.parts_dir.glob("*.npz")):
            if path.name.startswith(".") or not path.with_suffix(".parquet").is_file():
                continue
            key = self._key_of_file.get(path.name)
            if key is None:
                try:
                    with np.load(path, allow_pickle=False) as z:
                        k = json.loads(str(z["key"]))
                    key = PartKey(k["checkpoint"], k["severity"], int(k["batch"]))
                except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                    continue  # not ours, or damaged by the disk: the part counts as not done and is redone
                self._key_of_file[path.name] = key
            out[key] = path.stem
        return out

    def done_parts(self) -> set[PartKey]:
        """The parts that are completely written (read from disk, so parts of other ranks count too)."""
        return set(self._scan())

    def done_image_ids(self) -> dict[tuple[str, str], set[str]]:
        """Per (checkpoint, severity), the image ids whose rows are stored, for skipping by image."""
        out: dict[tuple[str, str], set[str]] = {}
        for key, stem in sorted(self._scan().items()):
            ids = pd.read_parquet(self.parts_dir / f"{stem}.parquet", columns=["image_id"])["image_id"]
            out.setdefault((key.checkpoint, key.severity), set()).update(ids.astype(str))
        return out

    def write_part(
        self,
        key: PartKey | tuple[str, str, int],
        rows: pd.DataFrame,
        codes: Mapping[str, np.ndarray] | None = None,
        features: Mapping[float, Mapping[str, FeatureInput]] | None = None,
        *,
        overwrite: bool = False,
        code_sets: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        """Store one part atomically: after a crash it is either complete or absent.

        `rows`: one row per image x w, with columns ``image_id``, ``checkpoint``, ``severity``, ``w`` (the first
        three as text, checkpoint and severity equal to the key's) and any others (metrics, degradation params as
        a JSON string, pose, timing). `codes`: image id -> predicted code indices (1-D, stored as int16).
        `features`: w -> metric name -> the FID accumulator of this part's images at that w, either a
        `FeatureStatistics` or the raw features as an (N, dim) array. Raw features are far smaller for small parts
        (a 2048-dim FeatureStatistics holds a 32 MB dim x dim sum; 16 raw vectors take 128 KB) and are merged
        exactly. `code_sets`: further code indices per image by set name (e.g. ``nn_codes``), for the same images
        as `codes`; codes.npz holds each set as an array of that name. Writing a part that is already done raises
        unless `overwrite`.
        """
        self._require_open("write_part")
        key = _check_key(key)
        rows = self._check_rows(key, rows)
        arrays: dict[str, np.ndarray] = {
            "key": np.array(json.dumps({"checkpoint": key.checkpoint, "severity": key.severity, "batch": key.batch})),
            "n_rows": np.array(len(rows)),
        }
        arrays.update(self._code_arrays(key, rows, codes, code_sets))
        arrays.update(self._feature_arrays(key, rows, features))

        parquet, marker = self._paths(key)
        if marker.exists():
            if not overwrite:
                raise ValueError(f"part {tuple(key)} is already stored; skip it (done_parts) or pass overwrite=True")
            marker.unlink()  # not done from here on, until the new marker lands
        try:
            with atomic_path(parquet) as tmp:
                rows.to_parquet(tmp, index=False)
            atomic_write_bytes(marker, npz_bytes(arrays))
        except BaseException:
            if not marker.exists():
                parquet.unlink(missing_ok=True)
            raise
        self._key_of_file[marker.name] = key

    @staticmethod
    def _check_rows(key: PartKey, rows: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(rows, pd.DataFrame):
            raise TypeError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
        missing = [c for c in ID_COLUMNS if c not in rows.columns]
        if missing:
            raise ValueError(f"rows of part {tuple(key)} lack the columns {missing}")
        if rows.columns.duplicated().any():
            raise ValueError(f"rows of part {tuple(key)} have duplicate column names")
        rows = rows.reset_index(drop=True).copy()
        for col in ("checkpoint", "severity", "image_id"):
            rows[col] = rows[col].astype(str).astype(object)
        rows["w"] = rows["w"].astype(np.float64) + 0.0
        for col, want in (("checkpoint", key.checkpoint), ("severity", key.severity)):
            bad = rows[col] != want
            if bad.any():
                raise ValueError(f"rows of part {tuple(key)} have {col} {rows[col][bad].iloc[0]!r}, not {want!r}")
        if not np.isfinite(rows["w"]).all():
            raise ValueError(f"rows of part {tuple(key)} have a non-finite w")
        dup = rows.duplicated(["image_id", "w"])
        if dup.any():
            first = rows.loc[dup, ["image_id", "w"]].iloc[0].tolist()
            raise ValueError(f"rows of part {tuple(key)} repeat (image_id, w) = {tuple(first)}")
        front = [c for c in ID_COLUMNS]
        return rows[front + [c for c in rows.columns if c not in front]]

    @staticmethod
    def _code_arrays(
        key: PartKey,
        rows: pd.DataFrame,
        codes: Mapping[str, np.ndarray] | None,
        code_sets: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> dict:
        if not codes:
            if code_sets:
                raise ValueError(f"part {tuple(key)} has code sets {sorted(code_sets)} but no codes")
            return {}
        ids = [str(i) for i in codes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"codes of part {tuple(key)} name an image id twice")
        unknown = sorted(set(ids) - set(rows["image_id"]))
        if unknown:
            raise ValueError(f"codes of part {tuple(key)} name image {unknown[0]!r}, which has no rows in the part")
        out = {"codes_image_id": np.array(ids, dtype=str), "codes": _code_matrix(key, "codes", ids, codes)}
        for name, per_image in (code_sets or {}).items():
            if not _CODE_SET_NAME.match(str(name)) or name in CODES_ARRAYS:
                raise ValueError(f"code set name {name!r} must be lower_case and not one of {list(CODES_ARRAYS)}")
            if sorted(map(str, per_image)) != sorted(ids):
                raise ValueError(f"code set {name!r} of part {tuple(key)} is not for the same images as its codes")
            mat = _code_matrix(key, name, ids, {str(k): v for k, v in per_image.items()})
            if mat.shape != out["codes"].shape:
                raise ValueError(f"code set {name!r} of part {tuple(key)} has another length than its codes")
            out[f"{CODE_SET_PREFIX}{name}"] = mat
        return out

    @staticmethod
    def _feature_arrays(
        key: PartKey, rows: pd.DataFrame, features: Mapping[float, Mapping[str, FeatureInput]] | None
    ) -> dict:
        if not features:
            return {}
        ws = set(rows["w"])
        meta: list[dict[str, Any]] = []
        arrays: dict[str, np.ndarray] = {}
        for w, per_metric in features.items():
            if isinstance(w, (bool, str)) or not isinstance(w, (int, float, np.floating, np.integer)):
                raise TypeError(f"features of part {tuple(key)} are keyed by w (a float), got {w!r}")
            w = _w_key(w)
            if rows.shape[0] and w not in ws:
                raise ValueError(f"features of part {tuple(key)} are for w = {w}, which has no rows in the part")
            for metric, value in per_metric.items():
                i = len(meta)
                if isinstance(value, FeatureStatistics):
                    meta.append({"w": w, "metric": str(metric), "form": "stats"})
                    arrays.update({f"f{i}_{k}": v for k, v in value.to_arrays().items()})
                else:
                    arr = np.asarray(value)
                    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
                        raise ValueError(
                            f"features {metric!r} at w = {w} must be FeatureStatistics or a float (N, dim) array, "
                            f"got {arr.dtype} {arr.shape}"
                        )
                    meta.append({"w": w, "metric": str(metric), "form": "raw"})
                    arrays[f"f{i}_raw"] = arr
        arrays["features"] = np.array(json.dumps(meta))
        return arrays

    def _load_marker(self, stem: str) -> dict[str, np.ndarray]:
        with np.load(self.parts_dir / f"{stem}.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    # ------------------------------------------------------------------------------------------ merging
    def merged_features(self) -> dict[GroupKey, dict[str, FeatureStatistics]]:
        """The FID accumulators of all done parts, merged per (checkpoint, severity, w) group and metric, in a
        fixed order (sorted part keys), so the result does not depend on which run wrote which part."""
        out: dict[GroupKey, dict[str, FeatureStatistics]] = {}
        for key, stem in sorted(self._scan().items()):
            arrays = self._load_marker(stem)
            if "features" not in arrays:
                continue
            for i, entry in enumerate(json.loads(str(arrays["features"]))):
                group = GroupKey(key.checkpoint, key.severity, _w_key(entry["w"]))
                if entry["form"] == "raw":
                    raw = arrays[f"f{i}_raw"]
                    part = FeatureStatistics(raw.shape[1])
                    part.add(raw)
                else:
                    part = FeatureStatistics.from_arrays({k: arrays[f"f{i}_{k}"] for k in ("n", "sum", "outer")})
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

    def _load_rows(self, parts: Mapping[PartKey, str]) -> pd.DataFrame:
        frames = []
        for _key, stem in sorted(parts.items()):
            frame = pd.read_parquet(self.parts_dir / f"{stem}.parquet")
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

    @staticmethod
    def metric_columns(results: pd.DataFrame) -> list[str]:
        """The default metric columns: every numeric (not boolean) column except the id columns."""
        return [
            c
            for c in results.columns
            if c not in ID_COLUMNS
            and pd.api.types.is_numeric_dtype(results[c])
            and not pd.api.types.is_bool_dtype(results[c])
        ]

    @staticmethod
    def _groups(
        results: pd.DataFrame, metric_columns: Sequence[str], distribution_rows: Sequence[Mapping[str, Any]] | None
    ) -> pd.DataFrame:
        keys = list(GROUP_COLUMNS)
        grouped = results.groupby(keys, sort=True)
        groups = grouped["image_id"].nunique().rename(N_IMAGES).to_frame()
        if metric_columns:
            groups = groups.join(grouped[list(metric_columns)].mean())
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
            raise ValueError(
                f"distribution rows repeat the group {tuple(dist.loc[dist.duplicated(keys), keys].iloc[0])}"
            )
        merged = groups.merge(dist, on=keys, how="outer", indicator=True, sort=False)
        orphan = merged[merged["_merge"] == "right_only"]
        if len(orphan):
            raise ValueError(f"distribution row for group {tuple(orphan[keys].iloc[0])} matches no results")
        merged = merged.drop(columns="_merge").sort_values(keys, kind="mergesort").reset_index(drop=True)
        merged[N_IMAGES] = merged[N_IMAGES].astype(np.int64)
        return merged

    def _codes(self, parts: Mapping[PartKey, str]) -> dict[str, np.ndarray]:
        records: list[tuple[str, str, str, dict[str, np.ndarray]]] = []  # (checkpoint, severity, id, set -> row)
        for key, stem in sorted(parts.items()):
            arrays = self._load_marker(stem)
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
            "checkpoint": np.array([r[0] for r in records], dtype=str),
            "severity": np.array([r[1] for r in records], dtype=str),
            "image_id": np.array([r[2] for r in records], dtype=str),
            **mats,
            "n_tokens": np.array([r[3]["codes"].shape[0] for r in records], np.int32),
        }

    def _remove_stale_temps(self) -> None:
        for folder in (self.run_dir, self.parts_dir):
            if folder.is_dir():
                for path in folder.iterdir():
                    if _TMP.match(path.name) and path.is_file():
                        path.unlink(missing_ok=True)

    def finalize(
        self,
        distribution_rows: Sequence[Mapping[str, Any]] | None = None,
        metric_columns: Sequence[str] | None = None,
        manifest_extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Path]:
        """Merge the done parts into results.parquet, groups.parquet and codes.npz and mark the run complete.

        `distribution_rows`: dicts with checkpoint, severity, w and the distribution metric values of that group
        (e.g. ``{"checkpoint": "official", "severity": "2", "w": 0.5, "fid[inception]": 41.2}``), added as columns
        of groups.parquet. `metric_columns`: the columns averaged per group (default: every numeric column but the
        ids, see `metric_columns`). `manifest_extra`: top-level manifest entries to record (e.g. the metric
        directions, the skipped metrics). Idempotent: the same parts and arguments give byte-identical files, and
        the manifest is left as is when it already records the same outputs. Run it after every writer finished.
        """
        self._require_open("finalize")
        parts = self._scan()
        if not parts:
            raise StoreError(f"{self.run_dir} has no finished parts: nothing to finalize")
        results = self._load_rows(parts)
        columns = list(metric_columns) if metric_columns is not None else self.metric_columns(results)
        absent = [c for c in columns if c not in results.columns]
        if absent:
            raise ValueError(f"metric columns {absent} are not in the results")
        groups = self._groups(results, columns, distribution_rows)
        codes = self._codes(parts)

        paths = {"results": self.run_dir / RESULTS, "groups": self.run_dir / GROUPS, "codes": self.run_dir / CODES}
        with atomic_path(paths["results"]) as tmp:
            results.to_parquet(tmp, index=False)
        with atomic_path(paths["groups"]) as tmp:
            groups.to_parquet(tmp, index=False)
        atomic_write_bytes(paths["codes"], npz_bytes(codes, compress=True))
        self._remove_stale_temps()

        outputs = {
            "results": {"file": RESULTS, "rows": int(len(results))},
            "groups": {"file": GROUPS, "rows": int(len(groups))},
            "codes": {
                "file": CODES,
                "images": int(len(codes["image_id"])),
                "code_sets": sorted(k for k in codes if k not in CODES_ARRAYS),
            },
            "parts": len(parts),
            "metric_columns": columns,
            "distribution_columns": [
                c for c in groups.columns if c not in GROUP_COLUMNS and c != N_IMAGES and c not in columns
            ],
        }
        manifest = self.read_manifest()
        extra = to_jsonable(dict(manifest_extra or {}))
        reserved = {"kind", "schema_version", "status", "started", "finished", "config", "provenance", "resumed"}
        if reserved & set(extra):
            raise ValueError(f"manifest_extra may not set {sorted(reserved & set(extra))}")
        already = manifest.get("status") == "complete" and manifest.get("outputs") == outputs
        if not (already and all(manifest.get(k) == v for k, v in extra.items())):
            manifest.update(extra)
            manifest.update({"status": "complete", "finished": _now(), "outputs": outputs})
            self._write_manifest(manifest)
        self.manifest = manifest
        return paths
