"""One writer per run dir: an advisory lock file, ``<run dir>/.lock``, held by the process that runs the sweep.

`RunLock` takes an exclusive ``fcntl.flock`` on the file and writes its PID into it. The kernel drops the lock when
its holder exits, however it exits, so a lock left by a killed process is stale by construction: the next process
gets it at once and says whose it was. A second live process is refused at once (exit 2) with the holder's PID.
The file is removed when the lock is released; under torchrun only rank 0 holds it, for the whole run.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from cfbench.errors import CfbenchError
from cfbench.eval.store.manifest import require_folder
from cfbench.eval.store.schema import LOCK


class RunDirLockedError(CfbenchError):
    """Another live process writes into the run dir (exit 2)."""


def _holder(fd: int) -> str:
    """The PID written in the lock file, or '?' when it holds none."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return text if text.isdigit() else "?"


def _locked(path: Path, pid: str) -> RunDirLockedError:
    return RunDirLockedError(
        f"--run-dir {path.parent} is in use by process {pid} (lock file {path}); wait for it to finish, or use "
        "another --run-dir"
    )


def check_unlocked(run_dir: str | os.PathLike) -> None:
    """Raise `RunDirLockedError` now if a live process holds the lock of `run_dir`, before any costly setup (the
    lock itself is taken by `RunLock`). Creates nothing."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return  # no lock file (or none we could lock): RunLock decides
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _locked(path, _holder(fd)) from None
    finally:
        os.close(fd)  # also drops the lock just taken


class RunLock:
    """Context manager: hold the lock of `run_dir` (created if needed) or raise `RunDirLockedError` naming the
    holder's PID. `log` gets a note when the lock of a process that died without releasing it is taken over."""

    def __init__(self, run_dir: str | os.PathLike, log: Callable[[str], None] = print) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self.log = log
        self._fd: int | None = None

    def acquire(self) -> None:
        require_folder(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _holder(fd)
                os.close(fd)
                raise _locked(self.path, pid) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
        stale = _holder(fd)
        if stale != "?" and int(stale) != os.getpid():
            self.log(f"note: took over the lock of {self.run_dir} from process {stale}, which is no longer running")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still held, so no other process locks a file about to vanish
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
