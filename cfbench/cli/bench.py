"""`cfbench bench model`: time per face, FLOPs per part and the w-sweep cost of a model variant."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from cfbench import bench
from cfbench.cli.common import console, pick_device
from cfbench.errors import BadInputError
from cfbench.models import build_model
from cfbench.precision import check_precision

app = typer.Typer(help="Benchmarks (speed, FLOPs, memory).", no_args_is_help=True)


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


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="bench")
