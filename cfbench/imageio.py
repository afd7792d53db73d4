"""Image files <-> float32 RGB tensors in [0, 1], and the check of that tensor contract. Decoding goes through
OpenCV (libpng/libjpeg)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import torch

from cfbench.atomic import atomic_write_bytes
from cfbench.errors import BadInputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def check_images(images: torch.Tensor, what: str = "images") -> None:
    """Raise BadInputError unless `images` is a float RGB NCHW tensor with finite values in [0, 1] (the contract
    of every API boundary; `what` names the images in the message)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise BadInputError(f"{what} must be an RGB batch of shape (N, 3, H, W); got {shape}")
    if not images.is_floating_point():
        raise BadInputError(f"{what} must be a float tensor in [0, 1]; got {images.dtype} (divide uint8 by 255)")
    if images.shape[0] == 0:
        return  # nothing to check (and min/max of an empty tensor raise)
    if not torch.isfinite(images).all():
        raise BadInputError(f"{what} contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0 or hi > 1:
        raise BadInputError(f"{what} must lie in [0, 1]; got values in [{lo:.4g}, {hi:.4g}] (clamp, or scale by 1/255)")


def read_image(path: str | os.PathLike, require_rgb: bool = False) -> torch.Tensor:
    """Decode an image file to a float32 RGB tensor (3, H, W) in [0, 1].

    Gray images are repeated to 3 channels and an alpha channel is dropped, unless `require_rgb`, which refuses
    them (metrics: a gray or transparent file in a results folder is a mistake, not something to score); 16-bit
    images are scaled by 1/65535.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"image file not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise BadInputError(f"cannot decode {path}: not a readable image (corrupt, empty or unsupported format)")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if require_rgb and channels != 3:
        kind = {1: "grayscale (1 channel)", 2: "grayscale with alpha", 4: "RGBA (4 channels)"}.get(channels, "")
        raise BadInputError(f"{path} is {kind or f'{channels}-channel'}; convert it to 3-channel RGB first")
    if img.ndim == 2:
        img = img[:, :, None].repeat(3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    img = np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1).div_(scale)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(..., C, H, W) float in [0, 1] -> (..., H, W, C) uint8 on the CPU, clamped and rounded (the official output
    conversion): an image (3, H, W) gives (H, W, 3), a batch (N, 3, H, W) gives (N, H, W, 3)."""
    arr = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.movedim(-3, -1).cpu().numpy()


def write_image(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """Write a (3, H, W) float tensor in [0, 1] as an 8-bit image, atomically (temp file + rename)."""
    path = Path(path)
    ext = path.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(to_uint8(image)[:, :, ::-1]))
    if not ok:
        raise BadInputError(f"cannot encode an image as {ext!r} for {path}; use .png or .jpg")
    return atomic_write_bytes(path, buf.tobytes())


def expand_image_paths(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, and the image files (sorted) inside any folder given; raise for a missing path."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS and q.is_file())
            if not found:
                raise BadInputError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {p}")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise BadInputError(f"input not found: {p}")
    return paths
