"""``cfbench train stage1|stage2|stage3``: train one CodeFormer stage from a YAML config (cfbench/configs/train/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cfbench.cli.common import console

STAGE_HELP = {
    "stage1": "Stage I: the VQGAN codebook (L1 + perceptual + adaptive GAN + codebook), discriminator alongside.",
    "stage2": "Stage II: encoder + transformer code prediction (latent L2 + code CE); codebook and decoder frozen.",
    "stage3": "Stage III: fusion blocks, encoder and transformer with the official w schedule (image + token losses).",
}
DDP_NOTE = " Data-parallel: torchrun --nproc-per-node N -m cfbench train STAGE ... (batch = the total over processes)."


def _run(stage: str, config: Path, resume: bool, max_steps: int | None, out: Path, as_json: bool) -> None:
    from cfbench.train.config import load_config
    from cfbench.train.loop import Trainer

    cfg = load_config(config, stage)
    trainer = Trainer(cfg, out, echo=console.print, show_progress=not as_json)
    if trainer.group.main and (out / "ckpt" / "last.pt").exists() and not resume:
        console.print(f"note: {out} holds a previous run; starting fresh (pass --resume to continue it)")
    result = trainer.train(max_steps=max_steps, resume=resume)
    if not trainer.group.main:  # under torchrun only rank 0 reports
        return
    summary = {
        "stage": stage,
        "steps": result["steps"],
        "weights": result["weights"],
        "card": result["card"],
        "final_losses": result["final_losses"],
        "it_per_s": result["it_per_s"],
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        console.print(f"{stage}: {summary['steps']} steps, {summary['it_per_s']} it/s -> {summary['weights']}")


def _command(stage: str):
    def command(
        config: Annotated[Path, typer.Option("--config", "-c", help="Train YAML (see cfbench/configs/train/).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (weights, card, log, ckpt/).")] = Path(
            f"runs/{stage}"
        ),
        resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/ckpt/last.pt.")] = False,
        max_steps: Annotated[
            int | None, typer.Option("--max-steps", min=1, help="Stop after this many iterations in total.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary, no progress bar.")] = False,
    ) -> None:
        _run(stage, config, resume, max_steps, out, as_json)

    command.__doc__ = STAGE_HELP[stage] + DDP_NOTE
    return command


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group (stage1, stage2, stage3) to the cfbench app."""
    group = typer.Typer(help="Train the CodeFormer stages (official numbers in cfbench/configs/train/).")
    for stage in STAGE_HELP:
        group.command(stage, help=STAGE_HELP[stage] + DDP_NOTE)(_command(stage))
    app.add_typer(group, name="train")
