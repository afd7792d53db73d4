"""Wall-clock seconds per stage of a run, recorded in its manifest as `timings` and summed up in one line.

Stages: `load` (read and resize faces), `degrade` (synthesize LQ), `encode`, `decode`, one entry per metric column,
`write` (parts and images), the one-off `checkpoint`, `gt_side` and `finalize`, and `total` (the run's wall time).
Stages are summed over calls and threads: with `--workers` the loading overlaps the model, so the stages may add up
to more than `total`. On CUDA the device stages (model, torch metrics) are timed with CUDA events: GPU time, and
no host synchronization added.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

LOAD, DEGRADE, ENCODE, DECODE, WRITE = "load", "degrade", "encode", "decode", "write"
CHECKPOINT, GT_SIDE, FINALIZE, TOTAL = "checkpoint", "gt_side", "finalize", "total"
ONE_OFF = (CHECKPOINT, GT_SIDE, FINALIZE, TOTAL)  # stages that do not scale with the faces x w work


class Interval:
    """Time from construction to `stop()`: by CUDA events on the current stream when `cuda` (GPU time; reading
    it waits for the device to reach `stop`, nothing else synchronizes), else by the host clock."""

    def __init__(self, cuda: bool = False) -> None:
        self._events: tuple[Any, Any] | None = None
        if cuda:
            import torch

            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self._events[0].record()
        self._start, self._end = time.perf_counter(), 0.0

    def stop(self) -> Interval:
        if self._events:
            self._events[1].record()
        self._end = time.perf_counter()
        return self

    def seconds(self) -> float:
        if self._events:
            self._events[1].synchronize()
            return self._events[0].elapsed_time(self._events[1]) / 1000
        return self._end - self._start


class StageTimes:
    """Seconds per stage (`with times("load"): ...`), in first-use order, safe to use from worker threads. With
    `cuda`, stages entered with `device=True` are timed by CUDA events (`Interval`), read when `seconds` is asked
    for, so timing adds no host synchronization."""

    def __init__(self, cuda: bool = False) -> None:
        self._seconds: dict[str, float] = {}
        self._pending: list[tuple[str, Interval]] = []  # device intervals not read yet
        self._cuda = cuda
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, stage: str, device: bool = False) -> Iterator[None]:
        interval = Interval(self._cuda and device)
        try:
            yield
        finally:
            interval.stop()
            with self._lock:
                self._seconds.setdefault(stage, 0.0)  # first-use order
                self._pending.append((stage, interval))

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds per stage so far (waits for the device to finish the device stages)."""
        with self._lock:
            pending, self._pending = self._pending, []
            for stage, interval in pending:
                self._seconds[stage] += interval.seconds()
            return dict(self._seconds)


def timings_record(
    seconds: dict[str, float], work: int, peak_memory_mib: float | None, batch_size: int = 1, workers: int = 0
) -> dict[str, Any]:
    """The manifest's `timings`: `seconds` per stage (with `total`), `faces_x_w_per_second` (`work` restorations
    over the total), `slowest_stage` (of the per-face stages), `peak_memory_mib` (CUDA; None elsewhere), and the
    batch size and loader threads the run used (what `auto` resolved to)."""
    total = seconds.get(TOTAL, 0.0)
    per_face = {k: v for k, v in seconds.items() if k not in ONE_OFF}
    return {
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "faces_x_w_per_second": work / total if total else 0.0,
        "slowest_stage": max(per_face, key=per_face.__getitem__) if per_face else None,
        "peak_memory_mib": peak_memory_mib,
        "batch_size": batch_size,
        "workers": workers,
    }


def summary_line(timings: dict[str, Any]) -> str:
    """One line for the terminal: the rate and the slowest stage with its share of the total."""
    seconds = timings["seconds"]
    total = seconds.get(TOTAL, 0.0)
    line = f"{timings['faces_x_w_per_second']:.2f} faces x w/s in {total:.1f} s"
    slowest = timings["slowest_stage"]
    if slowest:
        share = seconds[slowest] / total if total else 0.0
        line += f"; slowest stage: {slowest} {seconds[slowest]:.1f} s ({share:.0%})"
    if timings.get("peak_memory_mib") is not None:
        line += f"; peak GPU memory {timings['peak_memory_mib']:.0f} MiB"
    return line
