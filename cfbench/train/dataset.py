"""Training batches: a folder of aligned faces in memory, per-step random draws, LQ synthesized on the fly.

Every random choice of iteration `it` comes from `data.step_rng(seed, stage, it)` (and, under DDP, the rank), so
the batch of an iteration does not depend on how the run was interrupted and resumed; the degradation preset gets
one seed per image from the same stream. Unreadable images are skipped with a warning and counted.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from cfbench.errors import BadInputError
from cfbench.imageio import IMAGE_EXTENSIONS
from cfbench.train.data import Degrader, FaceSet, step_rng, to_tensor

STAGE_INDEX = {"stage1": 1, "stage2": 2, "stage3": 3}


def load_face_folder(folder: str | os.PathLike, size: int) -> tuple[FaceSet, list[str]]:
    """(faces, skipped names): every decodable square image of `folder`, resized to size x size (INTER_AREA down,
    INTER_CUBIC up), uint8 RGB. Images that fail to decode or are not square are skipped with a warning."""
    folder = resolve_folder(folder)
    if not folder.is_dir():
        raise BadInputError(f"training data folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    names, images, skipped = [], [], []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None or img.shape[0] != img.shape[1]:
            why = "cannot decode" if img is None else f"not square ({img.shape[1]}x{img.shape[0]})"
            warnings.warn(f"skipping training image {p}: {why}", stacklevel=2)
            skipped.append(p.name)
            continue
        if img.shape[0] != size:
            interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
            img = cv2.resize(img, (size, size), interpolation=interp)
        names.append(p.name)
        images.append(img[:, :, ::-1])
    if not images:
        raise BadInputError(f"no usable images in {folder} ({len(skipped)} skipped)")
    return FaceSet(tuple(names), np.ascontiguousarray(np.stack(images))), skipped


def resolve_folder(folder: str | os.PathLike) -> Path:
    """A relative folder that does not exist from the working directory is looked up from the checkout / install
    root (the parent of the `cfbench` package), so the bundled configs' `cfbench/data/demo/gt` works anywhere."""
    folder = Path(folder)
    if folder.is_absolute() or folder.exists():
        return folder
    alt = Path(__file__).resolve().parents[2] / folder
    return alt if alt.exists() else folder


class BatchMaker:
    """batch(it, n, mode) -> {"hq": (n, 3, S, S) in [-1, 1], "lq": ... (LQ stages)}; mode "small" uses
    `preset_small`, "large" (and stage II) `preset`."""

    def __init__(self, faces: FaceSet, stage: str, seed: int, hflip: bool, preset: str, preset_small: str) -> None:
        self.faces, self.stage, self.seed, self.hflip = faces, STAGE_INDEX[stage], seed, hflip
        self._presets = {"large": preset, "small": preset_small}
        self._degraders: dict[str, Degrader] = {}

    def degrader(self, mode: str) -> Degrader:
        if mode not in self._degraders:
            self._degraders[mode] = Degrader(self._presets[mode])
        return self._degraders[mode]

    def batch(self, it: int, n: int, lq_mode: str | None, rank: int = 0) -> dict[str, torch.Tensor]:
        rng = (
            step_rng(self.seed, self.stage, it)
            if rank == 0
            else np.random.default_rng([self.seed, self.stage, it, rank])
        )
        idx = rng.integers(len(self.faces), size=n)
        flips = rng.random(n) < 0.5 if self.hflip else np.zeros(n, bool)
        imgs = self.faces.images[idx]
        imgs = np.stack([im[:, ::-1] if f else im for im, f in zip(imgs, flips, strict=True)])
        hq = to_tensor(imgs)
        out = {"hq": hq * 2 - 1}
        if lq_mode is not None:
            out["lq"] = self.degrader(lq_mode)(hq, rng) * 2 - 1
        return out
