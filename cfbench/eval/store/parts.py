"""The parts of a run dir: the unit of work, `PartKey(checkpoint, severity, batch)`, written atomically.

A part is ``parts/<stem>.parquet`` (its rows, one per image x w) and ``parts/<stem>.npz`` (its key, code indices
and FID accumulators), the marker, written last: a part is done exactly when both exist. Every file is written
through `cfbench.atomic` (temp file + rename), so a killed run leaves each part complete or absent.

Parts are verified, not trusted: the marker holds the sha256 of the rows file (``rows_sha256``) and a checksum of
its own arrays (``sha256``, `cfbench.hashing.arrays_digest`). `Parts.scan` checks both (once per process while the
files' size and mtime stay); a part whose marker is unreadable or wrong, or whose rows file is missing or differs,
is removed with a notice (`log`) and so counts as not done: the run recomputes it.

The batch index is part of a part's identity: if ``batch_size`` is ignored on resume, the runner must cut parts
independently of it (or skip by `done_image_ids`), otherwise a resumed run with another batch size would overlap
earlier parts (finalize then refuses the duplicated rows).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from cfbench.atomic import atomic_write_bytes
from cfbench.eval.store.schema import CODE_SET_PREFIX, CODES_ARRAYS, ID_COLUMNS, PART_MARKER_SUFFIX, PART_ROWS_SUFFIX
from cfbench.hashing import arrays_digest, sha256_bytes
from cfbench.metrics.base import FeatureStatistics

FeatureInput = FeatureStatistics | np.ndarray  # accumulated statistics, or raw features of shape (N, dim)

_CODE_SET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PART_STEM = re.compile(r"__b\d{6}__[0-9a-f]{16}$")  # what `_part_stem` names end with
CHECKSUM, ROWS_CHECKSUM = "sha256", "rows_sha256"  # marker arrays: its own checksum, the rows file's sha256


class PartKey(NamedTuple):
    checkpoint: str
    severity: str
    batch: int


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


def w_key(w: float) -> float:
    """`w` as stored: a float, with -0.0 folded into 0.0."""
    return float(w) + 0.0


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
    front = list(ID_COLUMNS)
    return rows[front + [c for c in rows.columns if c not in front]]


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
        w = w_key(w)
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


class Parts:
    """The parts folder of one run dir: which parts are done (verified), writing one, reading one back.
    `log` gets a notice for each damaged part that `scan` removes."""

    def __init__(self, parts_dir: Path, log: Callable[[str], None] = print) -> None:
        self.parts_dir = parts_dir
        self.log = log
        self.removed: list[str] = []  # what was wrong with each damaged part removed so far
        self._verified: dict[str, tuple[PartKey, tuple]] = {}  # marker name -> (key, stat of marker and rows)

    def _paths(self, key: PartKey) -> tuple[Path, Path]:
        stem = _part_stem(key)
        return self.parts_dir / f"{stem}{PART_ROWS_SUFFIX}", self.parts_dir / f"{stem}{PART_MARKER_SUFFIX}"

    def scan(self) -> dict[PartKey, str]:
        """Done parts (marker and rows both exist and pass their checksums) -> file stem, read from disk now (so
        parts of other ranks count too). Damaged parts are removed with a notice (see the module docstring)."""
        out: dict[PartKey, str] = {}
        if not self.parts_dir.is_dir():
            return out
        for marker in sorted(self.parts_dir.glob(f"*{PART_MARKER_SUFFIX}")):
            if marker.name.startswith(".") or not _PART_STEM.search(marker.stem):
                continue  # not a part of ours
            rows = marker.with_suffix(PART_ROWS_SUFFIX)
            try:
                stat = _stat(marker) + _stat(rows)
            except FileNotFoundError:
                stat = None
            seen = self._verified.get(marker.name)
            if seen is not None and seen[1] == stat:
                out[seen[0]] = marker.stem
                continue
            key, problem = _verify(marker, rows)
            if problem is not None:
                self._remove(marker, rows, key, problem)
                continue
            assert key is not None and stat is not None
            self._verified[marker.name] = (key, stat)
            out[key] = marker.stem
        return out

    def _remove(self, marker: Path, rows: Path, key: PartKey | None, problem: str) -> None:
        what = f"part {tuple(key)}" if key is not None else f"part file {marker}"
        notice = f"{what} is damaged ({problem})"
        marker.unlink(missing_ok=True)  # the marker first: from here on the part is not done
        rows.unlink(missing_ok=True)
        self._verified.pop(marker.name, None)
        self.removed.append(notice)
        self.log(f"warning: {notice}: removed, it is recomputed")

    def remove(self, key: PartKey) -> None:
        """Drop a stored part (it counts as not done from here on)."""
        rows, marker = self._paths(key)
        marker.unlink(missing_ok=True)
        rows.unlink(missing_ok=True)
        self._verified.pop(marker.name, None)

    def read_rows(self, stem: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows of the done part `stem` (only `columns` if given)."""
        return pd.read_parquet(self.parts_dir / f"{stem}{PART_ROWS_SUFFIX}", columns=columns)

    def read_marker(self, stem: str) -> dict[str, np.ndarray]:
        """The arrays of the marker of the done part `stem`."""
        with np.load(self.parts_dir / f"{stem}{PART_MARKER_SUFFIX}", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def done_image_ids(self) -> dict[tuple[str, str], set[str]]:
        """Per (checkpoint, severity), the image ids whose rows are stored, for skipping by image."""
        out: dict[tuple[str, str], set[str]] = {}
        for key, stem in sorted(self.scan().items()):
            ids = self.read_rows(stem, columns=["image_id"])["image_id"]
            out.setdefault((key.checkpoint, key.severity), set()).update(ids.astype(str))
        return out

    def write(
        self,
        key: PartKey | tuple[str, str, int],
        rows: pd.DataFrame,
        codes: Mapping[str, np.ndarray] | None = None,
        features: Mapping[float, Mapping[str, FeatureInput]] | None = None,
        *,
        overwrite: bool = False,
        code_sets: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        """Store one part atomically (arguments: `cfbench.eval.store.RunStore.write_part`)."""
        key = _check_key(key)
        rows = _check_rows(key, rows)
        buf = io.BytesIO()
        rows.to_parquet(buf, index=False)
        rows_bytes = buf.getvalue()
        arrays: dict[str, np.ndarray] = {
            "key": np.array(json.dumps({"checkpoint": key.checkpoint, "severity": key.severity, "batch": key.batch})),
            "n_rows": np.array(len(rows)),
            ROWS_CHECKSUM: np.array(sha256_bytes(rows_bytes)),
        }
        arrays.update(_code_arrays(key, rows, codes, code_sets))
        arrays.update(_feature_arrays(key, rows, features))
        arrays[CHECKSUM] = np.array(arrays_digest(arrays))

        parquet, marker = self._paths(key)
        if marker.exists():
            if not overwrite:
                raise ValueError(f"part {tuple(key)} is already stored; skip it (done_parts) or pass overwrite=True")
            marker.unlink()  # not done from here on, until the new marker lands
        try:
            atomic_write_bytes(parquet, rows_bytes)
            atomic_write_bytes(marker, npz_bytes(arrays))
        except BaseException:
            if not marker.exists():
                parquet.unlink(missing_ok=True)
            raise
        self._verified[marker.name] = (key, _stat(marker) + _stat(parquet))


def _stat(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _verify(marker: Path, rows: Path) -> tuple[PartKey | None, str | None]:
    """(the part's key, None) when `marker` and `rows` pass their checksums, else (key if readable, the problem).
    Markers written before parts carried checksums are accepted when they read."""
    try:
        with np.load(marker, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        k = json.loads(str(arrays["key"]))
        key = PartKey(k["checkpoint"], k["severity"], int(k["batch"]))
    except Exception as err:  # noqa: BLE001 - any failure to read a damaged file (zip, npy, json) means damaged
        return None, f"its marker is unreadable: {type(err).__name__}"
    if CHECKSUM in arrays:
        want = str(arrays.pop(CHECKSUM))
        if arrays_digest(arrays) != want:
            return key, "its marker does not match its checksum"
    if _part_stem(key) != marker.stem:
        return key, "its marker names another part"
    try:
        data = rows.read_bytes()
    except FileNotFoundError:
        return key, f"its rows file {rows.name} is missing"
    if ROWS_CHECKSUM in arrays and sha256_bytes(data) != str(arrays[ROWS_CHECKSUM]):
        return key, f"its rows file {rows.name} does not match its checksum"
    return key, None
