"""On-disk cache of values that depend only on ground truth (FID statistics of a GT set, GT landmarks, GT pose).

Entries live in `$CFBENCH_HOME/cache/<kind>/<key>.npz` with a `<key>.json` beside them that records what the key was
made of. The key is the sha256 of everything that changes the value: a hash of the image contents, the extractor,
its weights sha256, the resize mode, the resolution, and the version of the code that made it (the cfbench version
and the entry's own `GtSideEntry.version`). Writes are atomic (temp file + rename), so an interrupted run never
leaves a half-written entry that a later run would trust.

Entries are verified, not trusted: each holds a checksum of its arrays (`cfbench.hashing.arrays_digest`). An entry
that cannot be read, lacks the checksum or does not match it is a miss: it is recomputed and written again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cfbench import __version__
from cfbench.atomic import atomic_write_bytes
from cfbench.hashing import arrays_digest
from cfbench.weights import cfbench_home

CHECKSUM = "__sha256__"  # the array of an entry that holds the checksum of the others


def cache_key(parts: dict[str, Any]) -> str:
    """The sha256 of `parts` as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class FeatureCache:
    """npz entries keyed by `cache_key(parts)` (plus the cfbench version), grouped by `kind` (e.g. 'fid_stats')."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cfbench_home() / "cache"

    def path(self, kind: str, parts: dict[str, Any]) -> Path:
        return self.root / kind / f"{cache_key(_versioned(parts))}.npz"

    def load(self, kind: str, parts: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """The cached arrays, or None on a miss: absent, unreadable, or failing its checksum (see the module
        docstring)."""
        path = self.path(kind, parts)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception:  # noqa: BLE001 - whatever a damaged file raises (zip, npy header, EOF), it is a miss
            return None
        want = arrays.pop(CHECKSUM, None)
        if want is None or str(want) != arrays_digest(arrays):
            return None
        return arrays

    def save(self, kind: str, parts: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
        path = self.path(kind, parts)
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(_versioned(parts), indent=2, default=str).encode())
        buf = io.BytesIO()
        np.savez(buf, **arrays, **{CHECKSUM: np.array(arrays_digest(arrays))})
        return atomic_write_bytes(path, buf.getvalue())


def _versioned(parts: dict[str, Any]) -> dict[str, Any]:
    return {**parts, "cfbench": __version__}


@dataclass
class GtSideEntry:
    """One GT-side value of a run or a folder scoring, cached in `FeatureCache` (the one API for FID statistics, GT
    landmarks and GT pose): `kind` is its cache folder, `key` everything that changes it, `version` the version of
    its stored layout (part of the key, so a changed layout never reads an old entry); `restore(arrays)` puts a
    cached value in place and `arrays()` gives the computed one to store. `name` is for logs."""

    name: str
    kind: str
    key: dict[str, Any]
    version: int
    restore: Callable[[dict[str, np.ndarray]], None]
    arrays: Callable[[], dict[str, np.ndarray]]

    @property
    def parts(self) -> dict[str, Any]:
        return {**self.key, "version": self.version}


def restore_entries(entries: Sequence[GtSideEntry], cache: FeatureCache | None) -> list[GtSideEntry]:
    """Put every cached entry in place; returns the entries still to compute (all of them without a cache)."""
    todo = []
    for entry in entries:
        arrays = cache.load(entry.kind, entry.parts) if cache is not None else None
        if arrays is None:
            todo.append(entry)
        else:
            entry.restore(arrays)
    return todo


def store_entries(entries: Sequence[GtSideEntry], cache: FeatureCache | None) -> None:
    """Save the computed value of every entry (nothing without a cache)."""
    for entry in entries:
        if cache is not None:
            cache.save(entry.kind, entry.parts, entry.arrays())
