"""`cfbench metrics`: score a folder of restored faces (against a GT folder), and `cfbench metrics list`."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from cfbench.atomic import atomic_write_bytes
from cfbench.cli.common import console, pick_device, progress
from cfbench.errors import BadInputError, MissingRequirementsError
from cfbench.eval.requirements import needs_gt
from cfbench.metrics import (
    ALIASES,
    METRICS,
    FeatureCache,
    FolderScores,
    build_metrics,
    pair_folders,
    parse_metric_list,
    score_folders,
)
from cfbench.metrics.pyiqa_metric import pyiqa_specs, weights_status
from cfbench.metrics.pyiqa_table import INSTALL_HINT
from cfbench.metrics.registry import DEFAULT_METRICS


def list_metrics(as_json: bool) -> None:
    registered = [spec for _, spec in METRICS.items()]
    names = {s.name for s in registered}
    specs = registered + [s for s in pyiqa_specs() if s.name not in names]
    rows = [
        {
            "name": spec.name,
            "backend": spec.backend,
            "kind": spec.kind.value,
            "better": spec.direction,
            "label": spec.display,
            "role": spec.role,
            "unit": spec.unit,
            "range": [_json_number(x) for x in spec.value_range],
            "weights": list(spec.weights),
            "weights_status": weights_status(spec),
            "options": spec.options,
            "input": spec.input,
            "reference": spec.reference,
        }
        for spec in specs
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="metrics (--metrics a,b,...)")
    for col in ("name", "kind", "better", "weights"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["name"]), r["kind"], r["better"], escape(r["weights_status"]))
    console.print(table)
    console.print("aliases: " + ", ".join(f"{a} = {escape(t)}" for a, t in ALIASES.items()))
    for r in rows:
        if r["backend"] != "pyiqa" or r["name"] in ALIASES.values():
            console.print(f"[bold]{escape(r['name'])}[/]: {escape(r['reference'])}")
    if not any(r["backend"] == "pyiqa" for r in rows):
        console.print(f"pyiqa metrics (pyiqa:NAME): not installed; {escape(INSTALL_HINT)}")


def metrics_command(
    pred_dir: str = typer.Argument(..., help="Folder of restored images, or 'list' to list the metrics."),
    gt_dir: Path | None = typer.Argument(None, help="Folder of GT images, matched to the restored ones by name."),
    metrics: str | None = typer.Option(
        None,
        "--metrics",
        "-m",
        help=f"Comma-separated metric names (see `cfbench metrics list`). Default: {','.join(DEFAULT_METRICS)} "
        "(only the no-reference ones without a GT folder).",
        show_default=False,
    ),
    fid_ref: str = typer.Option(
        "gt", help="FID reference: gt (the GT folder), ffhq512, ffhq70k, or a statistics .npz/.pth."
    ),
    fid_resize: str | None = typer.Option(
        None, help="FID resize mode: clean or legacy_pytorch. Default: clean, or the mode the statistics file used."
    ),
    crop_border: int = typer.Option(0, min=0, help="Pixels cropped on each side for PSNR/SSIM/NIQE (BasicSR)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="CSV of per-image values (file name first)."),
    batch_size: int = typer.Option(8, min=1, help="Images per batch."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Use and fill the GT feature cache."),
    skip_missing: bool = typer.Option(
        False, "--skip-missing", help="Score without named metrics whose weights or packages are missing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Score restored faces with full-reference, no-reference and distribution metrics (pyiqa-style)."""
    if pred_dir == "list" and gt_dir is None:
        list_metrics(as_json)
        return
    specs = parse_metric_list(",".join(DEFAULT_METRICS) if metrics is None else metrics)
    if gt_dir is None and metrics is None:
        specs = [s for s in specs if not needs_gt(s, {"ref": fid_ref})]
    if not specs:
        raise BadInputError("no metric left to compute; give a GT folder or choose --metrics")
    pairs = pair_folders(pred_dir, gt_dir)
    dev = pick_device(device)
    built, skipped = build_metrics(
        specs, dev, {"ref": fid_ref, "resize": fid_resize, "crop_border": crop_border or None}
    )
    if skipped and metrics is not None and not skip_missing:
        raise MissingRequirementsError(
            f"cannot score: {len(skipped)} requested metric(s) cannot run (--skip-missing scores without them):\n"
            + "\n".join(f"  {name}: {why}" for name, why in skipped.items())
        )
    for name, why in skipped.items():
        console.print(f"[yellow]skipped {escape(name)}[/]: {escape(why)}", soft_wrap=True)
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("scoring", total=len(pairs), rate="")

        def advance(done: int) -> None:
            bar.update(task, completed=done, rate=f"{done / (time.perf_counter() - start):.2f} img/s")

        scores = score_folders(
            pairs, built, batch_size=batch_size, cache=FeatureCache() if cache else None, on_batch=advance
        )
    scores.skipped = skipped
    _print_summary(scores)
    if out is not None:
        atomic_write_bytes(out, scores.per_image.to_csv(index=False).encode())
        console.print(f"per-image values: {out}")
        if scores.distribution:
            dist_path = out.with_name(f"{out.stem}_distribution.csv")
            atomic_write_bytes(dist_path, _distribution_csv(scores.distribution))
            console.print(f"distribution metrics: {dist_path}")
    if as_json:
        means = {c: _json_number(scores.per_image[c].mean()) for c in scores.per_image.columns[1:]}
        typer.echo(
            json.dumps(
                {
                    "images": len(pairs),
                    "mean": means,
                    "distribution": scores.distribution,
                    "skipped": skipped,
                },
                indent=2,
            )
        )


def _json_number(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


def _distribution_csv(rows: list[dict]) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode()


def _print_summary(scores: FolderScores) -> None:
    table = Table(title=f"{len(scores.per_image)} image(s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("over")
    for column in scores.per_image.columns[1:]:
        table.add_row(escape(column), f"{scores.per_image[column].mean():.4f}", "mean of images")
    for row in scores.distribution:
        table.add_row(escape(row["metric"]), f"{row['value']:.4f}", f"{row['images']} images vs {row['reference']}")
    console.print(table)
    for name in scores.skipped:
        console.print(f"[yellow]not computed: {escape(name)}[/] (its weights are missing; see the message above)")


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics_command)
