"""`cfbench weights list|status|fetch|import|verify|path`: the registered weights files and their cache."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from cfbench import weights
from cfbench.cli.common import console, progress
from cfbench.errors import EXIT_FAILED_CHECK, BadInputError, CheckpointError, MissingWeightsError
from cfbench.eval.config import load_sweep_config
from cfbench.eval.requirements import needed_weights
from cfbench.weights_check import check_content

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


def _for_protocol(protocol: str) -> dict[str, list[str]]:
    """Registered weights name -> what needs it, for the checkpoint and metrics of `protocol`."""
    return needed_weights(load_sweep_config(None, protocol=protocol))


@app.command("fetch")
def fetch_command(
    names: list[str] = typer.Argument(None, help="Registered weights names."),
    for_protocol: str | None = typer.Option(None, "--for", help="Every file this protocol needs."),
) -> None:
    """Download weights into the cache: hash-checked, atomic, resumed after an interruption (needs internet;
    offline, use `cfbench weights import`)."""
    todo = list(names or []) + list(_for_protocol(for_protocol) if for_protocol else [])
    if not todo:
        raise BadInputError("name the weights to fetch, or --for PROTOCOL (`cfbench weights list`)")
    for name in todo:
        weights.WEIGHTS.get(name)
    failed = []
    with progress() as bar:
        for name in dict.fromkeys(todo):
            task = bar.add_task(name, total=None, rate="")
            try:
                path = weights.fetch(
                    name, lambda done, total, t=task: bar.update(t, completed=done, total=total), check=check_content
                )
            except MissingWeightsError as exc:
                failed.append(str(exc))
                continue
            bar.update(task, completed=1, total=1)
            console.print(f"{name}: {path}", soft_wrap=True)
    if failed:
        raise MissingWeightsError(f"{len(failed)} file(s) not fetched: " + " | ".join(failed))


@app.command("status")
def status_command(
    for_protocol: str | None = typer.Option(None, "--for", help="Only the files this protocol needs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """What is present, missing and not pinned (no known sha256), for every file or for a protocol's; exit 1 when a
    file that the protocol needs is missing."""
    users = _for_protocol(for_protocol) if for_protocol else {n: [] for n in weights.WEIGHTS.names()}
    rows = []
    for name, needed_by in users.items():
        entry, found = weights.WEIGHTS.get(name), weights.locate(name)
        pinned = entry.sha256 is not None or entry.sha256_prefix is not None or entry.bundled
        rows.append(
            {
                "name": name,
                "needed_by": needed_by,
                "status": "missing" if found is None else ("present" if pinned else "present, not pinned"),
                "path": str(found or weights.weights_path(name)),
                "get": None if found else weights.missing_message(name),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        table = Table(title=f"weights for {for_protocol}" if for_protocol else f"weights in {weights.weights_dir()}")
        for col in ("name", "needed by", "status", "path"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["name"], escape(", ".join(r["needed_by"])), r["status"], r["path"])
        console.print(table)
        for r in rows:
            if r["get"]:
                console.print(f"{r['name']}: {escape(r['get'])}", soft_wrap=True)
    if for_protocol and any(r["status"] == "missing" for r in rows):
        raise typer.Exit(EXIT_FAILED_CHECK)


@app.command("import")
def import_command(
    name: str = typer.Argument(..., help="Registered weights name."),
    file: Path = typer.Argument(..., help="A file downloaded elsewhere."),
) -> None:
    """Copy a downloaded file into the cache after checking its sha256 (a name without a pinned sha256: after
    loading it strictly as what it must be)."""
    path = weights.import_file(name, file, check=check_content)
    console.print(f"{name}: imported {file} -> {path} (sha256 {weights.sha256_file(path)})")


@app.command("verify")
def verify_command(
    names: list[str] = typer.Argument(None, help="Names to check; default: every present file."),
) -> None:
    """Hash cached files and compare with the pinned (or first recorded) sha256, and load the files of names
    without a pinned sha256 as what they must be; exit 1 on a mismatch."""
    todo = names or [n for n in weights.WEIGHTS.names() if weights.weights_path(n).is_file()]
    failed = False
    for name in todo:
        ok, digest = weights.verify(name)
        status = {True: "ok", False: "MISMATCH", None: "no hash known"}[ok]
        try:
            check_content(name, weights.require(name))
        except CheckpointError as err:
            ok, path = False, weights.require(name)
            status = f"MISMATCH: {err} (delete {path} and {path.name}.sha256, then import the right file)"
        failed |= ok is False
        console.print(f"{name}: {escape(status)} (sha256 {digest})", soft_wrap=True)
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
