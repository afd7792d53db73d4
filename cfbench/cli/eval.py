"""`cfbench eval`: the w x severity sweep over a dataset, into a resumable run directory, with the fidelity table."""

from __future__ import annotations

import json
import time

import pandas as pd
import typer
from rich.markup import escape

from cfbench.cli.common import console, progress, resume_hint
from cfbench.eval.config import load_sweep_config
from cfbench.eval.protocols import protocol_line
from cfbench.eval.runner import FidelityWeightSweep
from cfbench.eval.store.schema import GROUPS
from cfbench.eval.tables import rich_table
from cfbench.eval.timing import summary_line


def eval_command(
    dataset: str | None = typer.Option(
        None,
        help="Dataset (`cfbench datasets list`); a set with a protocol starts from it (`cfbench protocols list`). "
        "Default: the demo.",
        show_default=False,
    ),
    protocol: str | None = typer.Option(
        None, help="Start from this protocol's settings (default: the dataset's own protocol, if it has one)."
    ),
    w: str | None = typer.Option(None, "--w", "-w", help="Fidelity weights: 0:1:0.1 (stop included) or 0,0.5,1."),
    severity: str | None = typer.Option(
        None, help="Severities: levels 0..4 (0,2 or 0:4), fractions, none, celeba-test."
    ),
    checkpoint: list[str] | None = typer.Option(
        None, "--checkpoint", "-c", help="Weights name or file; repeat to compare checkpoints. Default: the protocol's."
    ),
    metrics: str | None = typer.Option(
        None, help="Comma-separated metrics; each must be able to run (or --skip-missing). Default: the protocol's."
    ),
    skip_missing: bool | None = typer.Option(
        None, "--skip-missing", help="Run without requested metrics whose weights or packages are missing."
    ),
    strict: bool | None = typer.Option(
        None, "--strict", help="Refuse a protocol set whose image count or pairing differs from the published one."
    ),
    fid_ref: str | None = typer.Option(None, help="Reference of `fid`: gt, ffhq512, ffhq70k or a statistics file."),
    fid_resize: str | None = typer.Option(None, help="FID resize: clean or legacy_pytorch (default: the reference's)."),
    crop_border: int | None = typer.Option(None, min=0, help="Pixels cropped on each side for PSNR/SSIM/NIQE."),
    lookup: str | None = typer.Option(None, help="Code lookup: transformer (CodeFormer) or nearest (the ablation)."),
    adain: bool | None = typer.Option(None, "--adain/--no-adain", help="Colour AdaIN of the official inference."),
    run_dir: str | None = typer.Option(None, help="Run directory (resumed if it holds this run). Default: derived."),
    batch_size: str | None = typer.Option(
        None, help="Faces per forward pass, or auto (default: the largest that fits the GPU; 1 on the CPU)."
    ),
    part_size: int | None = typer.Option(None, min=1, help="Faces per stored part (the resume granularity)."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N."),
    precision: str | None = typer.Option(
        None, help="Model precision: fp32, bf16 or fp16 (autocast; metrics keep their reference precision)."
    ),
    workers: str | None = typer.Option(
        None,
        help="Threads loading and degrading faces ahead of the model, or auto (8 on a GPU, 0 on the CPU; the "
        "results are the same).",
    ),
    limit: int | None = typer.Option(None, min=1, help="Only the first N faces of the dataset."),
    seed: int | None = typer.Option(None, help="Base seed of the synthesized degradations."),
    data_root: str | None = typer.Option(None, help="Where the dataset's files are (default: $CFBENCH_DATA)."),
    save_images: bool | None = typer.Option(None, "--save-images", help="Also write the restored faces as PNG."),
    store_nn_codes: bool | None = typer.Option(
        None, "--store-nn-codes", help="Also store nearest-neighbour code indices (LQ and GT) in codes.npz."
    ),
    config: str | None = typer.Option(None, help="A YAML file of these options (flags given override it)."),
    rehash: bool = typer.Option(
        False,
        "--rehash",
        help="Resume although inputs (images, checkpoint, weights) changed: hash every input again, accept the "
        "changes and recompute the stored parts that used them.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout."),
) -> None:
    """Restore a dataset at every w and severity, score every metric, store results and print the table."""
    cfg = load_sweep_config(
        config,
        dataset=dataset,
        protocol=protocol,
        skip_missing=skip_missing,
        strict=strict,
        w=w,
        severity=severity,
        checkpoints=tuple(checkpoint) if checkpoint else None,
        metrics=metrics,
        fid_ref=fid_ref,
        fid_resize=fid_resize,
        crop_border=crop_border,
        lookup=lookup,
        adain=adain,
        run_dir=run_dir,
        batch_size=batch_size,
        part_size=part_size,
        device=device,
        precision=precision,
        workers=workers,
        limit=limit,
        seed=seed,
        data_root=data_root,
        save_images=save_images,
        store_nn_codes=store_nn_codes,
    )
    sweep = FidelityWeightSweep(cfg, log=console.print)
    if sweep.rank != 0:  # another process of a torchrun run: it works silently, rank 0 reports
        sweep.run()
        return
    console.print(
        f"eval: {escape(protocol_line(sweep.protocol_record))}; {cfg.dataset} ({len(sweep.indices)} faces) x "
        f"severity {list(sweep.severities)} x w {list(sweep.ws)} x checkpoint {sweep.checkpoints} on {sweep.device}; "
        f"run dir {sweep.run_dir}",
        soft_wrap=True,
    )
    for name, why in sweep.skipped.items():
        console.print(f"[yellow]skipped {escape(name)}[/]: {escape(why)}", soft_wrap=True)
    start = time.perf_counter()
    with resume_hint(sweep.run_dir), progress() as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            elapsed = time.perf_counter() - start
            bar.update(tasks[stage], completed=done, rate=f"{done / elapsed:.2f} faces/s" if elapsed else "")

        sweep.progress = report
        result = sweep.run(rehash=rehash)
    console.print(rich_table(result.table))
    console.print(
        f"{result.restored} face(s) restored at {len(sweep.ws)} w each ({result.faces_per_second:.2f} faces x w/s); "
        f"results in {result.run_dir} (results.parquet, groups.parquet, table.md/csv/tex)"
    )
    console.print(f"timings: {summary_line(result.timings)} (manifest.json `timings`)")
    if as_json:
        groups = json.loads(pd.read_parquet(result.run_dir / GROUPS).to_json(orient="records"))
        typer.echo(json.dumps({"run_dir": str(result.run_dir), "skipped": result.skipped, "groups": groups}, indent=2))


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
