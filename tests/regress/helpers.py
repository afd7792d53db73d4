"""Shared by the regress tests: the CLI with only the gate's commands, as `cfbench.cli.main` runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from typer.testing import CliRunner

from cfbench.cli import regress
from cfbench.errors import CfbenchError

FACES = Path(__file__).resolve().parents[1] / "data" / "metrics" / "gt"

app = typer.Typer(pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """The gate's commands only (cfbench.cli wires them into the real app)."""


regress.register(app)


class Outcome:
    def __init__(self, code: int, output: str, error: str) -> None:
        self.code, self.output, self.error = code, output, error


def run_cli(args: list[str]) -> Outcome:
    """Exit code and text as `cfbench.cli.main` would give them (CfbenchError -> its exit code, one line)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    exc = result.exception
    if isinstance(exc, CfbenchError):
        return Outcome(exc.exit_code, result.output, str(exc))
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return Outcome(result.exit_code, result.output, "")


def face_folder(root: Path, n: int = 1) -> Path:
    """A folder dataset with the first `n` real GT faces of tests/data/metrics."""
    (root / "gt").mkdir(parents=True, exist_ok=True)
    for p in sorted(FACES.glob("*.png"))[:n]:
        shutil.copy(p, root / "gt" / p.name)
    return root
