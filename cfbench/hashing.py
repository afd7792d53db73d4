"""Content hashes: the sha256 of bytes, of a sequence of byte strings with their boundaries, and of named arrays.

`content_hash` keys the dataset content hash (`cfbench.data.base`) and the GT-side feature caches
(`cfbench.metrics.cache`); committed baselines and existing caches hold its digests, so its bytes must never change.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping

import numpy as np


def sha256_bytes(data: bytes) -> str:
    """The sha256 hex digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes, read in 1 MiB blocks (weights files are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def content_hash(chunks: Iterable[bytes]) -> str:
    """sha256 over a sequence of byte strings (file contents, tensor bytes), each prefixed with its length (8 bytes,
    little-endian) so that the boundaries between them count."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "little"))
        h.update(chunk)
    return h.hexdigest()


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """`content_hash` over named arrays in name order: each name, dtype, shape and raw bytes. The checksum that
    run-dir part markers and cache entries carry, so that damaged or rewritten values are detected."""

    def chunks() -> Iterator[bytes]:
        for name in sorted(arrays):
            arr = np.ascontiguousarray(arrays[name])
            yield from (name.encode(), arr.dtype.str.encode(), json.dumps(arr.shape).encode(), arr.tobytes())

    return content_hash(chunks())
