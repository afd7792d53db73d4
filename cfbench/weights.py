"""The weights registry: every downloadable file with its URLs, sha256, size and licence, and its cache path.

Files live in `$CFBENCH_HOME/weights/` (default `~/.cache/cfbench/weights/`). Nothing is downloaded implicitly:
`fetch` is called by `cfbench weights fetch`; everything else uses `require`, which raises MissingWeightsError naming
the file, its URL and the exact path to put it. Where a sha256 could not be pinned (the official CodeFormer release
publishes none), the first hash seen is recorded beside the file (`<file>.sha256`) and checked from then on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cfbench.errors import HashMismatchError, MissingWeightsError
from cfbench.registry import Registry

CODEFORMER_RELEASE = "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/"
S_LAB = "S-Lab License 1.0 (non-commercial use only)"


@dataclass(frozen=True)
class WeightsFile:
    """A registered weights file. `sha256=None` means no hash could be pinned from a trustworthy source."""

    name: str
    filename: str
    urls: tuple[str, ...]
    licence: str
    description: str
    sha256: str | None = None
    size: int | None = None
    model: str | None = None  # the model variant these weights load into, for checkpoints
    bundled: bool = False  # shipped inside the package (cfbench/weights_bundled/), never downloaded


WEIGHTS: Registry[WeightsFile] = Registry("weights file")

for _entry in (
    WeightsFile(
        "codeformer",
        "codeformer.pth",
        (CODEFORMER_RELEASE + "codeformer.pth",),
        S_LAB,
        "official CodeFormer (stage III), key params_ema; about 376 MB",
        model="codeformer",
    ),
    WeightsFile(
        "vqgan_code1024",
        "vqgan_code1024.pth",
        (CODEFORMER_RELEASE + "vqgan_code1024.pth",),
        S_LAB,
        "official stage-I VQGAN, codebook 1024 x 256, key params_ema",
        model="vqgan",
    ),
    WeightsFile(
        "codeformer_stage2",
        "codeformer_stage2.pth",
        (CODEFORMER_RELEASE + "codeformer_stage2.pth",),
        S_LAB,
        "official CodeFormer after stage II (w = 0 only is meaningful), key params_ema",
        model="codeformer",
    ),
    WeightsFile(
        "codeformer_tiny",
        "codeformer_tiny.safetensors",
        (),
        "MIT (trained by cfbench on the faces listed in its model card)",
        "small demo CodeFormer trained on CPU by cfbench; see cfbench/weights_bundled/MODEL_CARD.md",
        bundled=True,
    ),
):
    WEIGHTS.add(_entry.name, _entry)

BUNDLED_DIR = Path(__file__).resolve().parent / "weights_bundled"


def cfbench_home() -> Path:
    """`$CFBENCH_HOME`, default `~/.cache/cfbench`."""
    return Path(os.environ.get("CFBENCH_HOME") or Path.home() / ".cache" / "cfbench")


def weights_dir() -> Path:
    return cfbench_home() / "weights"


def weights_path(name: str) -> Path:
    """Where the registered file `name` lives: the cache, or the package for bundled files (present or not)."""
    entry = WEIGHTS.get(name)
    return (BUNDLED_DIR if entry.bundled else weights_dir()) / entry.filename


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _recorded_hash(path: Path) -> str | None:
    side = path.with_name(path.name + ".sha256")
    return side.read_text().split()[0] if side.is_file() else None


def expected_hash(name: str) -> str | None:
    """The pinned sha256, else the one recorded when the file was first imported or fetched."""
    entry = WEIGHTS.get(name)
    return entry.sha256 or _recorded_hash(weights_path(name))


def _missing_message(entry: WeightsFile, path: Path) -> str:
    if entry.bundled:
        return f"bundled weights '{entry.name}' are missing from the installation ({path}); reinstall cfbench"
    return (
        f"weights '{entry.name}' are missing: download {entry.urls[0]} and put it at {path} "
        f"(or run `cfbench weights import {entry.name} FILE`; online, `cfbench weights fetch {entry.name}`)"
    )


def require(name: str) -> Path:
    """The cached path of `name`; raise MissingWeightsError (file, URL, destination) if it is absent."""
    entry = WEIGHTS.get(name)
    path = weights_path(name)
    if not path.is_file():
        raise MissingWeightsError(_missing_message(entry, path))
    return path


def verify(name: str) -> tuple[bool | None, str]:
    """Hash the cached file: (True/False against the expected hash, or None when none is known; the sha256)."""
    digest = sha256_file(require(name))
    want = expected_hash(name)
    return (None if want is None else digest == want), digest


def _install(name: str, source: Path, digest: str) -> Path:
    entry = WEIGHTS.get(name)
    if entry.bundled:
        raise MissingWeightsError(
            f"'{name}' ships inside the package and cannot be replaced; import other weights by path"
        )
    want = expected_hash(name)
    if want is not None and digest != want:
        raise HashMismatchError(
            f"{source} has sha256 {digest}, but '{name}' must have {want}; the file is not {entry.filename}"
        )
    dest = weights_path(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if entry.sha256 is None:
        dest.with_name(dest.name + ".sha256").write_text(f"{digest}  {entry.filename}\n")
    return dest


def import_file(name: str, source: str | os.PathLike) -> Path:
    """Copy a file the user downloaded elsewhere into the cache after checking its hash; returns the cached path."""
    source = Path(source)
    if not source.is_file():
        raise MissingWeightsError(f"file to import not found: {source}")
    return _install(name, source, sha256_file(source))


def fetch(name: str, progress: Callable[[int, int | None], None] | None = None, timeout: float = 60.0) -> Path:
    """Download `name` (trying each URL), check its hash and move it into the cache; no-op if already cached."""
    entry = WEIGHTS.get(name)
    dest = weights_path(name)
    if dest.is_file() or entry.bundled:
        return require(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in entry.urls:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            h = hashlib.sha256()
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                done = 0
                while block := resp.read(1 << 20):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
            return _install(name, Path(tmp), h.hexdigest())
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise MissingWeightsError(f"could not download '{name}' ({'; '.join(errors)}); " + _missing_message(entry, dest))
