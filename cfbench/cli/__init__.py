"""The `cfbench` command line (typer).

Each command lives in its own module of this package and exposes `register(app)`. Errors derived from
`CfbenchError`, and `ValueError`/`OSError` raised while checking user input, are printed as one line and turned into
the exit codes of `cfbench.errors`; set `CFBENCH_DEBUG=1` to see the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from cfbench import __version__
from cfbench.cli import bench, datasets, degrade, eval, metrics, protocols, regress, report, restore, train, weights
from cfbench.errors import EXIT_BAD_INPUT, CfbenchError

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


for _module in (eval, metrics, report, regress, restore, train, datasets, protocols, degrade, weights, bench):
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    click handles its own usage errors (exit 2) and `typer.Exit`; our errors propagate out of it and are printed
    here as one line.
    """
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CfbenchError as exc:
        return _fail(exc, exc.exit_code)
    except (ValueError, OSError) as exc:
        return _fail(exc, EXIT_BAD_INPUT)
    return 0


def _fail(exc: BaseException, code: int) -> int:
    if os.environ.get("CFBENCH_DEBUG"):
        raise exc
    typer.echo(f"error: {exc}", err=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
