"""What a training run leaves in `out/` besides its resumable state: `log.csv` (one row per iteration),
`<stage>.safetensors` (the EMA generator weights, i.e. the official `params_ema`, with the model config in the
metadata: `cfbench.models.load_checkpoint` rebuilds it), `<stage>_d.safetensors` (the discriminator, when trained),
`<stage>.card.yaml` (the model card) and, where tensorboard is installed, `tb/`."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from cfbench.atomic import atomic_path, atomic_write_bytes
from cfbench.models import save_checkpoint
from cfbench.train.config import Stage, TrainConfig

LOG_KEYS = (
    "loss",
    "pixel",
    "perceptual",
    "g_gan",
    "d_weight",
    "codebook",
    "perplexity",
    "restarted",
    "feat",
    "ce",
    "token_acc",
)
LOG_KEYS_D = ("d_real", "d_fake")


def write_log(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The logged rows as CSV: step, lr, the known loss columns in a fixed order, then any others sorted."""
    keys = ["step", "lr", *LOG_KEYS, *LOG_KEYS_D]
    extra = sorted({k for r in rows for k in r} - set(keys))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys + extra, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_bytes(path, buf.getvalue().encode())


def final_losses(rows: list[dict[str, Any]], n: int = 10) -> dict[str, float]:
    """The mean of each logged value over the last `n` rows."""
    rows = rows[-n:]
    keys = sorted({k for r in rows for k in r} - {"step", "lr"})
    return {k: round(float(np.mean([r[k] for r in rows if k in r])), 5) for k in keys}


def open_tensorboard(out: Path):
    """A tensorboard SummaryWriter on `out/tb`, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"))


def _without_perceptual(stage: Stage) -> dict[str, Any]:
    used = stage.losses_used()
    used.pop("perceptual", None)
    return used


def export(
    out: Path,
    cfg: TrainConfig,
    *,
    step: int,
    generator: nn.Module,
    disc: nn.Module | None,
    rows: list[dict[str, Any]],
    images: int,
    skipped: list[str],
    degraders: list[str],
    perceptual: bool,
    device: torch.device,
    amp: torch.dtype | None,
    seconds: float,
    rate: float,
) -> dict[str, Any]:
    """Write the stage's weights (`generator`: the EMA copy), the discriminator's and the model card; returns the
    card with the paths of the weights and the card."""
    st = cfg.stage
    name = st.name
    meta = {"cfbench.params": "params_ema", "cfbench.stage": name, "cfbench.step": str(step)}
    weights = save_checkpoint(generator, out / f"{name}.safetensors", extra=meta)
    files = {"weights": weights.name}
    if disc is not None:
        files["discriminator"] = save_checkpoint(disc, out / f"{name}_d.safetensors", extra=meta).name
    card = {
        "name": name,
        "what": "cfbench training output; the weights are the EMA of the generator (official params_ema)",
        "files": {**files, "log": "log.csv", "state": "ckpt/last.pt"},
        "steps": step,
        "iters_configured": st.iters,
        "data": {
            "folder": str(cfg.data.folder),
            "images": images,
            "skipped": len(skipped),
            "skipped_names": skipped[:20],
            "lq_presets": ([cfg.data.preset] + ([cfg.data.preset_small] if st.w_schedule else [])) if st.lq else [],
            "degrader": degraders,
        },
        "losses_used": st.losses_used() if perceptual else _without_perceptual(st),
        "perceptual": st.perceptual if perceptual else "none",
        "final_losses": final_losses(rows),
        "device": str(device),
        "amp": str(amp).removeprefix("torch.") if amp else "off",
        "seconds": round(seconds, 2),
        "it_per_s": round(rate, 4) if math.isfinite(rate) else None,
        "config": cfg.to_dict(),
    }
    card_path = out / f"{name}.card.yaml"
    with atomic_path(card_path) as tmp:
        tmp.write_text(yaml.safe_dump(card, sort_keys=False))
    return {"weights": str(weights), "card": str(card_path), "steps": step, **card}
