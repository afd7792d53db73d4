"""On-disk cache of features that depend only on ground truth (FID statistics of a GT set, ...).

Entries live in `$CFBENCH_HOME/cache/<kind>/<key>.npz` with a `<key>.json` beside them that records what the key was
made of. The key is the sha256 of everything that changes the value: a hash of the image contents, the extractor,
its weights sha256, the resize mode, the resolution. Writes are atomic (temp file + rename), so an interrupted run
never leaves a half-written entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cfbench.atomic import atomic_write_bytes
from cfbench.weights import cfbench_home


def cache_key(parts: dict[str, Any]) -> str:
    """The sha256 of `parts` as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class FeatureCache:
    """npz entries keyed by `cache_key(parts)`, grouped by `kind` (e.g. 'fid_stats')."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cfbench_home() / "cache"

    def path(self, kind: str, parts: dict[str, Any]) -> Path:
        return self.root / kind / f"{cache_key(parts)}.npz"

    def load(self, kind: str, parts: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """The cached arrays, or None on a miss (an unreadable entry counts as a miss)."""
        path = self.path(kind, parts)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            return None

    def save(self, kind: str, parts: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
        path = self.path(kind, parts)
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(parts, indent=2, default=str).encode())
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return atomic_write_bytes(path, buf.getvalue())
