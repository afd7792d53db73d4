"""The `cfbench` command line (typer).

Each command lives in its own module of this package and exposes `register(app)`. `main` is the error boundary:
a `CfbenchError` (or a `degradations.DegradationsError`, bad input) is the user's to fix and is printed as one line
with its exit code from `cfbench.errors`; any other exception is ours: exit 3, one line naming a log file under
`$CFBENCH_HOME/logs/` that holds the traceback. `CFBENCH_DEBUG=1` also prints the traceback.
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys
import traceback
from pathlib import Path

import typer

from cfbench import __version__
from cfbench.cli import (
    bench,
    datasets,
    degrade,
    eval,
    export,
    metrics,
    protocols,
    regress,
    report,
    restore,
    train,
    weights,
)
from cfbench.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, CfbenchError
from cfbench.weights import cfbench_home
from degradations import DegradationsError

app = typer.Typer(
    name="cfbench",
    help="Evaluate and benchmark blind face restoration (CodeFormer and friends).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cfbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Evaluate and benchmark blind face restoration (CodeFormer and friends)."""


for _module in (eval, metrics, report, regress, restore, train, datasets, protocols, degrade, weights, bench, export):
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    click handles its own usage errors (exit 2) and `typer.Exit`; our errors propagate out of it and are printed
    here as one line: bad input and failed checks with their own exit code, anything else as an internal error.
    """
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CfbenchError as exc:
        return _fail(exc, exc.exit_code)
    except DegradationsError as exc:
        return _fail(exc, EXIT_BAD_INPUT)
    except Exception as exc:  # noqa: BLE001 - the boundary: whatever is left is a bug of ours
        return _internal_error(exc, sys.argv[1:] if argv is None else argv)
    return 0


def _debug() -> bool:
    return bool(os.environ.get("CFBENCH_DEBUG"))


def _fail(exc: BaseException, code: int) -> int:
    if _debug():
        traceback.print_exception(exc, file=sys.stderr)
    typer.echo(f"error: {exc}", err=True)
    return code


def _internal_error(exc: Exception, argv: list[str]) -> int:
    """Write the traceback to a new file in `$CFBENCH_HOME/logs/`, print one line naming it, return exit 3."""
    trace = "".join(traceback.format_exception(exc))
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0]
    try:
        log = _write_log(trace, argv)
    except OSError as log_exc:
        traceback.print_exception(exc, file=sys.stderr)
        typer.echo(
            f"internal error, please report it with the traceback above ({summary}; no log: {log_exc})", err=True
        )
        return EXIT_INTERNAL
    if _debug():
        sys.stderr.write(trace)
    typer.echo(f"internal error, please report it with the log {log} ({summary})", err=True)
    return EXIT_INTERNAL


def _write_log(trace: str, argv: list[str]) -> Path:
    now = datetime.datetime.now(datetime.timezone.utc)
    log = cfbench_home() / "logs" / f"internal-{now:%Y%m%dT%H%M%S%f}-{os.getpid()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    header = f"cfbench {__version__}, python {sys.version.split()[0]}, {now.isoformat(timespec='seconds')}\n"
    log.write_text(f"{header}command: cfbench {shlex.join(argv)}\n\n{trace}", encoding="utf-8")
    return log


if __name__ == "__main__":
    sys.exit(main())
