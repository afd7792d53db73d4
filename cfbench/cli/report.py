"""`cfbench report`: figures, tables and an HTML page from one or more finished `cfbench eval` run directories."""

from __future__ import annotations

from pathlib import Path

import typer

from cfbench.errors import CfbenchError


def report_command(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories of `cfbench eval` (several compare runs)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the report files (created)."),
    formats: str = typer.Option(
        "md,csv,tex,png,pdf,html", "--format", help="Comma-separated: md,csv,tex (tables), png,pdf (figures), html."
    ),
    worst_k: int = typer.Option(4, min=1, help="Faces in the side-face worst-k grids."),
    paper_w: float = typer.Option(0.5, help="w of each method in the Table-1 comparison (nearest w of the run)."),
    n_boot: int = typer.Option(1000, min=1, help="Bootstrap resamples of the intervals in the tables."),
    codebook_size: int | None = typer.Option(None, min=1, help="Codebook size (default: from the model config)."),
) -> None:
    """Fidelity vs quality, codebook usage, side faces, paper-style figures and report.html from run dirs."""
    from reports import build_report

    try:
        paths = build_report(
            run_dirs,
            out,
            formats,
            n_boot=n_boot,
            worst_k=worst_k,
            paper_w=paper_w,
            codebook_size=codebook_size,
        )
    except CfbenchError as exc:  # one line and its exit code, also when called outside cfbench.cli.main
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    html = [p for p in paths if p.name == "report.html"]
    typer.echo(f"{len(paths)} files in {out}" + (f"; open {html[0]}" if html else ""))


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
