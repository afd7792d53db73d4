"""`cfbench protocols list|show`: the published evaluation protocols (`configs/protocols/`) a named run follows."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from cfbench.cli.common import console
from cfbench.data import DATASETS
from cfbench.eval.protocols import PROTOCOLS, Protocol, get_protocol

app = typer.Typer(help="List and inspect the evaluation protocols.", no_args_is_help=True)


def _fid_references(p: Protocol) -> str:
    refs = [m for m in p.metric_names if m.startswith("fid")]
    return ", ".join(refs) or ("every available metric" if not p.metric_names else "none")


def _row(p: Protocol) -> dict[str, object]:
    return {
        **p.to_dict(),
        "version": p.version,
        "lq_source": p.lq_source,
        "metrics": p.metric_names or "every metric whose weights are present",
        "also_reported": p.also_reported_names,
        "fid": _fid_references(p),
        "where": DATASETS.get(p.dataset).where(None),
    }


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every protocol: its dataset, published size, LQ source, metrics and source."""
    rows = [_row(p) for _, p in PROTOCOLS.items()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="protocols (cfbench eval --dataset NAME starts from the one of NAME)")
    for col in ("name", "dataset", "images", "LQ source", "metrics", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        metrics = r["metrics"] if isinstance(r["metrics"], str) else ", ".join(r["metrics"])
        table.add_row(
            escape(str(r["name"])),
            escape(str(r["settings"]["dataset"])),
            str(r["expected_images"]),
            escape(str(r["lq_source"])),
            escape(metrics),
            escape(str(r["title"])),
        )
    console.print(table)


@app.command("show")
def show_command(
    name: str = typer.Argument(..., help="A protocol name (`cfbench protocols list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show one protocol: every setting it fixes, where its dataset goes, and where it comes from."""
    row = _row(get_protocol(name))
    if as_json:
        typer.echo(json.dumps(row, indent=2))
        return
    for key in ("name", "version", "title", "citation", "expected_images", "expected_images_source", "lq_source"):
        console.print(f"{key}: {escape(str(row[key]))}", soft_wrap=True)
    console.print(f"dataset: {escape(str(row['settings']['dataset']))}, looked for in {escape(str(row['where']))}")
    for key, value in row["settings"].items():
        console.print(f"  {key}: {escape(str(value))}", soft_wrap=True)
    if row["also_reported"]:
        also = ", ".join(row["also_reported"])
        source = get_protocol(name).also_reported["source"]
        console.print(f"also reported (add with --metrics): {escape(also)}; {escape(source)}", soft_wrap=True)


def register(root: typer.Typer) -> None:
    """Add the ``protocols`` command group to the cfbench app."""
    root.add_typer(app, name="protocols")
