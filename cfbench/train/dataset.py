"""Training batches: aligned faces in memory, per-iteration random draws, LQ synthesized on the fly.

Every random choice of iteration `it` comes from `step_rng(seed, stage, it)`, so the batch of an iteration does not
depend on how the run was interrupted and resumed, nor on the number of data-parallel processes (each builds its
slice of the same draw); the degradation preset gets one seed per image from the same stream. Unreadable images are
skipped with a warning and counted.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cfbench.data.faces import fit_face
from cfbench.errors import BadInputError
from cfbench.imageio import images_by_stem, read_image, to_uint8

STAGE_INDEX = {"stage1": 1, "stage2": 2, "stage3": 3}


@dataclass(frozen=True)
class FaceSet:
    """Aligned faces as uint8 RGB arrays (N, S, S, 3), with their file names."""

    names: tuple[str, ...]
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB -> float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def step_rng(seed: int, stage: int, step: int) -> np.random.Generator:
    """The random stream of one training step (independent of how the run was interrupted and resumed)."""
    return np.random.default_rng([seed, stage, step])


class Degrader:
    """HQ -> LQ with a `degradations` preset: `with_seeds(hq, seeds)` maps float32 (N, 3, H, W) in [0, 1] to LQ of
    the same shape (8-bit quantised), image i degraded with seeds[i]."""

    def __init__(self, preset: str) -> None:
        import degradations

        self._pipeline = degradations.load_preset(preset)
        self.name = f"degradations:{preset}"

    def with_seeds(self, hq: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        return self._pipeline(hq, list(seeds))[0]


def load_faces(spec: str | os.PathLike, size: int, exclude: Sequence[str] = ()) -> tuple[FaceSet, list[str]]:
    """(faces, skipped names) of `data.folder`: a folder of aligned faces (listed by `cfbench.imageio.images_by_stem`,
    in file-name order), or a dataset spec of the eval registry
    (`hf:NAME[:split]`, `folder:PATH`, `demo`, ...; its GT side). Faces are resized to size x size, uint8 RGB.
    Unreadable images are skipped with a warning and counted; a name of `exclude` (file names for a folder, ids
    for a dataset) that is not there is an error, so a typo cannot train on a held-out face."""
    folder = resolve_folder(spec)
    if folder.is_dir():
        return _load_folder(folder, size, exclude)
    from cfbench.data.registry import DATASETS

    if str(spec).partition(":")[0] in DATASETS:
        return _load_dataset(str(spec), size, exclude)
    raise BadInputError(f"training data folder not found: {folder} (or give a dataset spec such as hf:NAME[:split])")


def _check_exclude(exclude: Sequence[str], names: Sequence[str], where: str) -> set[str]:
    absent = sorted(set(exclude) - set(names))
    if absent:
        raise BadInputError(f"train config field 'data.exclude' names {absent[0]!r}, which is not an image of {where}")
    return set(exclude)


def _skip(skipped: list[str], name: str, where: str, why: str) -> None:
    warnings.warn(f"skipping training image {name} of {where}: {why}", stacklevel=3)
    skipped.append(name)


def _faceset(names: list[str], images: list[np.ndarray], skipped: list[str], where: str) -> tuple[FaceSet, list[str]]:
    if not images:
        raise BadInputError(f"no usable images in {where} ({len(skipped)} skipped)")
    return FaceSet(tuple(names), np.ascontiguousarray(np.stack(images))), skipped


def _load_folder(folder: Path, size: int, exclude: Sequence[str]) -> tuple[FaceSet, list[str]]:
    paths = sorted(images_by_stem(folder).values())  # by file name, the order the batches index
    excluded = _check_exclude(exclude, [p.name for p in paths], str(folder))
    names, images, skipped = [], [], []
    for p in paths:
        if p.name in excluded:
            continue
        try:
            images.append(fit_face(to_uint8(read_image(p)), size, str(p)))
        except BadInputError as exc:
            _skip(skipped, p.name, str(folder), str(exc))
            continue
        names.append(p.name)
    return _faceset(names, images, skipped, str(folder))


def _load_dataset(spec: str, size: int, exclude: Sequence[str]) -> tuple[FaceSet, list[str]]:
    from cfbench.data.registry import get_dataset

    ds = get_dataset(spec)
    if not ds.has_gt:
        raise BadInputError(f"train config field 'data.folder': dataset {spec} has no GT (HQ) images to train on")
    excluded = _check_exclude(exclude, ds.ids, spec)
    names, images, skipped = [], [], []
    for i, face_id in enumerate(ds.ids):
        if face_id in excluded:
            continue
        try:
            gt = ds.load(i).gt
        except BadInputError as exc:
            _skip(skipped, face_id, spec, str(exc))
            continue
        names.append(face_id)
        images.append(fit_face(to_uint8(gt), size, face_id))
    return _faceset(names, images, skipped, spec)


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

    def batch(self, it: int, n: int, lq_mode: str | None, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
        """Process `rank`'s share (n / world images, in rank order) of iteration `it`'s batch of n. Every process
        draws the whole batch from the same stream and builds only its slice, so the batch of an iteration does
        not depend on the number of processes: the shares of ranks 0..world-1 concatenated are the batch of n."""
        rng = step_rng(self.seed, self.stage, it)
        idx = rng.integers(len(self.faces), size=n)
        flips = rng.random(n) < 0.5 if self.hflip else np.zeros(n, bool)
        corners = rng.integers(0, self.faces.images.shape[1] - (self.crop or 0) + 1, size=(n, 2))
        seeds = rng.integers(0, 2**63, size=n)
        share = slice(rank * n // world, (rank + 1) * n // world)
        idx, flips, corners, seeds = idx[share], flips[share], corners[share], seeds[share]
        imgs = np.stack([im[:, ::-1] if f else im for im, f in zip(self.faces.images[idx], flips, strict=True)])
        keys = torch.from_numpy(idx * 2 + flips).long()
        if self.crop is not None:
            c = self.crop
            imgs = np.stack([im[y : y + c, x : x + c] for im, (y, x) in zip(imgs, corners, strict=True)])
            keys = torch.full((len(imgs),), -1, dtype=torch.long)
        hq = to_tensor(imgs)
        out = {"hq": hq * 2 - 1, "key": keys}
        if lq_mode is not None:
            out["lq"] = self.degrader(lq_mode).with_seeds(hq, [int(s) for s in seeds]) * 2 - 1
        return out


class IterationBatches(torch.utils.data.Dataset):
    """Item k is the batch of iteration first + k (`make_batch(it)`), so a DataLoader over it with any number of
    workers yields exactly the batches the loop would build itself, in order."""

    def __init__(self, make_batch: Callable[[int], dict[str, torch.Tensor]], first: int, last: int) -> None:
        self.make_batch, self.first, self.last = make_batch, first, last

    def __len__(self) -> int:
        return max(self.last - self.first + 1, 0)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        return self.make_batch(self.first + k)

    def loader(self, workers: int, seed: int) -> torch.utils.data.DataLoader:
        """In order, one batch per item; workers are seeded from `seed` (their own generator, so the main process's
        RNG is untouched) for any library that draws from the global RNGs (the batches themselves use `step_rng`)."""
        return torch.utils.data.DataLoader(
            self,
            batch_size=None,
            shuffle=False,
            num_workers=workers,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(seed),
            prefetch_factor=2 if workers else None,
        )


def seed_worker(worker_id: int) -> None:
    """Seed NumPy's and Python's global RNGs in a DataLoader worker from its torch seed (base seed + worker id)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
