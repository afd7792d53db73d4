"""`cfbench weights list|fetch|import|verify|path`: the registered weights files and their cache."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cfbench import weights
from cfbench.cli.common import console
from cfbench.errors import EXIT_FAILED_CHECK

app = typer.Typer(help="List, fetch, import and verify registered weights files.", no_args_is_help=True)


@app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every registered weights file, where it goes, and whether it is present."""
    rows = []
    for name, entry in weights.WEIGHTS.items():
        found = weights.locate(name)
        rows.append(
            {
                "name": name,
                "file": entry.filename,
                "present": found is not None,
                "path": str(found or weights.weights_path(name)),
                "sha256": entry.sha256 or weights.expected_hash(name) or entry.sha256_prefix,
                "pinned": entry.sha256 is not None or entry.sha256_prefix is not None,
                "licence": entry.licence,
                "url": entry.urls[0] if entry.urls else entry.page or "(bundled with cfbench)",
                "description": entry.description,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"weights in {weights.weights_dir()}")
    for col in ("name", "present", "sha256", "licence", "url"):
        table.add_column(col)
    for r in rows:
        sha = (r["sha256"] or "not pinned")[:16] + ("" if r["pinned"] or not r["sha256"] else " (recorded)")
        table.add_row(r["name"], "yes" if r["present"] else "no", sha, r["licence"], r["url"])
    console.print(table)


@app.command("fetch")
def fetch_command(names: list[str] = typer.Argument(..., help="Registered weights names.")) -> None:
    """Download weights into the cache (needs internet; offline, use `cfbench weights import`)."""
    for name in names:
        weights.WEIGHTS.get(name)
    for name in names:
        path = weights.fetch(name)
        console.print(f"{name}: {path}")


@app.command("import")
def import_command(
    name: str = typer.Argument(..., help="Registered weights name."),
    file: Path = typer.Argument(..., help="A file downloaded elsewhere."),
) -> None:
    """Copy a downloaded file into the cache after checking its sha256."""
    path = weights.import_file(name, file)
    console.print(f"{name}: imported {file} -> {path} (sha256 {weights.sha256_file(path)})")


@app.command("verify")
def verify_command(
    names: list[str] = typer.Argument(None, help="Names to check; default: every present file."),
) -> None:
    """Hash cached files and compare with the pinned (or first recorded) sha256; exit 1 on a mismatch."""
    todo = names or [n for n in weights.WEIGHTS.names() if weights.weights_path(n).is_file()]
    failed = False
    for name in todo:
        ok, digest = weights.verify(name)
        status = {True: "ok", False: "MISMATCH", None: "no hash known"}[ok]
        failed |= ok is False
        console.print(f"{name}: {status} (sha256 {digest})")
    if not todo:
        console.print(f"no weights files present in {weights.weights_dir()}")
    if failed:
        raise typer.Exit(EXIT_FAILED_CHECK)


@app.command("path")
def path_command(name: str = typer.Argument(..., help="Registered weights name.")) -> None:
    """Print where a weights file must be put."""
    typer.echo(str(weights.weights_path(name)))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="weights")
