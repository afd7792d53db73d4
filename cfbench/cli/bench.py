"""`cfbench bench model` (time per face, FLOPs per part and the w-sweep cost of a model variant) and `cfbench bench
eval` (the sweep against the naive per-(face, w) pipeline)."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from cfbench import bench
from cfbench.cli.common import console, pick_device
from cfbench.errors import BadInputError
from cfbench.models import build_model
from cfbench.precision import check_precision

app = typer.Typer(help="Benchmarks (speed, FLOPs, memory, the eval pipeline).", no_args_is_help=True)


def _ints(spec: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"{what} must be a comma-separated list of integers like 1,4; got {spec!r}") from None
    if not values or min(values) < 1:
        raise BadInputError(f"{what} must hold positive integers like 1,4; got {spec!r}")
    return values


@app.command("model")
def model_command(
    variant: str = typer.Option("codeformer", help="Registered model variant (random weights: speed only)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    batch: str = typer.Option("1,4", help="Batch sizes, comma-separated."),
    precision: str = typer.Option("fp32", help="fp32, bf16, fp16 (autocast), comma-separated."),
    compile_model: bool = typer.Option(False, "--compile", help="Also time torch.compile'd encode/decode."),
    repeats: int = typer.Option(3, min=1, help="Timed repeats per configuration (median reported)."),
    sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="Measure the 11-value w sweep ratio."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Benchmark encode/decode of a model variant."""
    dev = pick_device(device)
    batches = _ints(batch, "--batch")
    precisions = [p.strip() for p in precision.split(",")]
    for p in precisions:
        check_precision(p)
    flops = bench.flops_by_part(build_model(variant).eval())
    timings = [
        bench.time_encode_decode(variant, dev, b, p, c, repeats)
        for p in precisions
        for c in ([False, True] if compile_model else [False])
        for b in batches
    ]
    ratio = bench.sweep_ratio(variant, dev) if sweep else None
    if as_json:
        typer.echo(json.dumps({"gflops": flops, "timings": bench.timing_rows(timings), "sweep": ratio}, indent=2))
        return
    table = Table(title=f"{variant} on {dev}: time per face")
    for col in ("precision", "batch", "encode ms", "decode ms", "faces/s", "peak MiB"):
        table.add_column(col, justify="right")
    for t in timings:
        peak = "-" if t.peak_mem_mb is None else f"{t.peak_mem_mb:.0f}"
        table.add_row(
            t.precision,
            str(t.batch),
            f"{t.encode_ms:.1f}",
            f"{t.decode_ms:.1f}",
            f"{t.faces_per_s:.2f}",
            peak,
        )
    console.print(table)
    console.print("GFLOP per face: " + ", ".join(f"{k} {v:.1f}" for k, v in flops.items()))
    if ratio:
        console.print(
            f"11-value w sweep: 11 forwards {ratio['full_s']:.2f} s, "
            f"encode once + 11 decodes {ratio['split_s']:.2f} s, "
            f"time ratio {ratio['time_ratio']:.2f}x, FLOP ratio {ratio['flop_ratio']:.2f}x"
        )


@app.command("eval")
def eval_command(
    dataset: str = typer.Option("demo", help="Dataset (`cfbench datasets list`)."),
    faces: int = typer.Option(3, min=1, help="The first N faces."),
    w: str = typer.Option("0:1:0.25", "--w", help="Fidelity weights, as for cfbench eval."),
    severity: str = typer.Option("2", help="One severity."),
    checkpoint: str = typer.Option("auto", help="Weights name or file (auto: official if installed, else tiny)."),
    metrics: str | None = typer.Option(None, help="Comma-separated metrics (default: every available one)."),
    batch_size: str = typer.Option("auto", help="The sweep's faces per forward pass, or auto (as cfbench eval)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (both pipelines)."),
    workers: str = typer.Option("auto", help="The sweep's loading threads, or auto (as cfbench eval)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
) -> None:
    """Time `cfbench eval` against the naive pipeline (official-script style) on the same work, in one run."""
    from cfbench.eval.config import load_sweep_config
    from cfbench.eval.naive import compare_with_naive
    from cfbench.eval.requirements import check_requirements

    if "," in severity:
        raise BadInputError(f"--severity takes one severity, got {severity!r}")
    dev = pick_device(device)
    options = dict(dataset=dataset, limit=faces, w=w, severity=severity, checkpoints=(checkpoint,), device=dev)
    options.update(batch_size=batch_size, precision=precision, workers=workers, metrics=metrics)
    cfg = load_sweep_config(None, **options, skip_missing=metrics is None)
    preflight = check_requirements(cfg, True, dev)
    cfg = load_sweep_config(None, **{**options, "metrics": ",".join(m.spec.name for m in preflight.metrics)})
    out = compare_with_naive(cfg, dev)
    naive, ours = out["naive"], out["ours"]
    work = len(ours["rows"])
    rows = []
    for label, res in (("naive (per image, per w, via PNG files)", naive), ("cfbench eval", ours)):
        model, met = res["parts"].get("model", 0.0), res["parts"].get("metrics", 0.0)
        rows.append([label, res["seconds"], work / res["seconds"], model, met, res["seconds"] - model - met])
    if as_json:
        keys = ("pipeline", "seconds", "faces_x_w_per_s", "model_s", "metrics_s", "other_s")
        record = {
            "setting": {**cfg.to_dict(), "faces": faces, "restorations": work},
            "pipelines": [dict(zip(keys, r, strict=True)) for r in rows],
            "ratio_naive_over_cfbench": out["ratio"],
            "wall_over_model": ours["wall_over_model"],
            "timings": ours["timings"],
        }
        typer.echo(json.dumps(record, indent=2))
        return
    title = f"{cfg.dataset}: {faces} faces x {work // faces} w, {cfg.metrics}, {cfg.checkpoints[0]}, {dev}"
    table = Table(title=escape(title))
    for col in ("pipeline", "seconds", "faces x w/s", "model s", "metrics s", "other s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r[0], *(f"{v:.2f}" for v in r[1:]))
    console.print(table)
    console.print(
        f"naive / cfbench eval: {out['ratio']:.2f}x; cfbench eval wall time / model time: "
        f"{ours['wall_over_model']:.2f}x"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="bench")
