"""`cfbench.hashing.content_hash` is the one chunk hash of the dataset content hash and the feature caches; its
digests are stored in committed baselines and users' caches, so they must stay byte-identical."""

import json
from pathlib import Path

from cfbench.data.registry import get_dataset
from cfbench.hashing import content_hash

BASELINE = Path(__file__).resolve().parent / "data" / "regress" / "codeformer_tiny_demo.json"


def test_content_hash_gives_the_digest_of_the_two_former_implementations():
    # data.base._hash_chunks and metrics.cache.content_hash (before they were merged) both gave this digest
    assert content_hash([b"cfbench", b"", b"x" * 300]) == (
        "29246dbc9b49bc2ae441132db6caea3c8b29e2f1943bcd12e7be7df61d2cfb4a"
    )
    assert content_hash(iter([b"ab", b"c"])) != content_hash([b"a", b"bc"])  # the boundaries count


def test_demo_dataset_hash_equals_the_committed_baseline():
    want = json.loads(BASELINE.read_text(encoding="utf-8"))["dataset"]["content_hash"]
    assert get_dataset("demo").content_hash() == want
