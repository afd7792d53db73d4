"""Training speed per stage: `cfbench train`'s iteration against the bare optimisation step, in one run.

    python benchmarks/bench_train.py [--config cfbench/configs/train/tiny.yaml] [--steps 6] [--repeats 3]
        [--batch N] [--device cpu|cuda] [--amp auto|bf16|off] [--official] [--json PATH]

Ours: `Trainer.train_step()`, the whole iteration of the loop: the batch of the iteration built from the faces in
memory (crops, flips, LQ synthesis with the degradations preset), the fixed coder's HQ code targets (cached per face),
the generator losses, backward, Adam, the discriminator step when active, schedulers, EMA.
Bare: the same model, losses and optimizer on one prebuilt batch: forward, the stage's loss, backward, Adam step;
no data, no EMA, no schedulers. Ratio = ours it/s / bare it/s (1 = the machinery costs nothing; what is below 1 is
mostly the LQ synthesis). Each timing after one untimed warm-up iteration, CUDA synchronised around it;
--repeats alternating repeats of both, median.

`--official` trains the official-size variants (`vqgan` / `codeformer`, 512x512) instead of the config's models, at
--batch (default 4) with the config's losses (no perceptual loss unless its weights are present): the GPU numbers of
the issue, with peak memory on CUDA.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import host_description  # noqa: E402  (a sibling script, not a package)

from cfbench.train.config import STAGE_NAMES, _merge, config_from_dict  # noqa: E402
from cfbench.train.loop import Trainer  # noqa: E402

OFFICIAL = {"stage1": {"model": {"variant": "vqgan", "params": {}}}}
OFFICIAL.update({s: {"model": {"variant": "codeformer", "params": {}}} for s in ("stage2", "stage3")})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(trainer: Trainer, steps: int) -> float:
    trainer.train_step()
    _sync(trainer.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    _sync(trainer.device)
    return steps / (time.perf_counter() - t0)


def time_bare(trainer: Trainer, steps: int) -> float:
    batch = {k: v.to(trainer.device) for k, v in trainer.make_batch(1).items()}
    if trainer.fixed is not None:
        batch["idx"] = trainer.code_targets(batch["hq"], batch["key"])
    mode, w = trainer.lq_mode(1)
    batch.update(mode=mode, w=w)

    def step() -> None:
        trainer.opt_g.zero_grad(set_to_none=True)
        with trainer._autocast():
            out = trainer.losses(batch, 1)
        out.loss.backward()
        trainer.opt_g.step()

    step()
    _sync(trainer.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(trainer.device)
    return steps / (time.perf_counter() - t0)


def bench_stage(raw: dict[str, Any], stage: str, steps: int, repeats: int, out: Path) -> dict[str, Any]:
    trainer = Trainer(config_from_dict(raw, stage), out / stage, echo=lambda s: None)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    ours, bare = [], []
    for _ in range(repeats):  # alternated, median: a load spike on a shared machine hits one repeat, not a side
        ours.append(time_ours(trainer, steps))
        bare.append(time_bare(trainer, steps))
    ours, bare = statistics.median(ours), statistics.median(bare)
    row = {
        "stage": stage,
        "model": trainer.cfg.model.variant,
        "params_m": round(sum(p.numel() for p in trainer.net.parameters()) / 1e6, 2),
        "batch": trainer.stage.batch,
        "amp": str(trainer.amp).removeprefix("torch.") if trainer.amp else "off",
        "ours_it_s": round(ours, 3),
        "bare_it_s": round(bare, 3),
        "ratio": round(ours / bare, 3),
    }
    if trainer.device.type == "cuda":
        row["peak_gib"] = round(torch.cuda.max_memory_allocated(trainer.device) / 2**30, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=Path("cfbench/configs/train/tiny.yaml"))
    p.add_argument("--steps", type=int, default=6, help="timed iterations per stage and pipeline")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats of both timings (median)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--device", default=None, help="default: the config's run.device")
    p.add_argument("--amp", default=None, choices=("auto", "bf16", "off"))
    p.add_argument("--official", action="store_true", help="official-size models at 512x512")
    p.add_argument("--stages", default=",".join(STAGE_NAMES))
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    raw = yaml.safe_load(a.config.read_text())
    run = {k: v for k, v in {"device": a.device, "amp": a.amp}.items() if v is not None}
    top: dict[str, Any] = {"run": {**run, "ckpt_every": 10**9}, "losses": {"perceptual": 0}, "perceptual": "none"}
    if a.batch is not None:
        top["batch"] = a.batch
    elif a.official:
        top["batch"] = 4
    raw = _merge(raw, top)
    for stage in STAGE_NAMES:  # no init files: speed does not depend on the weights
        section = {k: v for k, v in raw.get(stage, {}).items() if k not in ("init", "vqgan", "init_d")}
        if a.batch is not None or a.official:
            section.pop("batch", None)
        raw[stage] = _merge(section, OFFICIAL[stage]) if a.official else section
    print(host_description())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for stage in a.stages.split(","):
            row = bench_stage(raw, stage, a.steps, a.repeats, Path(tmp))
            rows.append(row)
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    if a.json:
        a.json.write_text(json.dumps({"host": host_description(), "config": str(a.config), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
