"""Helpers shared by the CLI commands: device choice, rich console and progress."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cfbench.devices import DEVICES, pick_device  # noqa: F401  (re-exported for the commands)

console = Console(stderr=True)


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
