"""Per-image seeds that do not depend on batch size, order, worker count or device."""

from __future__ import annotations

import hashlib
import json

from degradations.errors import DegradationsError
from degradations.severity import Severity, severity_label

SEED_BITS = 63  # seeds fit a signed 64-bit column (parquet, pandas)


def derive_seed(base_seed: int, dataset: str, image_id: str, severity: Severity | None = None) -> int:
    """The seed of one image: blake2b-64 of ``[base_seed, dataset, image_id, severity label]`` (JSON-encoded,
    UTF-8, personalisation ``cfbench-deg-v1``), keeping the high 63 bits. Returns an int in [0, 2**63).

    ``severity`` is a level (2), a fraction (0.5), ``"none"`` or None (the preset's own ranges); see
    `severity_label`. Python's ``hash()`` is not used: it is salted per process.
    """
    if isinstance(base_seed, bool) or not isinstance(base_seed, int):
        raise DegradationsError(f"base_seed must be an int, got {base_seed!r}")
    key = json.dumps([base_seed, str(dataset), str(image_id), severity_label(severity)], ensure_ascii=False)
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"cfbench-deg-v1").digest()
    return int.from_bytes(digest, "big") >> (64 - SEED_BITS)


def stable_hash32(text: str) -> int:
    """A process-independent 32-bit hash of a string (used to key each op's random stream by its id)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big")
