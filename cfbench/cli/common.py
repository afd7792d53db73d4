"""Helpers shared by the CLI commands: device choice, rich console and progress, the Ctrl-C note of resumable runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer
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
from cfbench.errors import EXIT_INTERRUPTED

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


@contextlib.contextmanager
def resume_hint(run_dir: Path) -> Iterator[None]:
    """Turn Ctrl-C (KeyboardInterrupt) inside the block into one line saying that the run in `run_dir` resumes with
    the same command, and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        console.print(
            f"interrupted: the parts stored in {run_dir} are kept; run the same command again to resume", soft_wrap=True
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
