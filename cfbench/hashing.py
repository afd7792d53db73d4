"""Content hashes: the sha256 of bytes, and of a sequence of byte strings with their boundaries.

`content_hash` keys the dataset content hash (`cfbench.data.base`) and the GT-side feature caches
(`cfbench.metrics.cache`); committed baselines and existing caches hold its digests, so its bytes must never change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def sha256_bytes(data: bytes) -> str:
    """The sha256 hex digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def content_hash(chunks: Iterable[bytes]) -> str:
    """sha256 over a sequence of byte strings (file contents, tensor bytes), each prefixed with its length (8 bytes,
    little-endian) so that the boundaries between them count."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "little"))
        h.update(chunk)
    return h.hexdigest()
