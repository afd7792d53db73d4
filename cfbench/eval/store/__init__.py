"""The results store of one `cfbench eval` run: a run directory that is written atomically and can be resumed.

`RunStore` is the one entry point; its jobs live in modules of their own:

- `schema`: the run-directory layout, file names, columns and manifest keys (what tables, reports and regress read)
- `manifest`: start or resume a run (config comparison), atomic manifest writes
- `parts`: the unit of work, `PartKey(checkpoint, severity, batch)`; a re-run skips the parts in `done_parts()`
  (verified against their checksums; a damaged part is removed with a notice and recomputed)
- `lock`: one writer per run dir (`RunLock`)
- `finalize`: merge the parts into results.parquet, groups.parquet and codes.npz

Only one process opens a run dir as primary (rank 0 under torchrun); other ranks call ``open(..., primary=False)``,
which checks the manifest without writing it, and then write their own parts. `finalize` runs after every writer
has finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cfbench.eval.config import NON_RESULT_KEYS
from cfbench.eval.store import finalize as _finalize
from cfbench.eval.store.finalize import GroupKey, StoreError
from cfbench.eval.store.lock import RunDirLockedError, RunLock, check_unlocked
from cfbench.eval.store.manifest import config_differences, open_manifest, read_manifest, to_jsonable
from cfbench.eval.store.parts import FeatureInput, PartKey, Parts, npz_bytes
from cfbench.eval.store.schema import (
    CODE_SET_PREFIX,
    CODES,
    CODES_ARRAYS,
    GROUP_COLUMNS,
    GROUPS,
    ID_COLUMNS,
    MANIFEST,
    N_IMAGES,
    PARTS,
    RESULTS,
    RUN_KIND,
    SCHEMA_VERSION,
)
from cfbench.metrics.base import FeatureStatistics

__all__ = [
    "CODES",
    "CODES_ARRAYS",
    "CODE_SET_PREFIX",
    "GROUPS",
    "GROUP_COLUMNS",
    "ID_COLUMNS",
    "MANIFEST",
    "N_IMAGES",
    "PARTS",
    "RESULTS",
    "RUN_KIND",
    "SCHEMA_VERSION",
    "FeatureInput",
    "GroupKey",
    "PartKey",
    "RunDirLockedError",
    "RunLock",
    "RunStore",
    "StoreError",
    "check_unlocked",
    "config_differences",
    "npz_bytes",
    "to_jsonable",
]


class RunStore:
    """The results store of one eval run in `run_dir` (see the module docstring and `schema` for the layout);
    `log` gets the notices of damaged parts removed for recomputation."""

    def __init__(self, run_dir: str | os.PathLike, log: Callable[[str], None] = print) -> None:
        self.run_dir = Path(run_dir)
        self.parts_dir = self.run_dir / PARTS
        self.manifest: dict[str, Any] | None = None
        self._parts = Parts(self.parts_dir, log)

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    def read_manifest(self) -> dict[str, Any]:
        """The stored manifest; BadInputError when it is missing, unreadable, or not a cfbench eval manifest."""
        return read_manifest(self.run_dir)

    def open(
        self,
        config: Mapping[str, Any],
        provenance: Mapping[str, Any],
        ignore_keys: Iterable[str] = NON_RESULT_KEYS,
        *,
        primary: bool = True,
    ) -> None:
        """Start a new run in `run_dir`, or resume the run stored there if its config equals `config` on every key
        not in `ignore_keys` (by default the sweep's `NON_RESULT_KEYS`). BadInputError when the configs differ
        (naming the keys, old and new values), or when `run_dir` holds files but no manifest. `primary=False`
        (ranks other than 0) checks without writing."""
        self.manifest = open_manifest(self.run_dir, config, provenance, ignore_keys, primary=primary)

    def _require_open(self, what: str) -> None:
        if self.manifest is None:
            raise RuntimeError(f"RunStore.{what}: call open() first")

    def done_parts(self) -> set[PartKey]:
        """The parts that are completely written (read from disk, so parts of other ranks count too)."""
        return set(self._parts.scan())

    def drop_parts(self, keys: Iterable[PartKey]) -> None:
        """Remove stored parts (they are recomputed by the next run)."""
        for key in keys:
            self._parts.remove(key)

    def done_image_ids(self) -> dict[tuple[str, str], set[str]]:
        """Per (checkpoint, severity), the image ids whose rows are stored, for skipping by image."""
        return self._parts.done_image_ids()

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
        self._parts.write(key, rows, codes, features, overwrite=overwrite, code_sets=code_sets)

    def merged_features(
        self, kinds: Mapping[str, type[FeatureStatistics]] | None = None
    ) -> dict[GroupKey, dict[str, FeatureStatistics]]:
        """The feature accumulators of all done parts, merged per (checkpoint, severity, w) group and metric, in a
        fixed order (sorted part keys), so the result does not depend on which run wrote which part. `kinds`:
        metric name -> accumulator type (default `FeatureStatistics`; a `FeatureSet` keeps the features)."""
        return _finalize.merged_features(self._parts, kinds)

    metric_columns = staticmethod(_finalize.metric_columns)

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
        paths, self.manifest = _finalize.finalize(
            self.run_dir, self._parts, distribution_rows, metric_columns, manifest_extra
        )
        return paths
