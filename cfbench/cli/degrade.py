"""``cfbench degrade``: synthesise LQ faces from a folder of GT faces with a named degradation preset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cfbench.cli.common import console, pick_device, progress
from cfbench.errors import BadInputError
from degradations import BACKENDS, list_presets, parse_severity
from degradations.folder import PARAMS_FILE, degrade_folder, list_images

DEFAULT_PRESET = "celeba-test"
LEVELED_PRESET = "severity-scale"


def degrade_command(
    gt_dir: Annotated[Path, typer.Argument(help="Folder of GT images (png/jpg/...); outputs keep the stems.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for <stem>.png and params.jsonl.")],
    preset: Annotated[
        str | None,
        typer.Option(
            help=f"Preset ({', '.join(list_presets())}) or a YAML file. Default: {DEFAULT_PRESET}, "
            f"or {LEVELED_PRESET} when --severity is a level or fraction.",
            show_default=False,
        ),
    ] = None,
    severity: Annotated[
        str | None,
        typer.Option(help="One severity: a level 0..4, a fraction in [0, 1] such as 0.5, or 'none'."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Base seed; each image's seed derives from it, the dataset and id.")] = 0,
    dataset: Annotated[
        str | None,
        typer.Option(help="Dataset name in the per-image seeds. Default: the GT folder's name.", show_default=False),
    ] = None,
    backend: Annotated[str, typer.Option(help="cpu (OpenCV/libjpeg, bit-exact) or torch (batched).")] = "cpu",
    device: Annotated[str, typer.Option(help="torch backend device: auto, cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Worker processes (0: run in this process).")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per chunk (a torch batch; a worker task).")] = 8,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Recompute and replace existing outputs.")] = False,
) -> None:
    """Degrade GT faces into LQ PNGs and params.jsonl; re-running completes an existing --out folder."""
    levels = parse_severity(severity) if severity is not None else None
    if levels is not None and len(levels) != 1:
        raise BadInputError(f"--severity takes one severity per run, got {severity!r}; run once per level")
    sev = levels[0] if levels else None
    if preset is None:
        preset = LEVELED_PRESET if sev not in (None, "none") else DEFAULT_PRESET
    if backend not in BACKENDS:
        raise BadInputError(f"unknown --backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "cpu" and device not in ("auto", "cpu"):
        raise BadInputError(f"--device {device} needs --backend torch (the cpu backend runs on the cpu)")
    dev = pick_device(device) if backend == "torch" else "cpu"
    total = len(list_images(gt_dir))
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"degrading ({preset})", total=total, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            done = bar.tasks[task].completed
            bar.update(task, rate=f"{done / max(time.perf_counter() - start, 1e-9):.1f} faces/s")

        result = degrade_folder(
            gt_dir,
            out,
            preset=preset,
            severity=sev,
            seed=seed,
            dataset=dataset,
            backend=backend,
            device=dev,
            workers=workers,
            batch_size=batch_size,
            overwrite=overwrite,
            progress=advance,
        )
    console.print(
        f"degrade: wrote {result.written} LQ image(s), kept {result.skipped} already present, "
        f"in {result.out_dir} (params: {result.out_dir / PARAMS_FILE})"
    )


def register(app: typer.Typer) -> None:
    """Add the ``degrade`` command to the cfbench app."""
    app.command("degrade")(degrade_command)
