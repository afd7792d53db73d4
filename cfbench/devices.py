"""Device choice shared by the API and the CLI."""

from __future__ import annotations

import torch

from cfbench.errors import BadInputError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str) -> str:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is a bad input."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise BadInputError(f"unknown device {name!r}; use one of {', '.join(DEVICES)} or cuda:N")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError(f"device {name!r} asked for, but no CUDA GPU is available; use --device cpu")
    return name
