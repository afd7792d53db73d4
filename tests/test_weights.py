"""The weights registry: cache paths, import with hash checks, offline fetch errors, verify."""

import hashlib
import http.server
import threading
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


def test_files_shipped_in_an_installed_package_are_found_there(monkeypatch, tmp_path):
    pkg = tmp_path / "site" / "fakepkg_cfbench"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('importing it is not needed to find its files')\n")
    (pkg / "weights" / "head.pth").write_bytes(b"head")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    reg = Registry("weights file")
    reg.add(
        "head",
        weights.WeightsFile(
            "head", "head.pth", ("https://x/head.pth",), "t", "t", package_file=("fakepkg_cfbench", "weights/head.pth")
        ),
    )
    monkeypatch.setattr(weights, "WEIGHTS", reg)
    assert weights.require("head") == pkg / "weights" / "head.pth"
    assert not weights.weights_path("head").exists()  # found, not copied


def test_torch_hub_files_are_used_and_checked_against_the_published_prefix(monkeypatch, tmp_path):
    payload = b"backbone"
    digest = hashlib.sha256(payload).hexdigest()
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / f"net-{digest[:8]}.pth").write_bytes(payload)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    reg = Registry("weights file")
    reg.add(
        "net",
        weights.WeightsFile(
            "net", f"net-{digest[:8]}.pth", ("https://x",), "t", "t", sha256_prefix=digest[:8], torch_hub=True
        ),
    )
    reg.add("bad", weights.WeightsFile("bad", "bad-00000000.pth", ("https://x",), "t", "t", sha256_prefix="00000000"))
    monkeypatch.setattr(weights, "WEIGHTS", reg)
    assert weights.require("net") == hub / f"net-{digest[:8]}.pth"
    assert weights.verify("net") == (True, digest)
    src = tmp_path / "download.pth"
    src.write_bytes(payload)
    with pytest.raises(HashMismatchError, match="00000000"):
        weights.import_file("bad", src)


def test_files_without_a_direct_url_name_the_page_to_download_from():
    with pytest.raises(MissingWeightsError) as err:
        weights.require("fid_stats_ffhq512")
    assert "inception_FFHQ_512-f7b384ab.pth" in str(err.value) and "BasicSR" in str(err.value)
    with pytest.raises(MissingWeightsError, match="no direct download URL"):
        weights.fetch("fid_stats_ffhq512")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `payload` at any path, honouring `Range: bytes=N-` with 206; `cut` bytes at most on the first GET."""

    payload = b""
    cut: int | None = None
    ranges: list[str | None] = []

    def do_GET(self):
        start = 0
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        if header:
            start = int(header.removeprefix("bytes=").removesuffix("-"))
        body = self.payload[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut is not None:
            body, type(self).cut = body[: type(self).cut], None  # a dropped connection
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_an_interrupted_fetch_resumes_where_it_stopped(monkeypatch, tmp_path):
    payload = bytes(range(256)) * 64
    _RangeHandler.payload, _RangeHandler.cut, _RangeHandler.ranges = payload, 5000, []
    server = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/w.bin"
        reg = Registry("weights file")
        reg.add("w", weights.WeightsFile("w", "w.bin", (url,), "test", "t", hashlib.sha256(payload).hexdigest()))
        monkeypatch.setattr(weights, "WEIGHTS", reg)
        with pytest.raises(MissingWeightsError, match="could not download 'w'"):
            weights.fetch("w", timeout=5)
        assert weights.partial_path("w").stat().st_size == 5000 and not weights.weights_path("w").exists()
        assert weights.fetch("w", timeout=5).read_bytes() == payload
        assert _RangeHandler.ranges == [None, "bytes=5000-"] and not weights.partial_path("w").exists()
    finally:
        server.shutdown()
