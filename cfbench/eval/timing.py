"""Wall-clock time per stage of a run (load, model, each metric, GT side, store), recorded in its manifest."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class StageTimes:
    """Seconds per stage of this process's work (`with times("load"): ...`), in first-use order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
