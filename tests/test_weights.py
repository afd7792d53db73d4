"""The weights registry: cache paths, import with hash checks, offline fetch errors, verify."""

import hashlib
import urllib.error

import pytest

from cfbench import weights
from cfbench.errors import HashMismatchError, MissingWeightsError
from cfbench.registry import Registry


@pytest.fixture
def registry(monkeypatch, tmp_path):
    """A registry with one pinned and one unpinned small file, served from file:// URLs."""
    payload = b"not really weights, but bytes with a known hash"
    src = tmp_path / "src" / "small.bin"
    src.parent.mkdir()
    src.write_bytes(payload)
    reg = Registry("weights file")
    reg.add(
        "pinned",
        weights.WeightsFile("pinned", "small.bin", (src.as_uri(),), "test", "t", hashlib.sha256(payload).hexdigest()),
    )
    reg.add(
        "unpinned",
        weights.WeightsFile("unpinned", "free.bin", ("https://example.invalid/free.bin",), "test", "t"),
    )
    monkeypatch.setattr(weights, "WEIGHTS", reg)
    return src, payload


def test_cache_lives_under_cfbench_home(monkeypatch, tmp_path):
    monkeypatch.setenv("CFBENCH_HOME", str(tmp_path / "home"))
    assert weights.weights_path("codeformer") == tmp_path / "home" / "weights" / "codeformer.pth"


def test_missing_file_error_names_file_url_and_destination():
    with pytest.raises(MissingWeightsError) as err:
        weights.require("codeformer")
    msg = str(err.value)
    assert "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth" in msg
    assert str(weights.weights_path("codeformer")) in msg
    assert "cfbench weights import codeformer FILE" in msg


def test_fetch_downloads_and_checks_the_hash(registry):
    path = weights.fetch("pinned")
    assert path.read_bytes() == registry[1]
    assert weights.verify("pinned") == (True, hashlib.sha256(registry[1]).hexdigest())


def test_fetch_offline_raises_the_placement_message(registry, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(weights.urllib.request, "urlopen", offline)
    with pytest.raises(MissingWeightsError, match="Temporary failure in name resolution.*put it at"):
        weights.fetch("unpinned")
    assert not list(weights.weights_dir().glob("*.part"))


def test_import_verifies_pinned_hash(registry, tmp_path):
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"something else")
    with pytest.raises(HashMismatchError, match="must have"):
        weights.import_file("pinned", wrong)
    assert not weights.weights_path("pinned").exists()
    assert weights.import_file("pinned", registry[0]).read_bytes() == registry[1]


def test_unpinned_import_records_the_first_hash_and_detects_changes(registry, tmp_path):
    first = tmp_path / "a.bin"
    first.write_bytes(b"version one")
    weights.import_file("unpinned", first)
    assert weights.expected_hash("unpinned") == hashlib.sha256(b"version one").hexdigest()
    assert weights.verify("unpinned")[0] is True
    weights.weights_path("unpinned").write_bytes(b"tampered")
    assert weights.verify("unpinned")[0] is False
    other = tmp_path / "b.bin"
    other.write_bytes(b"version two")
    with pytest.raises(HashMismatchError):
        weights.import_file("unpinned", other)


def test_import_of_a_missing_file(registry):
    with pytest.raises(MissingWeightsError, match="file to import not found"):
        weights.import_file("pinned", "/nonexistent/file.pth")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="did you mean 'codeformer'"):
        weights.weights_path("codeformr")
