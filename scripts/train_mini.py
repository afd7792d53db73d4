"""Train the bundled `codeformer_mini` demo checkpoint on CPU (cfbench.train.minimal) and write its model card.

    /work/venv/bin/python scripts/train_mini.py --out cfbench/weights_bundled

Writes <out>/codeformer_mini.safetensors (float16 weights, config + model card JSON in the metadata),
<out>/MODEL_CARD.md and <out>/train_log.csv. Resumable: re-running with the same --work-dir continues from the last
state (every --ckpt-every seconds). Every number in the card is measured in this run; none is typed in.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cfbench import __version__
from cfbench.imageio import read_image, write_image
from cfbench.models import MODEL_VARIANTS, load_checkpoint
from cfbench.restoration import restore_batch
from cfbench.train.minimal import (
    CARD_KEY,
    STAGE_NAMES,
    MinimalTrainer,
    TrainConfig,
    evaluate_heldout,
    evaluate_vqgan,
    half_rounded,
    save_half,
)
from cfbench.weights import cfbench_home

EVAL_PRESETS = ("celeba-test", "codeformer-train")
EVAL_WS = (0.0, 0.5, 1.0)


def parse_args() -> tuple[argparse.Namespace, TrainConfig]:
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("cfbench/weights_bundled"), help="folder for the outputs")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=cfbench_home() / "train" / "minimal",
        help="resumable training state and previews",
    )
    p.add_argument("--no-resume", action="store_true", help="ignore a state file in --work-dir")
    p.add_argument("--faces", default=d.faces, help="folder of aligned HQ faces")
    p.add_argument("--seed", type=int, default=d.seed)
    for stage, name in ((1, "s1"), (2, "s2"), (3, "s3")):
        p.add_argument(f"--{name}-steps", type=int, default=d.steps(stage))
        p.add_argument(f"--{name}-lr", type=float, default=d.lr(stage))
        p.add_argument(
            f"--{name}-budget",
            type=float,
            default=d.stage_budget_s[stage - 1],
            help=f"wall-clock cap of stage {stage} in seconds",
        )
    p.add_argument("--s1-crop", type=int, default=d.s1_crop)
    p.add_argument("--s1-batch", type=int, default=d.s1_batch)
    p.add_argument(
        "--s1-restart-every",
        type=int,
        default=d.s1_restart_every,
        help="stage-I steps between dead-code restarts (0: never)",
    )
    p.add_argument("--variant", default=d.variant, help="CodeFormer variant to train")
    p.add_argument("--vqgan-variant", default=d.vqgan_variant, help="its stage-I VQGAN variant")
    p.add_argument("--total-budget", type=float, default=d.total_budget_s, help="cap on all stages, seconds")
    p.add_argument("--ckpt-every", type=float, default=d.ckpt_every_s, help="seconds between state saves")
    p.add_argument("--threads", type=int, default=d.threads)
    a = p.parse_args()
    cfg = TrainConfig(
        faces=a.faces,
        seed=a.seed,
        variant=a.variant,
        vqgan_variant=a.vqgan_variant,
        s1_steps=a.s1_steps,
        s1_lr=a.s1_lr,
        s1_crop=a.s1_crop,
        s1_batch=a.s1_batch,
        s1_restart_every=a.s1_restart_every,
        s2_steps=a.s2_steps,
        s2_lr=a.s2_lr,
        s3_steps=a.s3_steps,
        s3_lr=a.s3_lr,
        stage_budget_s=(a.s1_budget, a.s2_budget, a.s3_budget),
        total_budget_s=a.total_budget,
        ckpt_every_s=a.ckpt_every,
        threads=a.threads,
    )
    return a, cfg


def restore_demo(net: torch.nn.Module, folder: Path) -> list[str]:
    """Restore the bundled demo faces at each w into `folder` (previews, not shipped); returns a check per face."""
    from cfbench.data.demo import demo_lq_paths

    notes = []
    with torch.inference_mode():
        for path in demo_lq_paths():
            lq = read_image(path)[None]
            outs = [restore_batch(net, lq, w, adain=True) for w in EVAL_WS]
            ok = all(o.shape == lq.shape and bool(torch.isfinite(o).all()) for o in outs)
            write_image(folder / f"{path.stem}_grid.png", torch.cat([lq[0], *(o[0] for o in outs)], dim=2))
            diff = (outs[1] - outs[0]).abs().mean().item()
            notes.append(f"{path.name}: finite={ok}, mean |w0.5 - w0| = {diff:.4f}")
    return notes


def card_markdown(card: dict, command: str) -> str:
    cfg, ev = card["train_config"], card["heldout"]
    stage_rows = "\n".join(
        f"| {s['name']} | {s['steps_run']} / {s['steps_planned']} | {s['batch']} | {s['input']} | {s['lr']:g} | "
        f"{s['losses']} | {s['trainable']} | {s['seconds']:.0f} |"
        for s in card["stages"]
    )
    loss_rows = "\n".join(
        f"| {stage} | {k} | {v['first'][k]:.4g} | {v['last'][k]:.4g} |"
        for stage, v in card["loss_first_last_20"].items()
        for k in v["first"]
    )
    eval_rows = "\n".join(
        f"| {preset} (`{ev[preset]['degrader']}`) | {ev[preset]['lq_psnr']:.2f} | "
        + " | ".join(f"{ev[preset][f'w{w:g}_psnr']:.2f}" for w in EVAL_WS)
        + " |"
        for preset in EVAL_PRESETS
    )
    w_head = " | ".join(f"restored w={w:g}" for w in EVAL_WS)
    return f"""# {cfg["variant"]}: bundled demo checkpoint

**A demo model, not a restoration model of research quality.** It exists so that `cfbench restore` and the default
`cfbench eval` run offline, on CPU, without the official CodeFormer weights (which cannot be downloaded here). Its
numbers say nothing about CodeFormer; use the official `codeformer.pth` for any real evaluation. It will be replaced
by the output of the full training implementation.

- File: `{cfg["variant"]}.safetensors`, {card["file_mb"]:.1f} MB, **weights stored as float16** (to stay under 20 MB;
  `cfbench.models.load_checkpoint` loads them into a float32 model). All numbers below were measured with the
  float16-rounded weights. The same card is in the file's metadata under `{CARD_KEY}` (JSON).
- Architecture: `{cfg["variant"]}` (`cfbench/configs/models/{cfg["variant"]}.yaml`: {card["arch_note"]}),
  {card["params"]:,} parameters.
- Trained by: `scripts/train_mini.py` -> `cfbench/train/minimal.py`, cfbench {card["cfbench_version"]},
  torch {card["torch_version"]}, CPU, {cfg["threads"]} thread(s), seed {cfg["seed"]}.

## Command

```
{command}
```

Training wall time (all stages, measured, single thread): **{card["train_seconds"] / 60:.1f} min**
({card["train_seconds"]:.0f} s; the whole script including data loading, evaluation and saving took
{card["script_seconds"] / 60:.1f} min). The log of every step is `train_log.csv`
(stage, step, elapsed_s, lr and the losses).

## Data

- {card["data"]["n_train"]} real aligned HQ faces of `{card["data"]["folder"]}` (FFHQ / CelebA-HQ images copied from
  public repositories; see that folder's SOURCES.md: their licences are non-commercial, so this checkpoint is for
  non-commercial demo use), resized to 512 with cv2.INTER_AREA, random horizontal flips.
- Held out (never trained on; used for the numbers below): {", ".join(card["data"]["heldout"])}.
- LQ synthesis: stage II `{card["data"]["lq_stage2"]}`, stage III `{card["data"]["lq_stage3"]}`.

## Stages (simplified from the official ones; see `cfbench/train/minimal.py`)

| stage | steps run / planned | batch | input | lr (cosine to 0.1x) | losses | trainable | seconds |
|---|---|---|---|---|---|---|---|
{stage_rows}

Departures from the official training (`shared/reference/codeformer.md` section 3):
{chr(10).join("- " + d for d in card["departures"])}

## Losses (mean of the first and the last 20 logged steps of each stage)

| stage | loss | first 20 | last 20 |
|---|---|---|---|
{loss_rows}

## Measured quality on the {len(card["data"]["heldout"])} held-out faces (PSNR in dB, 8-bit RGB, whole 512 face, mean)

Stage-I VQGAN reconstruction of the HQ faces: **{ev["stage1_recon_psnr"]:.2f} dB**.

LQ made from the held-out GT with the named preset (one fixed seed per face). Restored with the transformer lookup
and AdaIN, as `cfbench restore` does.

| LQ preset | LQ input | {w_head} |
|---|---|---|---|---|
{eval_rows}

PSNR favours blur; a restoration can be better looking and score lower, or worse looking and score higher. Four
faces are far too few for anything but a sanity check.

Demo faces (`cfbench/data/demo`, real LQ, no ground truth, so no score): {"; ".join(card["demo_check"])}.

## Limitations

- A demo model, not a restoration model of research quality: trained for minutes on {card["data"]["n_train"]} faces,
  no perceptual or adversarial loss, so outputs are smooth/blurry; identity is often not preserved; the codebook
  and transformer are far from converged.
- Fidelity weight w: {card["w_note"]}
- Not comparable with any published CodeFormer number.
"""


def main() -> int:
    args, cfg = parse_args()
    command = "/work/venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv)
    start = time.perf_counter()
    trainer = MinimalTrainer(cfg, args.work_dir)
    trainer.run(resume=not args.no_resume)
    st = trainer.state
    train_seconds = sum(st.elapsed.values())
    per_stage = ", ".join(f"{STAGE_NAMES[s]} {t:.0f}s" for s, t in st.elapsed.items())
    print(f"training done: {train_seconds:.0f}s ({per_stage})")

    torch.set_num_threads(cfg.threads)
    net = half_rounded(trainer.net).eval()
    vq_psnr = evaluate_vqgan(trainer.vq, trainer.heldout)
    heldout = evaluate_heldout(net, trainer.heldout, EVAL_PRESETS, cfg.seed, EVAL_WS)
    heldout["stage1_recon_psnr"] = vq_psnr
    print(json.dumps(heldout, indent=1))
    demo = restore_demo(net, args.work_dir / "demo")
    print("\n".join(demo))

    w_note = (
        f"the fusion blocks were zero-initialised and trained for {st.steps_done[3]} steps with L1 at w = "
        f"{cfg.s3_w:g} on `{cfg.s3_preset}` LQ; w = 0.5 and 1 are measured above, next to w = 0."
        if st.steps_done[3]
        else "stage III did not run: the fusion blocks are zero-initialised, so every w gives the w = 0 output."
    )
    stages = [
        dict(
            name=STAGE_NAMES[1],
            steps_run=st.steps_done[1],
            steps_planned=cfg.s1_steps,
            batch=cfg.s1_batch,
            input=f"HQ random {cfg.s1_crop}px crops",
            lr=cfg.s1_lr,
            losses="L1 + codebook (beta 0.25)",
            trainable="VQGAN (encoder, codebook, generator)",
            seconds=st.elapsed[1],
        ),
        dict(
            name=STAGE_NAMES[2],
            steps_run=st.steps_done[2],
            steps_planned=cfg.s2_steps,
            batch=cfg.s2_batch,
            input="512 LQ",
            lr=cfg.s2_lr,
            losses="0.5 CE(codes) + 1.0 MSE(lq_feat, code feat)",
            trainable="encoder + transformer",
            seconds=st.elapsed[2],
        ),
        dict(
            name=STAGE_NAMES[3],
            steps_run=st.steps_done[3],
            steps_planned=cfg.s3_steps,
            batch=cfg.s3_batch,
            input="512 LQ",
            lr=cfg.s3_lr,
            losses=f"L1 at w={cfg.s3_w:g}",
            trainable="fuse_convs_dict only",
            seconds=st.elapsed[3],
        ),
    ]
    card = {
        "name": f"{cfg.variant} (cfbench bundled demo checkpoint)",
        "arch_note": MODEL_VARIANTS.get(cfg.variant).description,
        "purpose": "a demo model, not a restoration model of research quality",
        "cfbench_version": __version__,
        "torch_version": torch.__version__,
        "platform": platform.platform(),
        "params": sum(p.numel() for p in net.parameters()),
        "storage_dtype": "float16",
        "train_config": asdict(cfg),
        "perceptual": "none",
        "gan": "none",
        "ema": "none",
        "stages": stages,
        "train_seconds": round(train_seconds, 1),
        "data": {
            "folder": cfg.faces,
            "n_train": len(trainer.train_faces),
            "heldout": list(trainer.heldout.names),
            "lq_stage2": trainer._degraders[2].name,
            "lq_stage3": trainer._degraders[3].name,
        },
        "departures": [
            "stage I: no LPIPS/perceptual loss (perceptual: none; no VGG weights offline), no GAN, no EMA; random "
            f"{cfg.s1_crop}px crops, batch {cfg.s1_batch}, instead of 512 faces in batches of 32",
            "stage II: batch 1 instead of 32; HQ code targets computed once per face and flip with the frozen "
            "stage-I VQGAN (as the official precomputed latent_gt); no EMA",
            "stage III: only the fusion blocks train (official also trains encoder and transformer with the stage-II "
            "losses), L1 only at a fixed w (official: w in {1, 1.3}, + LPIPS + GAN), last conv of every "
            "scale/shift branch zero-initialised",
            "all stages: Adam (0.9, 0.99) with much higher learning rates and a cosine decay to 0.1x over a few "
            "hundred steps instead of 10^5-10^6 iterations; wall-clock caps per stage",
            "weights stored as float16",
        ],
        "loss_first_last_20": trainer.loss_summary(20),
        "heldout": heldout,
        "eval_protocol": "PSNR dB, 8-bit RGB, whole 512 face, mean over held-out faces; LQ seeds "
        f"degradations.derive_seed({cfg.seed}, 'aligned_hq', name); restore with AdaIN, transformer",
        "demo_check": demo,
        "w_note": w_note,
        "command": command,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / f"{cfg.variant}.safetensors"
    trainer.write_log(args.out / "train_log.csv")
    card["script_seconds"] = round(time.perf_counter() - start, 1)
    card["file_mb"] = 0.0
    save_half(trainer.net, ckpt, {CARD_KEY: json.dumps(card)})
    card["file_mb"] = ckpt.stat().st_size / 1e6  # the size of the file, measured after writing it
    save_half(trainer.net, ckpt, {CARD_KEY: json.dumps(card)})
    (args.out / "MODEL_CARD.md").write_text(card_markdown(card, command))

    # the shipped file must reproduce what was measured
    loaded = load_checkpoint(ckpt)
    ref = dict(net.state_dict())
    same = all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    print(f"wrote {ckpt} ({card['file_mb']:.1f} MB); reload matches the evaluated weights: {same}")
    return 0 if same and np.isfinite(train_seconds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
