"""The stages around the model in a sweep: faces loaded ahead in worker threads, host work (CPU-only metrics,
writing) behind the device, a batch size that halves on CUDA out-of-memory, and `--batch-size auto`.

Threads, not processes: PNG decoding, resizing (OpenCV), the degradations and torch release the GIL for their heavy
parts, and threads need no pickling or start-up. `Ahead` and `Behind` keep order, so results never depend on the
worker count (each face's degradation is seeded by its id, see `cfbench.data.synth`). With 0 workers everything
runs in the calling thread, one stage after the other.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from cfbench.data import DegradedDataset, FaceSample
from cfbench.eval.config import AUTO
from cfbench.eval.timing import DEGRADE, LOAD, StageTimes

T = TypeVar("T")
R = TypeVar("R")

# --batch-size auto on the CPU: batching does not make CPU kernels faster, and larger decode batches fall out of
# cache (the bundled model on 2 cores: 0.68 s per face at batch 1, 0.83 s at batch 4; `cfbench bench eval` 22 s
# at batch 4, 17 s at batch 1)
CPU_BATCH = 1
MAX_AUTO_BATCH = 256  # the probe of --batch-size auto stops here
AUTO_MEMORY_SHARE = 0.6  # the model may take this share of the GPU memory; the rest is for metrics and prefetch
GT_BATCH = 32  # the GT side's most faces per call: its networks run once per face, with no out-of-memory retry
AUTO_WORKERS = 8  # --workers auto on a GPU: loader threads (fewer on a machine with fewer cores)
CPU_BACKENDS = ("dlib",)  # metric backends that run on the CPU only: on a GPU run they are scored behind the device


class Ahead:
    """Calls `fn` on items in `workers` threads, up to `ahead` items (at least 2 per worker) before the consumer,
    yielding results in item order (0 workers: in the consumer's thread, when asked for)."""

    def __init__(self, workers: int, ahead: int = 0) -> None:
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="cfbench-load") if workers else None
        self.ahead = max(2 * workers, ahead)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        if self.pool is None:
            yield from map(fn, items)
            return
        pending: deque[Future[R]] = deque()
        it = iter(items)
        for item in it:
            pending.append(self.pool.submit(fn, item))
            if len(pending) >= self.ahead:
                break
        while pending:
            result = pending.popleft().result()
            for item in it:  # refill one
                pending.append(self.pool.submit(fn, item))
                break
            yield result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class Behind:
    """Runs host work in one background thread, in submission order, with at most `limit` jobs pending (the
    submitter waits beyond that); errors surface at the next `submit` or at `drain`. `enabled` False: inline."""

    def __init__(self, enabled: bool, limit: int = 2) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="cfbench-host") if enabled else None
        self.limit = limit
        self.pending: deque[Future[None]] = deque()

    def submit(self, job: Callable[[], None]) -> None:
        if self.pool is None:
            job()
            return
        while len(self.pending) >= self.limit:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(job))

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def load_sample(data: DegradedDataset, index: int, times: StageTimes) -> FaceSample:
    """Face `index` of `data`, its reading and its degradation timed as separate stages."""
    with times(LOAD):
        sample = data.base.load(index)
    with times(DEGRADE):
        return data.degrade(sample)


def halve_on_oom(step: Callable[[int], R], batch_size: int, log: Callable[[str], None]) -> tuple[R, int]:
    """`step(batch_size)`, retried with half the batch size after a CUDA out-of-memory error until it fits (an
    error at batch size 1 is raised); returns the result and the batch size that worked. `step` must not keep
    anything from a failed try, so no row is lost or written twice."""
    while True:
        try:
            return step(batch_size), batch_size
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log(f"CUDA out of memory at batch size {batch_size}: retrying with {batch_size // 2}")
            batch_size //= 2


def largest_fitting(fits: Callable[[int], None], limit: int = MAX_AUTO_BATCH) -> int:
    """The largest power of two up to `limit` for which `fits(batch)` returns without a CUDA out-of-memory error
    (1 if none does: the run itself then reports the error)."""
    best, batch = 1, 1
    while batch <= limit:
        try:
            fits(batch)
        except torch.cuda.OutOfMemoryError:
            break
        best, batch = batch, batch * 2
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return best


def probe_batch_size(
    encode: Callable[[torch.Tensor], Any],
    decode: Callable[[Any, int], torch.Tensor],
    device: str,
    size: int = 512,
) -> int:
    """--batch-size auto: on CUDA the largest batch whose encode and decode of random faces keeps peak memory under
    AUTO_MEMORY_SHARE of the device (measured once per run); on the CPU the fixed CPU_BATCH."""
    if torch.device(device).type != "cuda":
        return CPU_BATCH
    total = torch.cuda.get_device_properties(torch.device(device)).total_memory

    def fits(batch: int) -> None:
        torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            x = torch.rand(batch, 3, size, size, device=device)
            decode(encode(x), batch)
        torch.cuda.synchronize(device)
        if torch.cuda.max_memory_allocated(device) > AUTO_MEMORY_SHARE * total:
            raise torch.cuda.OutOfMemoryError(f"batch {batch} takes more than {AUTO_MEMORY_SHARE:.0%} of the GPU")

    return largest_fitting(fits)


def loader_threads(workers: int | str, device: str) -> int:
    """The loader threads of `--workers` (a count, or "auto": AUTO_WORKERS, at most the machine's cores, on a GPU;
    0 on the CPU, whose cores the model already uses)."""
    if workers != AUTO:
        return int(workers)
    return min(AUTO_WORKERS, os.cpu_count() or 1) if torch.device(device).type != "cpu" else 0


def cpu_bound(backend: str, device: str) -> bool:
    """Whether a metric of `backend` runs behind the device (a CPU-only backend on a GPU run)."""
    return backend in CPU_BACKENDS and torch.device(device).type != "cpu"


def bottleneck_note(columns: list[str], device: str) -> str | None:
    """The log line of a GPU run whose CPU-only metrics will bound its speed, or None."""
    if not columns or torch.device(device).type == "cpu":
        return None
    return (
        f"note: {', '.join(columns)} run on the CPU behind the GPU and bound this run's speed; the torch backends "
        "(identity_cos[arcface], lmd[fan]) run on the GPU when their weights are installed"
    )
