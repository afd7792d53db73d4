"""cfbench: evaluation and benchmarking of blind face restoration, built around CodeFormer.

`cfbench.restore(images, w)` restores aligned faces (float32 RGB NCHW in [0, 1]); see `cfbench.restoration`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # lazy, so `import cfbench` (and `cfbench --version`) do not pay for importing torch
    if name == "restore":
        from cfbench.restoration import restore

        return restore
    raise AttributeError(f"module 'cfbench' has no attribute {name!r}")
