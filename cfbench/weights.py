"""Where registered weights files live, and how they are found, checked, imported and fetched (the table of
entries is `cfbench.weights_table`, re-exported here).

Files live in `$CFBENCH_HOME/weights/` (default `~/.cache/cfbench/weights/`). Nothing is downloaded implicitly:
`fetch` is called by `cfbench weights fetch`; everything else uses `require`, which raises MissingWeightsError naming
the file, its URL and the exact path to put it. Where a sha256 could not be pinned (the official CodeFormer release
publishes none), the first hash seen is recorded beside the file (`<file>.sha256`) and checked from then on; files
published under the torch-hub / BasicSR naming convention (`name-<first 8 hex of sha256>.pth`) are checked against
that prefix.

Files that ship inside an installed package (the `lpips` linear heads) are found there, not copied; files that
torch hub already downloaded (`$TORCH_HOME/hub/checkpoints/`) are used where they are.
"""

from __future__ import annotations

import functools
import http.client
import importlib.util
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch

from cfbench.atomic import atomic_path
from cfbench.errors import CfbenchError, HashMismatchError, MissingWeightsError
from cfbench.hashing import sha256_path
from cfbench.weights_table import WEIGHTS, WeightsFile

BUNDLED_DIR = Path(__file__).resolve().parent / "weights_bundled"


def cfbench_home() -> Path:
    """`$CFBENCH_HOME`, default `~/.cache/cfbench`."""
    return Path(os.environ.get("CFBENCH_HOME") or Path.home() / ".cache" / "cfbench")


def weights_dir() -> Path:
    return cfbench_home() / "weights"


def weights_path(name: str) -> Path:
    """Where the registered file `name` lives: the cache, the package for bundled files, or the torch-hub folder
    of the library that loads it (`hub_dir`), present or not."""
    entry = WEIGHTS.get(name)
    if entry.hub_dir:
        return Path(torch.hub.get_dir()) / entry.hub_dir / entry.filename
    return (BUNDLED_DIR if entry.bundled else weights_dir()) / entry.filename


def _package_path(package: str, relative: str) -> Path | None:
    """The file inside an installed package, located without importing the package (its import may be heavy)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    roots = list(spec.submodule_search_locations or []) if spec else []
    return next((Path(r) / relative for r in roots if (Path(r) / relative).is_file()), None)


def candidate_paths(name: str) -> list[Path]:
    """Every place `name` is looked for, in order: our cache (or the package for bundled files), the installed
    package that ships it, torch hub's checkpoint folder."""
    entry = WEIGHTS.get(name)
    paths = [weights_path(name)]
    if entry.package_file and (found := _package_path(*entry.package_file)):
        paths.append(found)
    if entry.torch_hub:
        paths.append(Path(torch.hub.get_dir()) / "checkpoints" / entry.filename)
    return paths


def locate(name: str) -> Path | None:
    """The first existing file of `candidate_paths(name)`, or None."""
    return next((p for p in candidate_paths(name) if p.is_file()), None)


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file, hashed once per process while its size and modification time stay the same (eval
    provenance, the FID cache key and the regression gate all ask for the same large weights files)."""
    st = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_path(path)


def hash_matches(name: str, digest: str) -> bool | None:
    """Whether `digest` is the right sha256 for `name` (True/False), or None when nothing is known to compare."""
    entry = WEIGHTS.get(name)
    want = expected_hash(name)
    if want is not None:
        return digest == want
    return digest.startswith(entry.sha256_prefix) if entry.sha256_prefix else None


def _recorded_hash(path: Path) -> str | None:
    side = path.with_name(path.name + ".sha256")
    return side.read_text().split()[0] if side.is_file() else None


def expected_hash(name: str) -> str | None:
    """The pinned sha256, else the one recorded when the file was first imported or fetched."""
    entry = WEIGHTS.get(name)
    return entry.sha256 or _recorded_hash(weights_path(name))


def missing_message(name: str) -> str:
    """One line: the registered file `name` is missing, where it comes from, where it must go and the commands
    that put it there."""
    entry, path = WEIGHTS.get(name), weights_path(name)
    if entry.bundled:
        return f"bundled weights '{entry.name}' are missing from the installation ({path}); reinstall cfbench"
    source = entry.urls[0] if entry.urls else entry.page
    online = f"; online, `cfbench weights fetch {entry.name}`" if entry.urls else ""
    return (
        f"weights '{entry.name}' are missing: download {entry.filename} from {source} and put it at {path} "
        f"(or run `cfbench weights import {entry.name} FILE`{online})"
    )


def require(name: str) -> Path:
    """The path of `name` (see `candidate_paths`); raise MissingWeightsError (file, URL, destination) if absent."""
    path = locate(name)
    if path is None:
        raise MissingWeightsError(missing_message(name))
    return path


def verify(name: str) -> tuple[bool | None, str]:
    """Hash the file: (True/False against the expected hash or prefix, or None when none is known; the sha256)."""
    digest = sha256_file(require(name))
    return hash_matches(name, digest), digest


def _check_install(name: str, source: str | os.PathLike, digest: str) -> WeightsFile:
    """The entry of `name` if a file with sha256 `digest` (from `source`) may be installed as it, else raise."""
    entry = WEIGHTS.get(name)
    if entry.bundled:
        raise MissingWeightsError(
            f"'{name}' ships inside the package and cannot be replaced; import other weights by path"
        )
    if hash_matches(name, digest) is False:
        want = expected_hash(name) or f"{entry.sha256_prefix}..."
        raise HashMismatchError(
            f"{source} has sha256 {digest}, but '{name}' must have {want}; the file is not {entry.filename}"
        )
    return entry


def _record_hash(entry: WeightsFile, dest: Path, digest: str) -> None:
    """Files with no pinned hash or prefix: record the first hash seen, which `verify` checks from then on."""
    if entry.sha256 is None and entry.sha256_prefix is None:
        dest.with_name(dest.name + ".sha256").write_text(f"{digest}  {entry.filename}\n")


ContentCheck = Callable[[str, Path], None]  # (name, file) -> None, or raise: `cfbench.weights_check.check_content`


def import_file(name: str, source: str | os.PathLike, check: ContentCheck | None = None) -> Path:
    """Copy a file the user downloaded elsewhere into the cache after checking its hash and, with `check`, its
    content (what an unpinned name records is then known to be the right kind of file); returns the cached path."""
    source = Path(source)
    if not source.is_file():
        raise MissingWeightsError(f"file to import not found: {source}")
    digest = sha256_file(source)
    entry = _check_install(name, source, digest)
    if check is not None:
        check(name, source)
    dest = weights_path(name)
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
    _record_hash(entry, dest, digest)
    return dest


def partial_path(name: str) -> Path:
    """Where an interrupted download of `name` is kept until `fetch` resumes it."""
    dest = weights_path(name)
    return dest.with_name(dest.name + ".part")


def _download(url: str, part: Path, progress: Callable[[int, int | None], None] | None, timeout: float) -> None:
    """Stream `url` into `part`, continuing after the bytes already there when the server honours a Range request
    (HTTP 206); otherwise from the start."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        if getattr(resp, "status", None) != 206:
            have = 0
        length = int(resp.headers.get("Content-Length") or 0)
        total = have + length if length else None
        done = have
        with open(part, "ab" if have else "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise ConnectionError(f"the connection closed after {done} of {total} bytes; fetch again to resume")


def fetch(
    name: str,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
    check: ContentCheck | None = None,
) -> Path:
    """Download `name` (trying each URL), check its hash (and, with `check`, its content) and move it into the
    cache; no-op if already present. The download goes into `partial_path(name)`, which an interrupted fetch leaves
    for the next one to resume; it is renamed to the destination only once it passed the checks (a wrong file is
    deleted)."""
    entry = WEIGHTS.get(name)
    dest = weights_path(name)
    if entry.bundled or locate(name) is not None:
        return require(name)
    if not entry.urls:
        raise MissingWeightsError(missing_message(name) + "; it has no direct download URL")
    part = partial_path(name)
    errors = []
    for url in entry.urls:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            _download(url, part, progress, timeout)
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        digest = sha256_file(part)
        try:
            _check_install(name, url, digest)
            if check is not None:
                check(name, part)
        except CfbenchError:
            part.unlink()
            raise
        os.replace(part, dest)
        _record_hash(entry, dest, digest)
        return dest
    raise MissingWeightsError(f"could not download '{name}' ({'; '.join(errors)}); " + missing_message(name))
