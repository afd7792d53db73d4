"""Helpers shared by the CLI commands: device choice, rich console and progress."""

from __future__ import annotations

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cfbench.errors import BadInputError

console = Console(stderr=True)
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


def progress() -> Progress:
    """A rich progress bar with count, rate and time left, on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
