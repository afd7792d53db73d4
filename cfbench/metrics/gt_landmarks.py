"""GT-side landmarks of the face metrics (`lmd[*]`, `identity_cos[dlib]`, `deg[dlib]`), remembered per GT image and
cached on disk once per dataset and backend.

A metric that caches its GT side (`CachedGtSide`) keeps a `GtMemo`: one float64 vector of fixed length per GT image
(the dlib face box and 68 landmarks, or the 98 FAN landmarks; all NaN when no face was found), keyed by the sha256 of
the image's uint8 pixels and shape, which is what the metrics analyse. Within a process the memo spares the k-fold
repeated GT of a sweep over k values of w; across runs, its `gt_landmark_entries` entry is
kept in `$CFBENCH_HOME/cache/gt_landmarks/` under a key made of the metric's `gt_cache_key()` (backend, library
version, weights sha256, detection protocol) and the dataset's content hash and size (`cfbench.metrics.cache`).
A changed GT file changes the dataset hash (a new entry) and its own pixel digest (never looked up from an old
entry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cfbench.metrics.cache import GtSideEntry

KIND = "gt_landmarks"
VERSION = 1  # of the stored memo layout (digest, values)


def image_digest(image_u8: np.ndarray) -> str:
    """sha256 of a uint8 image's shape and pixels: the memo key of a GT image."""
    h = hashlib.sha256(str(image_u8.shape).encode())
    h.update(np.ascontiguousarray(image_u8).tobytes())
    return h.hexdigest()


class GtMemo:
    """GT values per image digest: float64 vectors of length `width`. `computed` counts the values put in this
    process (not loaded), so tests and logs can tell a cache hit from a recomputation."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.values: dict[str, np.ndarray] = {}
        self.computed = 0

    def get(self, digest: str) -> np.ndarray | None:
        return self.values.get(digest)

    def put(self, digest: str, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, np.float64).reshape(self.width)
        self.values[digest] = value
        self.computed += 1
        return value

    def to_arrays(self) -> dict[str, np.ndarray]:
        keys = sorted(self.values)
        rows = np.stack([self.values[k] for k in keys]) if keys else np.empty((0, self.width))
        return {"digest": np.array(keys, dtype="U64"), "values": rows}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Add the entries of `to_arrays()` output (a wrong width is ignored: the entry is then a miss)."""
        values = arrays["values"]
        if values.ndim == 2 and values.shape[1] == self.width:
            self.values.update(zip(arrays["digest"].tolist(), values, strict=True))


class CachedGtSide:
    """Mixin of per-image metrics whose GT side is a `GtMemo`: `gt_cache_key()` names everything that changes the
    values; `fill_gt(gt)` computes and remembers the values of a batch of GT images (N, 3, H, W) in [0, 1]."""

    gt_memo: GtMemo

    def gt_cache_key(self) -> dict[str, Any]:
        raise NotImplementedError

    def fill_gt(self, gt: Any) -> None:
        raise NotImplementedError


def gt_landmark_entries(metrics: Sequence[Any], content: Callable[[], dict[str, Any]]) -> list[GtSideEntry]:
    """The cache entries of the GT memos of the `CachedGtSide` metrics among `metrics` (objects with `.metric` and
    `.column`). `content()` names the GT set; it is called only when some metric caches its GT side, since hashing
    a dataset reads it."""
    users = [m for m in metrics if isinstance(m.metric, CachedGtSide)]
    named = content() if users else {}
    return [
        GtSideEntry(
            m.column,
            KIND,
            {"kind": KIND, **m.metric.gt_cache_key(), **named},
            VERSION,
            m.metric.gt_memo.load,
            m.metric.gt_memo.to_arrays,
        )
        for m in users
    ]
