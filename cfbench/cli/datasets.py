"""`cfbench datasets list|show`: the registered datasets, where they are looked for, and what they hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cfbench.cli.common import console
from cfbench.data import get_dataset, list_datasets
from cfbench.data.base import SourceDataset
from cfbench.imageio import image_size

app = typer.Typer(help="List and inspect the evaluation datasets.", no_args_is_help=True)

DATA_ROOT_HELP = "Where a released test set is (default: $CFBENCH_DATA/<name>, $CFBENCH_DATA = $CFBENCH_HOME/data)."


@app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
) -> None:
    """List every dataset: what it is, where it looks, whether it is available here and how many faces it has."""
    rows = list_datasets(data_root)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="datasets")
    for col in ("name", "available", "images", "where", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        avail = {True: "yes", False: "no", None: "-"}[r["available"]]
        table.add_row(r["name"], avail, "" if r["images"] is None else str(r["images"]), r["where"], r["description"])
    console.print(table)
    for r in rows:
        if r["available"] is False:
            console.print(f"{r['name']}: {r['reason']}")


def _source_size(source: Any) -> list[int] | None:
    """[height, width] of an encoded image as decoded (EXIF orientation applied), from its header, or None."""
    size = None if source is None else image_size(source.read_bytes())
    return None if size is None else list(size)


@app.command("show")
def show_command(
    name: str = typer.Argument(
        ..., help="A dataset (`cfbench datasets list`): celeba-test, demo, folder:PATH, hf:NAME[:split], ..."
    ),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
    first: int = typer.Option(5, "--first", min=0, help="How many of the first faces to list."),
    content_hash: bool = typer.Option(False, "--hash", help="Also compute the content hash (reads every file)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show one dataset: its size, GT/LQ sides, licence and its first ids with their source files and sizes."""
    ds = get_dataset(name, data_root)
    info = ds.describe()
    if content_hash:
        info["content_hash"] = ds.content_hash()
    faces = []
    for key in ds.ids[:first]:
        row: dict[str, Any] = {"id": key}
        sources = ds.sources(key) if isinstance(ds, SourceDataset) else {}
        for side in ("gt", "lq"):
            src = sources.get(side)
            row[side] = None if src is None else {"source": src.label, "size": _source_size(src)}
        faces.append(row)
    info["first"] = faces
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key in ("name", "description", "root", "images", "has_gt", "has_lq", "licence", "resize_policy"):
        console.print(f"{key}: {info[key]}")
    if content_hash:
        console.print(f"content_hash: {info['content_hash']}")
    if not faces:
        return
    table = Table(title=f"first {len(faces)} of {len(ds)}")
    for col in ("id", "gt", "gt size", "lq", "lq size"):
        table.add_column(col, overflow="fold")
    for row in faces:
        cells = [row["id"]]
        for side in ("gt", "lq"):
            entry = row[side]
            size = entry and entry["size"]
            cells += ["-", ""] if entry is None else [entry["source"], f"{size[1]}x{size[0]}" if size else "?"]
        table.add_row(*cells)
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add the ``datasets`` command group to the cfbench app."""
    root.add_typer(app, name="datasets")
