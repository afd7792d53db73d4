"""Image files <-> float32 RGB tensors in [0, 1], and the check of that tensor contract. `decode_image` is the one
reader of cfbench: OpenCV (libpng/libjpeg) decodes the pixels, the EXIF orientation is applied (read with Pillow);
the policy for gray, alpha, palette, CMYK and 16-bit files is in its docstring and docs/reliability.md."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from cfbench.atomic import atomic_write_bytes
from cfbench.errors import BadInputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# files that may sit beside images in a folder without being images (README.md, params.jsonl, scores.csv, ...)
SIDECAR_SUFFIXES = (".md", ".txt", ".csv", ".json", ".jsonl", ".yaml", ".yml", ".npz", ".parquet")


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


# EXIF Orientation (tag 274) -> the numpy ops that turn the stored pixels (H, W, C) into what viewers show
# (the transposes of PIL.ImageOps.exif_transpose; 1 = as stored)
_ORIENTATION_OPS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
EXIF_ORIENTATION = 0x0112
# names what `decode_image` returns; caches of decoded pixels include it (2: EXIF orientation applied)
DECODER_VERSION = "decode-v2"


def _header(source: bytes | str | os.PathLike) -> tuple[int, int, int] | None:
    """(height, width, EXIF orientation 1..8) as stored, from the header only (Pillow); None when unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
            h, w = im.height, im.width
    except Exception:  # noqa: BLE001 - Pillow raises many types for odd headers; OpenCV decides what is readable
        return None
    return h, w, orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def exif_orientation(data: bytes) -> int:
    """The EXIF Orientation (1..8) of encoded image bytes; 1 when absent or unreadable."""
    header = _header(data)
    return 1 if header is None else header[2]


def image_size(source: bytes | str | os.PathLike) -> tuple[int, int] | None:
    """(height, width) of an image (encoded bytes or a file) as `decode_image` returns it (EXIF orientation
    applied), from the header only; None when the header is unreadable."""
    header = _header(source)
    if header is None:
        return None
    h, w, orientation = header
    return (w, h) if orientation >= 5 else (h, w)


def decode_image(data: bytes, label: str, require_rgb: bool = False) -> torch.Tensor:
    """Decode encoded image bytes to a float32 RGB tensor (3, H, W) in [0, 1], as image viewers show the file.

    The one decoder of cfbench (datasets, restore, metrics, training); `label` names the image in errors. Policy
    (docs/reliability.md, "Reading images"): OpenCV decodes the pixels (palette expanded, CMYK converted to RGB);
    the EXIF Orientation tag is applied; gray is repeated to 3 channels; an alpha channel is dropped (as the
    official CodeFormer's ``cv2.imread`` does); 8-bit values are divided by 255 and 16-bit values by 65535. With
    `require_rgb`, gray and alpha files are refused instead (metrics: such a file in a results folder is a mistake,
    not something to score). An empty, corrupt or truncated file, or a sample type other than 8/16-bit integers,
    raises a one-line BadInputError naming `label`.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    except cv2.error:
        img = None
    if img is None:
        raise BadInputError(f"cannot decode {label}: not a readable image (corrupt, empty or unsupported format)")
    if img.dtype not in (np.uint8, np.uint16):
        raise BadInputError(f"{label} holds {img.dtype} samples; save it with 8- or 16-bit integer samples")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if require_rgb and channels != 3:
        kind = {1: "grayscale (1 channel)", 2: "grayscale with alpha", 4: "RGBA (4 channels)"}.get(channels, "")
        raise BadInputError(f"{label} is {kind or f'{channels}-channel'}; convert it to 3-channel RGB first")
    if channels not in (1, 2, 3, 4):
        raise BadInputError(f"{label} has {channels} channels; save it as RGB or gray")
    img = img.reshape(img.shape[0], img.shape[1], -1)
    img = img[:, :, :1].repeat(3, axis=2) if channels <= 2 else img[:, :, 2::-1]  # gray -> RGB; BGR(A) -> RGB
    orient = _ORIENTATION_OPS.get(exif_orientation(data))
    if orient is not None:
        img = orient(img)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return torch.from_numpy(np.ascontiguousarray(img).astype(np.float32)).permute(2, 0, 1).div_(scale)


def read_image(path: str | os.PathLike, require_rgb: bool = False) -> torch.Tensor:
    """Read an image file with `decode_image` (float32 RGB (3, H, W) in [0, 1], as viewers show it)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"image file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInputError(f"cannot read {path}: {e.strerror or e}") from None
    return decode_image(data, str(path), require_rgb)


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


def name_list(names: Sequence[str], limit: int = 5) -> str:
    """The first `limit` of `names`, sorted, comma-separated, then "and N more" (for one-line error messages)."""
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def images_by_stem(folder: str | os.PathLike) -> dict[str, Path]:
    """The image files of `folder` (not recursive) by stem (the file name without extension), sorted by stem.

    Hidden files and sidecar files (`SIDECAR_SUFFIXES`) are ignored. A missing folder, a folder without images, any
    other file (an image in an unsupported format is reported, not silently left out) and two images with the same
    stem raise BadInputError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"folder not found: {folder} (pass a folder of images)")
    stems: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() in SIDECAR_SUFFIXES:
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise BadInputError(f"{p} is not an image ({', '.join(IMAGE_EXTENSIONS)}); move it out of {folder}")
        if p.stem in stems:
            raise BadInputError(f"{stems[p.stem]} and {p} share the id {p.stem!r}; rename or remove one")
        stems[p.stem] = p
    if not stems:
        raise BadInputError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder}")
    return dict(sorted(stems.items()))


def pair_by_stem(
    first: str | os.PathLike, second: str | os.PathLike, names: tuple[str, str]
) -> tuple[dict[str, Path], dict[str, Path]]:
    """`images_by_stem` of two folders whose files must match by stem (`0001.png` with `0001.jpg`); `names` name
    the two sides (e.g. ("GT", "LQ")) in the BadInputError that lists the unmatched files."""
    a, b = images_by_stem(first), images_by_stem(second)
    sides = ((a, b, names[0], names[1]), (b, a, names[1], names[0]))
    parts = [
        f"{len(only)} {have} image(s) have no {lack} image ({name_list(only)})"
        for files, other, have, lack in sides
        if (only := [files[s].name for s in files if s not in other])
    ]
    if parts:
        raise BadInputError(f"{names[0]} and {names[1]} files do not match by name (stem): {'; '.join(parts)}")
    return a, b
