"""Measure a checkpoint the way the bundled model card does, without exporting anything.

    python -m cfbench.train.card_metrics [CHECKPOINT] [--config cfbench/configs/train/codeformer_tiny.yaml]
        [--no-adain]

Prints, as YAML, `cfbench.train.bundle.heldout_numbers` of CHECKPOINT (default: the bundled codeformer_tiny) on the
held-out faces of the config (its data.exclude, read from its data.folder): PSNR / SSIM / chroma correlation of the
LQ input and of the restorations at w = 0, 0.5, 1 for each card preset, plus `targets`: whether at w = 1 the restored
PSNR reaches the LQ's own PSNR and the chroma correlation reaches CHROMA_TARGET, and `w_tradeoff`: the best w of
identity, LMD and NIQE (`cfbench.train.card_targets`). `--no-adain` restores without the
AdaIN step (a diagnosis: how much of the result the feature statistics transfer carries).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from cfbench.models import load_checkpoint
from cfbench.train.bundle import heldout_numbers
from cfbench.train.card_targets import targets, w_tradeoff
from cfbench.train.config import load_config
from cfbench.train.dataset import resolve_folder
from cfbench.weights import weights_path

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train" / "codeformer_tiny.yaml"


def measure(checkpoint: str | Path, config: Path = DEFAULT_CONFIG, adain: bool = True) -> dict[str, Any]:
    """`heldout_numbers` of `checkpoint` (a file or a weights name) on `config`'s held-out faces, with `targets`."""
    cfg = load_config(config, "stage3")
    folder = resolve_folder(cfg.data.folder)
    path = Path(checkpoint) if Path(checkpoint).is_file() else weights_path(str(checkpoint))
    heldout = heldout_numbers(load_checkpoint(path), [folder / n for n in cfg.data.exclude], cfg.run.seed, adain)
    return {
        "checkpoint": str(path),
        "adain": adain,
        **heldout,
        "targets": targets(heldout),
        "w_tradeoff": w_tradeoff(heldout),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default="codeformer_tiny")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--no-adain", action="store_true")
    args = ap.parse_args(argv)
    print(yaml.safe_dump(measure(args.checkpoint, args.config, not args.no_adain), sort_keys=False, width=120))


if __name__ == "__main__":
    main()
