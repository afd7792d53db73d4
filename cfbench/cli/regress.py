"""`cfbench baseline` and `cfbench regress`: the CI regression gate on checkpoints (docs/ci.md)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from cfbench.cli.common import console
from cfbench.eval.config import load_sweep_config
from cfbench.regress.baseline import read_baseline, write_baseline
from cfbench.regress.compare import failures, raise_on_failures
from cfbench.regress.gate import make_baseline, run_regress
from cfbench.regress.report import markdown, rich_table, write_junit, write_markdown
from cfbench.regress.tolerance import load_tolerances


def _log(text: str) -> None:
    console.print(escape(str(text)), soft_wrap=True)


def baseline_command(
    checkpoint: str = typer.Option(..., "--checkpoint", "-c", help="Accepted checkpoint: weights name or file."),
    out: Path = typer.Option(..., "--out", "-o", help="Baseline JSON file to write."),
    dataset: str | None = typer.Option(
        None, help="Dataset (`cfbench datasets list`); a set with a protocol starts from it. Default: the demo."
    ),
    w: str | None = typer.Option(None, "--w", "-w", help="Fidelity weights: 0:1:0.25 or 0,0.5,1."),
    severity: str | None = typer.Option(None, help="Severities: levels 0..4 (0,2 or 0:4), fractions, none."),
    metrics: str | None = typer.Option(
        None, help="Comma-separated metrics, all of which must run. Default: the protocol's (demo: every available)."
    ),
    limit: int | None = typer.Option(None, min=1, help="Only the first N faces of the dataset."),
    seed: int | None = typer.Option(None, help="Seed of the synthesized degradations."),
    data_root: str | None = typer.Option(None, help="Where the dataset's files are (default: $CFBENCH_DATA)."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N (regress reuses it by default)."),
    batch_size: int | None = typer.Option(None, min=1, help="Faces per forward pass."),
    run_dir: str | None = typer.Option(None, help="Keep the eval run here (default: a temporary folder)."),
    config: str | None = typer.Option(None, help="A YAML file of sweep options (flags given override it)."),
) -> None:
    """Evaluate an accepted checkpoint and write the baseline that `cfbench regress` compares against."""
    cfg = load_sweep_config(
        config,
        dataset=dataset,
        w=w,
        severity=severity,
        checkpoints=(checkpoint,),
        metrics=metrics,
        limit=limit,
        seed=seed,
        data_root=data_root,
        device=device,
        batch_size=batch_size,
        run_dir=run_dir,
    )
    baseline = make_baseline(cfg, log=_log)
    write_baseline(baseline, out)
    console.print(
        f"baseline of {baseline.checkpoint['label']} on {baseline.dataset['name']} ({baseline.dataset['n']} faces, "
        f"{len(baseline.rows)} values: {', '.join(baseline.metrics)}) written to {out}",
        soft_wrap=True,
    )


def regress_command(
    baseline: Path = typer.Option(..., "--baseline", "-b", help="Baseline JSON from `cfbench baseline`."),
    checkpoint: str = typer.Option(..., "--checkpoint", "-c", help="New checkpoint: weights name or file."),
    tolerances: Path | None = typer.Option(None, help="Tolerance YAML (default: outside the bootstrap interval)."),
    report_md: Path | None = typer.Option(None, "--report-md", help="Write a markdown summary (PR comment) here."),
    junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
    device: str | None = typer.Option(None, help="Override the baseline's device (numbers may then differ slightly)."),
    batch_size: int | None = typer.Option(None, min=1, help="Faces per forward pass."),
    run_dir: str | None = typer.Option(None, help="Keep the eval run here (default: a temporary folder)."),
    dataset: str | None = typer.Option(None, help="Same data at another place (its content hash must match)."),
    data_root: str | None = typer.Option(None, help="Where the dataset's files are (default: $CFBENCH_DATA)."),
) -> None:
    """Evaluate a new checkpoint exactly like the baseline; exit 1 if a metric got worse beyond its tolerance."""
    base = read_baseline(baseline)
    tols = load_tolerances(tolerances)
    result = run_regress(
        base,
        checkpoint,
        tols,
        log=_log,
        tolerance_source=str(tolerances) if tolerances else "tolerances",
        run_dir=run_dir,
        device=device,
        batch_size=batch_size,
        dataset=dataset,
        data_root=data_root,
    )
    checks = result.checks
    console.print(rich_table(checks, title=f"cfbench regress: {result.checkpoint['label']} vs {baseline.name}"))
    if report_md:
        text = markdown(checks, result.checkpoint["label"], baseline.name, base.checkpoint.get("label", "?"))
        write_markdown(text, report_md)
    if junit:
        write_junit(checks, junit, seconds=result.seconds)
    failed = failures(checks)
    if failed:
        for c in failed:
            console.print(f"[red]regressed[/]: {escape(c.message)} (severity {c.severity}, w {c.w:g})", soft_wrap=True)
    else:
        console.print(f"[green]no regression[/]: {len(checks)} checks passed", soft_wrap=True)
    raise_on_failures(checks)


def register(app: typer.Typer) -> None:
    app.command("baseline")(baseline_command)
    app.command("regress")(regress_command)
