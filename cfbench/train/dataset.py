"""Training batches: a folder of aligned faces in memory, per-step random draws, LQ synthesized on the fly.

Every random choice of iteration `it` comes from `data.step_rng(seed, stage, it)` (and, under DDP, the rank), so
the batch of an iteration does not depend on how the run was interrupted and resumed; the degradation preset gets
one seed per image from the same stream. Unreadable images are skipped with a warning and counted.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from cfbench.errors import BadInputError
from cfbench.imageio import IMAGE_EXTENSIONS
from cfbench.train.data import Degrader, FaceSet, step_rng, to_tensor

STAGE_INDEX = {"stage1": 1, "stage2": 2, "stage3": 3}


def load_face_folder(folder: str | os.PathLike, size: int, exclude: Sequence[str] = ()) -> tuple[FaceSet, list[str]]:
    """(faces, skipped names): every decodable square image of `folder` whose name is not in `exclude`, resized to
    size x size (INTER_AREA down, INTER_CUBIC up), uint8 RGB. Images that fail to decode or are not square are
    skipped with a warning. A name of `exclude` that is not in the folder is an error (a typo would train on it)."""
    folder = resolve_folder(folder)
    if not folder.is_dir():
        raise BadInputError(f"training data folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    absent = sorted(set(exclude) - {p.name for p in paths})
    if absent:
        raise BadInputError(f"train config field 'data.exclude' names {absent[0]!r}, which is not an image of {folder}")
    paths = [p for p in paths if p.name not in set(exclude)]
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
    """batch(it, n, mode) -> {"hq": (n, 3, S, S) in [-1, 1], "lq": ... (LQ stages), "key": (n,) int64 face index
    * 2 + flip (which HQ image it is, for caching its code targets; -1 for crops)}; mode "small" uses
    `preset_small`, "large" (and stage II) `preset`. `crop` (stage I): random crop x crop patches."""

    def __init__(
        self,
        faces: FaceSet,
        stage: str,
        seed: int,
        hflip: bool,
        preset: str,
        preset_small: str,
        crop: int | None = None,
    ) -> None:
        size = faces.images.shape[1]
        if crop is not None and crop > size:
            raise BadInputError(f"train config field 'data.crop' ({crop}) is larger than the faces ({size})")
        self.faces, self.stage, self.seed, self.hflip, self.crop = faces, STAGE_INDEX[stage], seed, hflip, crop
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
        keys = torch.from_numpy(idx * 2 + flips).long()
        if self.crop is not None:
            c = self.crop
            corners = rng.integers(0, imgs.shape[1] - c + 1, size=(n, 2))
            imgs = np.stack([im[y : y + c, x : x + c] for im, (y, x) in zip(imgs, corners, strict=True)])
            keys = torch.full((n,), -1, dtype=torch.long)
        hq = to_tensor(imgs)
        out = {"hq": hq * 2 - 1, "key": keys}
        if lq_mode is not None:
            out["lq"] = self.degrader(lq_mode)(hq, rng) * 2 - 1
        return out
