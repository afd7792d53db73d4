"""Export a three-stage run as the bundled demo checkpoint: float16 safetensors, its model card, its training log.

    python -m cfbench.train.bundle RUN_DIR --config cfbench/configs/train/codeformer_tiny.yaml \
        --out cfbench/weights_bundled/codeformer_tiny.safetensors

RUN_DIR holds `stage1/`, `stage2/`, `stage3/` as written by `cfbench train` (scripts/train_bundled.sh makes it).
Writes OUT (the stage-III EMA weights as float16, the card as JSON in the metadata under `cfbench.model_card`),
OUT's `.card.yaml` and `.train_log.csv` beside it. The card's held-out numbers are measured on the float16-rounded
weights, i.e. on what the file loads as.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from cfbench import __version__
from cfbench.atomic import atomic_path, atomic_write_bytes
from cfbench.data.faces import resize_face
from cfbench.errors import BadInputError
from cfbench.imageio import read_image
from cfbench.metrics.niqe import MIN_SIZE as NIQE_MIN_SIZE
from cfbench.metrics.psnr_ssim import PSNR, SSIM
from cfbench.metrics.registry import get_metric
from cfbench.models import load_checkpoint, save_checkpoint
from cfbench.restoration import restore_batch
from cfbench.train.card_targets import TRADEOFF_SHAPE, targets, w_tradeoff
from cfbench.train.config import STAGE_NAMES, TrainConfig, load_config
from cfbench.train.dataset import Degrader, resolve_folder

CARD_KEY = "cfbench.model_card"
EVAL_WS = (0.0, 0.5, 1.0)
EVAL_PRESETS = ("codeformer-train-small", "codeformer-train")
PURPOSE = (
    "A demo model, not a restoration model of research quality: it exists so that `cfbench restore`, the default "
    "`cfbench eval`, the regression gate and the tests run offline on a real trained CodeFormer. Its numbers say "
    "nothing about CodeFormer; use the official codeformer.pth for any real evaluation. heldout_eval shows what it "
    "does on faces it never saw; verdicts says whether restoring at w = 1 keeps the LQ's PSNR and the GT's colours "
    "(targets) and whether its w trade-off has CodeFormer's shape (w_tradeoff)."
)
DEPARTURES = (
    "a small variant (see arch) instead of the official 512-channel-top CodeFormer",
    "perceptual: none and no GAN in any stage (no VGG/LPIPS weights offline; an adversarial term does not help in "
    "a few hundred steps); the official stages use LPIPS and an adaptive hinge GAN",
    "stage I on random 192x192 crops of the faces, batch 2 (official: whole 512 faces, batch 32)",
    "stage I restarts dead codes every 50 iterations (codebook_restart; not in the official training): without it "
    "this short run collapsed to 3 of 256 codes",
    "stages II and III at batch 1 (official: 32 and 24)",
    "hundreds of iterations with a cosine LR decay instead of 1.6M / 500k / 150k",
    "stage III at w = 1 on the small degradation only (official: w in {1, 1.3} and the large degradation)",
    "EMA decay 0.99 (official: 0.995 / 0.997), because the runs are short",
    "weights stored as float16",
)


def half_rounded(net: nn.Module) -> nn.Module:
    """A float32 copy of `net` whose floating tensors went through float16 (what a float16 file loads as)."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        for t in out.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    return out


def read_log(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def merged_log(run: Path) -> str:
    """The three stages' log.csv as one CSV with a leading `stage` column (columns: the union, in first-seen order)."""
    rows, keys = [], ["stage"]
    for stage in STAGE_NAMES:
        for row in read_log(run / stage / "log.csv"):
            rows.append({"stage": stage, **row})
            keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def first_losses(rows: list[dict[str, str]], n: int = 10) -> dict[str, float]:
    """Mean of each logged value over the first `n` rows (the card's final_losses is the last 10)."""
    head = rows[:n]
    keys = [k for k in head[0] if k not in ("step", "lr")]
    return {k: round(float(np.mean([float(r[k]) for r in head if r.get(k)])), 5) for k in keys if head[0].get(k)}


def chroma_correlation(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per image (N,): the Pearson correlation over pixels of the BT.601 chroma channels (Cb, Cr) of x and ref,
    (N, 3, H, W) RGB in [0, 1], averaged over the two channels. 1: the colours vary where the reference's do; near 0:
    one tint everywhere (a sepia image), however saturated."""
    m = x.new_tensor([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])

    def centred(img: torch.Tensor) -> torch.Tensor:
        c = torch.einsum("kc,nchw->nkhw", m.to(img), img).flatten(2)
        return c - c.mean(2, keepdim=True)

    a, b = centred(x.double()), centred(ref.double())
    norm_a, norm_b = a.norm(dim=2), b.norm(dim=2)
    flat = (norm_a < 1e-6 * a.shape[2] ** 0.5) | (norm_b < 1e-6 * b.shape[2] ** 0.5)  # a constant channel: 0
    corr = torch.where(flat, 0.0, (a * b).sum(2) / (norm_a * norm_b).clamp_min(1e-30))
    return corr.mean(1)


def image_scores(x: torch.Tensor, hq: torch.Tensor, extra: dict[str, Any] | None = None) -> dict[str, float]:
    """Means over the batch of PSNR (dB), SSIM (RGB, 8-bit, whole image) and `chroma_correlation` to `hq`, then of
    each metric object of `extra` (column name -> built metric; NaN values, e.g. no face found, left out)."""
    x = x.clamp(0, 1).mul(255).round().div(255)
    out = {
        "psnr": round(PSNR().compute(x, hq).mean().item(), 2),
        "ssim": round(SSIM().compute(x, hq).mean().item(), 4),
        "chroma_corr": round(chroma_correlation(x, hq).mean().item(), 3),
    }
    for name, metric in (extra or {}).items():
        out[name] = round(torch.nanmean(metric.compute(x, hq).double()).item(), 4)
    return out


def heldout_faces(paths: list[Path], size: int) -> torch.Tensor:
    """The faces of `paths` as float32 (N, 3, size, size) RGB in [0, 1] (the eval resize policy)."""
    return torch.stack([resize_face(read_image(p), size) for p in paths])


@torch.inference_mode()
def heldout_numbers(net: nn.Module, paths: list[Path], seed: int, adain: bool = True) -> dict[str, Any]:
    """`image_scores` over the held-out faces (at the model's size), per LQ preset: the LQ input and the
    restorations at each w of EVAL_WS (transformer lookup; AdaIN on by default, what `cfbench restore` does), with
    the metrics of the w trade-off (`card_targets.TRADEOFF_SHAPE`) for models of at least NIQE's minimum size (the
    test suite's 64-pixel models get the first three only). Per-face LQ seeds are
    `degradations.derive_seed(seed, "heldout", file name)`."""
    from degradations import derive_seed

    net = net.eval()
    hq = heldout_faces(paths, net.config.img_size)
    sized = net.config.img_size >= NIQE_MIN_SIZE
    extra = {name: get_metric(name).build("cpu") for name in TRADEOFF_SHAPE} if sized else {}
    out: dict[str, Any] = {}
    for preset in EVAL_PRESETS:
        lq = Degrader(preset).with_seeds(hq, [derive_seed(seed, "heldout", p.name) for p in paths])
        row: dict[str, Any] = {"lq": image_scores(lq, hq, extra)}
        for w in EVAL_WS:
            restored = torch.cat([restore_batch(net, x[None], w, adain=adain) for x in lq])
            row[f"w={w:g}"] = image_scores(restored, hq, extra)
        out[preset] = row
    return out


@torch.inference_mode()
def reconstruction_numbers(vqgan: nn.Module, paths: list[Path]) -> dict[str, float]:
    """`image_scores` of the stage-I VQGAN's reconstruction of the held-out HQ faces: the ceiling of the codebook."""
    vqgan = vqgan.eval()
    hq = heldout_faces(paths, vqgan.config.img_size)
    return image_scores(torch.cat([vqgan(x[None] * 2 - 1)[0].add(1).div(2) for x in hq]), hq)


def stage_summary(run: Path, stage: str) -> dict[str, Any]:
    card_path = run / stage / f"{stage}.card.yaml"
    if not card_path.is_file():
        raise BadInputError(f"{card_path} is missing: run `cfbench train {stage}` into {run / stage} first")
    card = yaml.safe_load(card_path.read_text())
    st = card["config"]["stage"]
    return {
        "steps": card["steps"],
        "batch": st["batch"],
        "lr": st["lr_g"],
        "crop": card["config"]["data"].get("crop"),
        "frozen": st["frozen"],
        "losses_used": card["losses_used"],
        "perceptual": card["perceptual"],
        "first_losses": first_losses(read_log(run / stage / "log.csv")),
        "final_losses": card["final_losses"],
        "seconds": card["seconds"],
        "it_per_s": card["it_per_s"],
        "lq_presets": card["data"]["lq_presets"],
    }


def build_card(run: Path, config: Path, cfg: TrainConfig, net: nn.Module, heldout: dict[str, Any]) -> dict:
    """The model card of the run trained with `config` (`cfg`: its stage-III config) and exported as `net`."""
    stages = {s: stage_summary(run, s) for s in STAGE_NAMES}
    presets = {p: heldout[p] for p in EVAL_PRESETS}
    s1 = yaml.safe_load((run / "stage1" / "stage1.card.yaml").read_text())
    return {
        "name": "codeformer_tiny (cfbench bundled demo checkpoint)",
        "purpose": PURPOSE,
        "arch": {"variant": cfg.model.variant, "params": sum(p.numel() for p in net.parameters())},
        "storage_dtype": "float16",
        "retrain": "scripts/train_bundled.sh (cfbench train stage1|stage2|stage3 with the config below, then "
        "python -m cfbench.train.bundle)",
        "config_file": str(config),
        "trained_with": {
            "cfbench": __version__,
            "torch": str(torch.__version__),
            "platform": platform.platform(),
            "device": "cpu",
            "threads": cfg.run.threads,
            "seed": cfg.run.seed,
        },
        "data": {
            "folder": str(cfg.data.folder),
            "train_images": s1["data"]["images"],
            "skipped": s1["data"]["skipped"],
            "heldout": list(cfg.data.exclude),
            "hflip": cfg.data.hflip,
            "licence": "the faces are FFHQ / CelebA-HQ images (non-commercial licences; see the folder's "
            "SOURCES.md), so this checkpoint is for non-commercial demo use",
        },
        "stages": stages,
        "train_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        "departures_from_official": list(DEPARTURES),
        "heldout_eval": {
            "protocol": "mean over the held-out faces; PSNR dB / SSIM on RGB, 8-bit, whole 512 face; chroma_corr: "
            "correlation of the Cb/Cr channels with the GT's (1 = the GT's colours, ~0 = one tint); LQ from each "
            "degradations preset with seeds derive_seed(seed, 'heldout', file name); restored with the transformer "
            "lookup and AdaIN; identity_cos[dlib], lmd[dlib] and niqe are cfbench's metrics of those names, means "
            "over the faces dlib finds",
            **heldout,
        },
        "verdicts": {"targets": targets(presets), "w_tradeoff": w_tradeoff(presets)},
    }


def export(run: Path, config: Path, out: Path) -> dict[str, Any]:
    """Write OUT, OUT.card.yaml and OUT.train_log.csv from RUN's stage-III weights; returns the card."""
    cfg = load_config(config, "stage3")
    weights = run / "stage3" / "stage3.safetensors"
    if not weights.is_file():
        raise BadInputError(f"{weights} is missing: run the three stages first (scripts/train_bundled.sh)")
    net = half_rounded(load_checkpoint(weights))
    folder = resolve_folder(cfg.data.folder)
    paths = [folder / n for n in cfg.data.exclude]
    heldout = heldout_numbers(net, paths, cfg.run.seed)
    heldout["stage1_reconstruction_of_hq"] = reconstruction_numbers(
        load_checkpoint(run / "stage1" / "stage1.safetensors"), paths
    )
    card = build_card(run, config, cfg, net, heldout)
    meta = {CARD_KEY: json.dumps(card), "cfbench.params": "params_ema", "cfbench.stage": "stage3"}
    save_checkpoint(copy.deepcopy(net).half(), out, extra=meta)
    card["file_mb"] = round(out.stat().st_size / 1e6, 2)
    stem = out.with_suffix("")
    with atomic_path(stem.with_name(stem.name + ".card.yaml")) as tmp:
        tmp.write_text(yaml.safe_dump(card, sort_keys=False, width=120))
    atomic_write_bytes(stem.with_name(stem.name + ".train_log.csv"), merged_log(run).encode())
    reloaded = load_checkpoint(out)
    ref = net.state_dict()
    if not all(torch.equal(v, ref[k]) for k, v in reloaded.state_dict().items()):
        raise RuntimeError(f"{out} does not reload as the weights that were evaluated")
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="folder with stage1/, stage2/, stage3/ from cfbench train")
    p.add_argument("--config", type=Path, required=True, help="the train config the run used")
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    a = p.parse_args(argv)
    card = export(a.run, a.config, a.out)
    print(f"wrote {a.out} ({card['file_mb']} MB); held-out: {json.dumps(card['heldout_eval'][EVAL_PRESETS[0]])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
