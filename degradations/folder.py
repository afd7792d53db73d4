"""Degrade a folder of GT images into LQ PNGs plus ``params.jsonl`` (what ``cfbench degrade`` runs).

Every image's seed is `derive_seed(seed, dataset, stem, severity)`, so the output does not depend on the batch
size, the worker count or the order. Files are written atomically (temp file + ``os.replace``); re-running
into an existing folder completes it (images already there are kept) unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from degradations.apply import BACKENDS, apply_params, record_to_json
from degradations.errors import DegradationsError, MissingFileError
from degradations.presets import load_preset
from degradations.seeds import derive_seed
from degradations.severity import Severity

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Sidecar files that dataset folders often carry (licences, lists, metadata); any other file is an error, so
# that images in an unsupported format are reported rather than silently left out.
SIDECAR_SUFFIXES = (".md", ".txt", ".csv", ".json", ".jsonl", ".yaml", ".yml")
PARAMS_FILE = "params.jsonl"
PNG_COMPRESSION = 3  # fixed so that re-runs write byte-identical files


@dataclass(frozen=True)
class FolderResult:
    """What `degrade_folder` did: ``written`` new LQ images, ``skipped`` ones already present."""

    out_dir: Path
    params_path: Path
    total: int
    written: int
    skipped: int


def list_images(gt_dir: str | Path) -> list[Path]:
    """The image files of a folder (not recursive; hidden and sidecar text files ignored), sorted by name.

    Raises FileNotFoundError for a missing folder and ValueError for any other file or clashing stems.
    """
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise MissingFileError(f"GT folder {gt_dir} does not exist or is not a folder; pass a folder of images")
    files = sorted(
        p
        for p in gt_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in SIDECAR_SUFFIXES
    )
    stems: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise DegradationsError(
                f"{p} is not an image (expected {', '.join(IMAGE_SUFFIXES)}); move it out of the GT folder"
            )
        if p.stem in stems:
            raise DegradationsError(
                f"{stems[p.stem]} and {p} share the id {p.stem!r}; rename one (outputs are <id>.png)"
            )
        stems[p.stem] = p
    if not files:
        raise MissingFileError(f"GT folder {gt_dir} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: str | Path) -> torch.Tensor:
    """Read an 8-bit image file as a (1, 3, H, W) float32 RGB tensor in [0, 1] (gray expanded, no alpha)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DegradationsError(f"cannot decode {path} as an image; replace or remove the file")
    rgb = np.ascontiguousarray(img[:, :, ::-1]).astype(np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file so that readers see the old file or the complete new one (temp file + os.replace)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it what open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_png(img: torch.Tensor) -> bytes:
    """PNG bytes of a (3, H, W) or (1, 3, H, W) float RGB tensor in [0, 1] (rounded to 8 bits)."""
    x = img.detach().to("cpu", torch.float32).reshape(3, img.shape[-2], img.shape[-1])
    u8 = np.clip(np.rint(x.permute(1, 2, 0).numpy() * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(u8[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError("cv2.imencode('.png') failed")
    return buf.tobytes()


def _read_params(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rec = json.loads(line)
            out[str(rec["id"])] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DegradationsError(
                f"{path}:{n} is not a params record; pass --overwrite or choose another --out"
            ) from None
    return out


def _run_chunk(jobs: Sequence[tuple[str, str, Mapping[str, Any]]], backend: str, device: str) -> int:
    """Degrade and write one chunk of (source, destination, record) jobs; returns how many were written."""
    imgs = [read_image(src) for src, _, _ in jobs]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(imgs):
        by_shape.setdefault(tuple(img.shape), []).append(i)
    for idx in by_shape.values():
        batch = torch.cat([imgs[i] for i in idx]).to(device)
        lq = apply_params(batch, [jobs[i][2] for i in idx], backend)
        for j, i in enumerate(idx):
            atomic_write_bytes(jobs[i][1], encode_png(lq[j]))
    return len(jobs)


def _init_worker() -> None:
    # One thread per worker process: the processes are the parallelism (results do not depend on it).
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def degrade_folder(
    gt_dir: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "celeba-test",
    severity: Severity | None = None,
    seed: int = 0,
    dataset: str | None = None,
    backend: str = "cpu",
    device: str | None = None,
    workers: int = 0,
    batch_size: int = 8,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> FolderResult:
    """Write ``out_dir/<stem>.png`` (LQ, 8-bit RGB) for every image of ``gt_dir`` and ``out_dir/params.jsonl``
    (one record per image, sorted by id: id, file, dataset, base_seed, backend and the full params record).

    ``dataset`` (default: the GT folder's name) enters the per-image seed. ``backend`` is ``cpu`` or ``torch``
    (``device``: default ``cuda`` when available, else ``cpu``). ``workers`` > 0 runs chunks of ``batch_size``
    images in that many processes. ``progress`` is called with the number of images finished (first those
    already present, then after each chunk).
    """
    gt_dir, out_dir = Path(gt_dir), Path(out_dir)
    if backend not in BACKENDS:
        raise DegradationsError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise DegradationsError(f"workers must be an int >= 0, got {workers!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DegradationsError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if device is None:
        device = "cuda" if backend == "torch" and torch.cuda.is_available() else "cpu"
    if backend == "cpu" and device != "cpu":
        raise DegradationsError(f"the cpu backend runs on the cpu, got device {device!r}; use --backend torch")
    files = list_images(gt_dir)
    if out_dir.resolve() == gt_dir.resolve():
        raise DegradationsError(
            f"--out {out_dir} is the GT folder; choose another folder so GT images are not replaced"
        )
    pipeline = load_preset(preset, severity)
    dataset = gt_dir.resolve().name if dataset is None else dataset

    lines: dict[str, dict[str, Any]] = {}
    for path in files:
        image_seed = derive_seed(seed, dataset, path.stem, pipeline.severity)
        lines[path.stem] = {
            "id": path.stem,
            "file": path.name,
            "dataset": dataset,
            "base_seed": seed,
            "backend": backend,
            **pipeline.sample(image_seed),
        }
    if out_dir.exists() and not out_dir.is_dir():
        raise DegradationsError(f"--out {out_dir} exists and is not a folder; choose a folder path")
    out_dir.mkdir(parents=True, exist_ok=True)
    params_path = out_dir / PARAMS_FILE
    if not overwrite:
        for key, old in _read_params(params_path).items():
            if key in lines and old != lines[key]:
                raise DegradationsError(
                    f"{params_path} was written with other arguments (record {key!r} differs; e.g. preset, "
                    f"severity, seed, dataset or backend); pass --overwrite to replace it, or choose another "
                    f"--out"
                )
    # The records do not depend on the pixels, so they are written before the images: an interrupted run
    # leaves a params file that the next run checks its arguments against.
    atomic_write_bytes(params_path, "".join(record_to_json(lines[k]) + "\n" for k in sorted(lines)).encode("utf-8"))

    todo = [
        (str(p), str(out_dir / f"{p.stem}.png"), lines[p.stem])
        for p in files
        if overwrite or not (out_dir / f"{p.stem}.png").is_file()
    ]
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    if progress and len(files) > len(todo):
        progress(len(files) - len(todo))  # already present
    if workers == 0:
        for chunk in chunks:
            done = _run_chunk(chunk, backend, device)
            if progress:
                progress(done)
    elif chunks:
        # spawn, not fork: safe with CUDA and with torch's thread pools already started in the parent.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
            futures = [pool.submit(_run_chunk, chunk, backend, device) for chunk in chunks]
            try:
                for fut in as_completed(futures):
                    done = fut.result()
                    if progress:
                        progress(done)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    return FolderResult(out_dir, params_path, len(files), len(todo), len(files) - len(todo))


__all__ = [
    "IMAGE_SUFFIXES",
    "PARAMS_FILE",
    "SIDECAR_SUFFIXES",
    "FolderResult",
    "atomic_write_bytes",
    "degrade_folder",
    "encode_png",
    "list_images",
    "read_image",
]
