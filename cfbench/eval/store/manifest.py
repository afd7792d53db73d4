"""The manifest of a run dir: read and check it, start or resume a run (comparing configs), write it atomically.

A run dir is resumed only when its stored config equals the new one on every key that changes results; the keys
that do not are `cfbench.eval.config.NON_RESULT_KEYS`, the default ``ignore_keys``. Only the primary process
(rank 0 under torchrun) writes the manifest; other ranks check it with ``primary=False``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cfbench.atomic import atomic_write_bytes
from cfbench.errors import BadInputError, CfbenchError
from cfbench.eval.config import NON_RESULT_KEYS
from cfbench.eval.store.schema import LOCK, MANIFEST, RUN_KIND, RUNNING, SCHEMA_VERSION

TMP_FILE = re.compile(r"^\..+\.tmp$")  # what cfbench.atomic leaves behind when a process is killed mid-write
_MISSING = object()


def now() -> str:
    """The current UTC time as stored in the manifest (ISO 8601, seconds)."""
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


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of `run_dir`; BadInputError when it is missing, unreadable, not a cfbench eval manifest, or of
    another schema version."""
    path = run_dir / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"{run_dir} has no {MANIFEST}: it is not a cfbench eval run directory") from None
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


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Write the manifest of `run_dir` atomically."""
    atomic_write_bytes(run_dir / MANIFEST, (json.dumps(manifest, indent=2, default=_json_default) + "\n").encode())


def require_folder(run_dir: Path) -> None:
    """BadInputError when `run_dir` exists and is not a folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise BadInputError(f"--run-dir {run_dir} is a file; give a folder (new or from an earlier run)")


def open_manifest(
    run_dir: Path,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    ignore_keys: Iterable[str] = NON_RESULT_KEYS,
    *,
    primary: bool = True,
) -> dict[str, Any]:
    """The manifest of a new run in `run_dir`, or of the run stored there if its config equals `config` on every
    key not in `ignore_keys` (recording the resume). BadInputError when the configs differ (naming the keys, old
    and new values), or when `run_dir` holds files but no manifest. `primary=False` checks without writing."""
    config, provenance = to_jsonable(dict(config)), to_jsonable(dict(provenance))
    require_folder(run_dir)
    if (run_dir / MANIFEST).exists():
        manifest = read_manifest(run_dir)
        diffs = config_differences(manifest.get("config", {}), config, ignore_keys)
        if diffs:
            shown = "; ".join(f"{k}: {_show(a)} -> {_show(b)}" for k, a, b in diffs[:3])
            more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
            raise BadInputError(
                f"--run-dir {run_dir} holds a run with another config ({shown}{more}); use another "
                "--run-dir, or the stored settings to resume it"
            )
        if primary:
            manifest["status"] = RUNNING
            manifest["finished"] = None
            resume: dict[str, Any] = {"at": now(), "provenance": provenance}
            if config != manifest.get("config"):
                resume["config"] = config  # differs only in ignored keys
            manifest.setdefault("resumed", []).append(resume)
            write_manifest(run_dir, manifest)
        return manifest
    if not primary:
        raise CfbenchError(f"{run_dir} has no {MANIFEST} yet: the primary process (rank 0) opens first")
    if run_dir.is_dir():
        stray = [p.name for p in run_dir.iterdir() if not TMP_FILE.match(p.name) and p.name != LOCK]
        if stray:
            raise BadInputError(
                f"--run-dir {run_dir} is not a cfbench run directory (it holds {stray[0]!r} but no "
                f"{MANIFEST}); give a new or empty folder"
            )
    manifest = {
        "kind": RUN_KIND,
        "schema_version": SCHEMA_VERSION,
        "status": RUNNING,
        "started": now(),
        "finished": None,
        "config": config,
        "provenance": provenance,
        "resumed": [],
    }
    write_manifest(run_dir, manifest)
    return manifest
