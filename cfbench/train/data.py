"""Training data for the minimal trainer: aligned HQ faces cached in memory, crops, flips and LQ synthesis.

Every random choice of a step is drawn from `step_rng(seed, stage, step)`, a NumPy Generator keyed by the step, so
a resumed run draws exactly what an uninterrupted run would have drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from cfbench.errors import BadInputError
from cfbench.imageio import IMAGE_EXTENSIONS

FACE_SIZE = 512


@dataclass(frozen=True)
class FaceSet:
    """Aligned faces as uint8 RGB arrays (N, S, S, 3), with their file names."""

    names: tuple[str, ...]
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, names: Sequence[str]) -> FaceSet:
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise BadInputError(f"faces not in the set: {missing}")
        return FaceSet(tuple(names), self.images[[index[n] for n in names]])


def load_faces(folder: str | os.PathLike, size: int = FACE_SIZE) -> FaceSet:
    """Read every image of `folder` (sorted by name), resize to size x size with cv2.INTER_AREA when larger
    (INTER_CUBIC when smaller), and keep them in memory as uint8 RGB."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise BadInputError(f"no images in {folder}")
    images = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise BadInputError(f"cannot decode {p}")
        if img.shape[0] != img.shape[1]:
            raise BadInputError(f"{p} is {img.shape[1]}x{img.shape[0]}; aligned faces are square")
        if img.shape[0] != size:
            interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
            img = cv2.resize(img, (size, size), interpolation=interp)
        images.append(img[:, :, ::-1])
    return FaceSet(tuple(p.name for p in paths), np.ascontiguousarray(np.stack(images)))


def split_holdout(faces: FaceSet, every: int = 9) -> tuple[FaceSet, FaceSet]:
    """(train, held-out): the held-out faces are those at sorted positions every-1, 2*every-1, ... (4 of 36)."""
    held = [n for i, n in enumerate(faces.names) if i % every == every - 1]
    train = [n for n in faces.names if n not in held]
    return faces.subset(train), faces.subset(held)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB -> float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def step_rng(seed: int, stage: int, step: int) -> np.random.Generator:
    """The random stream of one training step (independent of how the run was interrupted and resumed)."""
    return np.random.default_rng([seed, stage, step])


def sample_batch(faces: FaceSet, rng: np.random.Generator, batch: int, crop: int | None = None) -> torch.Tensor:
    """`batch` faces drawn with replacement, each h-flipped with p = 0.5 and randomly cropped to crop x crop
    (None: the whole face). Returns float32 (batch, 3, c, c) in [0, 1]."""
    size = faces.images.shape[1]
    c = crop or size
    if c > size:
        raise BadInputError(f"crop {c} is larger than the faces ({size})")
    out = np.empty((batch, c, c, 3), np.uint8)
    for b in range(batch):
        img = faces.images[int(rng.integers(len(faces)))]
        y, x = (int(v) for v in rng.integers(0, size - c + 1, size=2))
        img = img[y : y + c, x : x + c]
        out[b] = img[:, ::-1] if rng.random() < 0.5 else img
    return to_tensor(out)


class Degrader:
    """HQ -> LQ synthesis. Uses the `degradations` package preset when importable, else `local_degrade`.

    `__call__(hq, rng)`: hq float32 (N, 3, H, W) in [0, 1] -> LQ of the same shape, 8-bit quantised, one seed per
    image drawn from `rng`. `name` says which implementation runs (recorded in the model card).
    """

    def __init__(self, preset: str) -> None:
        self.preset = preset
        try:
            import degradations

            self._pipeline = degradations.load_preset(preset)
            self.name = f"degradations:{preset}"
        except (ImportError, KeyError, ValueError, LookupError):
            self._pipeline = None
            self.name = "local:blur+bilinear+noise+jpeg"

    def __call__(self, hq: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        seeds = [int(rng.integers(0, 2**63)) for _ in range(hq.shape[0])]
        return self.with_seeds(hq, seeds)

    def with_seeds(self, hq: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        if self._pipeline is not None:
            return self._pipeline(hq, list(seeds))[0]
        return torch.stack([local_degrade(img, np.random.default_rng(s)) for img, s in zip(hq, seeds, strict=True)])


def local_degrade(hq: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Fallback degradation of one image (3, H, W) in [0, 1]: isotropic Gaussian blur (sigma 1-10), bilinear
    downsample by 2-12, Gaussian noise 0-15/255, JPEG 40-90, bilinear back; 8-bit quantised."""
    img = hq.permute(1, 2, 0).numpy().astype(np.float32)
    h, w = img.shape[:2]
    img = cv2.GaussianBlur(img, (41, 41), float(rng.uniform(1, 10)))
    scale = float(rng.uniform(2, 12))
    img = cv2.resize(img, (max(1, int(w / scale)), max(1, int(h / scale))), interpolation=cv2.INTER_LINEAR)
    img = np.clip(img + rng.normal(0, rng.uniform(0, 15) / 255, img.shape).astype(np.float32), 0, 1)
    quality = [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(40, 90))]
    _, buf = cv2.imencode(".jpg", (img[:, :, ::-1] * 255).round().astype(np.uint8), quality)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
    img = np.ascontiguousarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR).clip(0, 1))
    return torch.from_numpy(img).permute(2, 0, 1).mul(255).round().div(255)
