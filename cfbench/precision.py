"""Numeric precision of the model: `fp32`, or `bf16` / `fp16` through `torch.autocast` on the model's device.

Autocast wraps the restoration model only; metrics run at their reference precision (float32, float64 where they
say so) on restored faces cast back to float32. Both CPU and CUDA autocast support bfloat16 and float16 (CPU
float16 is slow on CPUs without native half arithmetic, but correct).
"""

from __future__ import annotations

import contextlib

import torch

from cfbench.errors import BadInputError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(name: str) -> str:
    """`name` if it is a known precision, else a BadInputError naming the choices."""
    if name not in PRECISIONS:
        raise BadInputError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    return name


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager[object]:
    """The context that runs model code at `precision` on `device` (nothing for fp32)."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=PRECISIONS[precision])
