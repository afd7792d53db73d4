"""Face images of a dataset -> float32 RGB (3, 512, 512) tensors in [0, 1], with the resize policy and its cache.

Resize policy (`RESIZE_POLICY`, part of every dataset's content hash):

- A 512x512 image is returned as decoded (`cfbench.imageio.decode_image`: EXIF orientation applied, gray repeated to
  3 channels, an alpha channel dropped, 16-bit images scaled by 1/65535).
- A square image of another size is rounded to 8 bits (`cfbench.imageio.to_uint8`) and resized with OpenCV
  (`fit_face`): `cv2.INTER_AREA` when shrinking (e.g. 1024 CelebA-HQ/FFHQ ground truth), `cv2.INTER_CUBIC` when
  enlarging (saturated to 0..255). For 8-bit files this equals ``cv2.resize(cv2.imread(path), (512, 512),
  interpolation=...)``. Training (`cfbench.train.dataset`) resizes its faces with the same `fit_face`.
- A non-square image is refused (`BadInputError`): datasets hold aligned face crops; align them first.

A resized face is written once, as an 8-bit PNG, to
``$CFBENCH_HOME/cache/datasets/<policy>/<decoder>/<aa>/<sha256>.png``, keyed by the sha256 of the source file's
bytes; later loads read that file instead of decoding and resizing the
large source again. The first load returns exactly the pixels that the cache file holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from cfbench.atomic import atomic_write_bytes
from cfbench.errors import BadInputError
from cfbench.hashing import sha256_bytes
from cfbench.imageio import DECODER_VERSION, decode_image, read_image, to_uint8, write_image
from cfbench.weights import cfbench_home

FACE_SIZE = 512
RESIZE_POLICY = "face512-u8-area-down-cubic-up-v1"


class ImageSource(Protocol):
    """Where one encoded image comes from: a file, or bytes in a Hugging Face dataset."""

    label: str  # names the image in errors and in sample meta (a path, or dataset + row + column)

    def read_bytes(self) -> bytes: ...

    def decode(self, data: bytes) -> torch.Tensor: ...


@dataclass(frozen=True)
class FileSource:
    """An image file on disk."""

    path: Path

    @property
    def label(self) -> str:
        return str(self.path)

    def read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise BadInputError(f"image file not found: {self.path} (was the dataset folder changed?)") from None

    def decode(self, data: bytes) -> torch.Tensor:
        return decode_image(data, self.label)


def resize_cache_dir() -> Path:
    """``$CFBENCH_HOME/cache/datasets/<RESIZE_POLICY>/<DECODER_VERSION>`` (entries made by an older decoder, e.g.
    sideways photos from before EXIF orientation was applied, are not reused)."""
    return cfbench_home() / "cache" / "datasets" / RESIZE_POLICY / DECODER_VERSION


def resize_cache_path(source_sha256: str) -> Path:
    return resize_cache_dir() / source_sha256[:2] / f"{source_sha256}.png"


def _from_uint8(arr: np.ndarray) -> torch.Tensor:
    # the same arithmetic as read_image, so a resized face equals its cache file read back
    return torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1).div_(255.0)


def fit_face(face: np.ndarray, size: int = FACE_SIZE, label: str = "the face") -> np.ndarray:
    """The resize policy on uint8 arrays, for evaluation and training alike: a square (H, W, 3) face -> (size, size,
    3), `cv2.INTER_AREA` when shrinking, `cv2.INTER_CUBIC` when enlarging, unchanged at `size`. A non-square face
    raises BadInputError naming `label`."""
    h, w = face.shape[:2]
    if h != w:
        raise BadInputError(
            f"{label} is {w}x{h}, not square: datasets hold aligned square face crops "
            f"(FFHQ alignment, {size}x{size}); align and crop it first"
        )
    if h == size:
        return face
    interp = cv2.INTER_AREA if h > size else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(face), (size, size), interpolation=interp)


def resize_face(img: torch.Tensor, size: int = FACE_SIZE, label: str = "the face") -> torch.Tensor:
    """A square (3, H, W) face in [0, 1] -> (3, size, size) float32 in [0, 1]: rounded to 8 bits, then `fit_face`."""
    return _from_uint8(fit_face(to_uint8(img), size, label))


def _read_cached(path: Path, size: int) -> torch.Tensor | None:
    """The resized face cached at `path`, or None (a miss, rebuilt by the caller) when it is absent, unreadable, of
    another size, or differs from the sha256 of the PNG recorded beside it (``<key>.sha256``) when it was written."""
    try:
        data, want = path.read_bytes(), path.with_suffix(".sha256").read_text().strip()
    except OSError:
        return None
    if sha256_bytes(data) != want:
        return None
    try:
        img = read_image(path)
    except BadInputError:
        return None
    return img if tuple(img.shape) == (3, size, size) else None


def load_face(source: ImageSource, size: int = FACE_SIZE, exact: bool = False) -> tuple[torch.Tensor, dict[str, Any]]:
    """The face of `source` as (3, size, size) float32 RGB in [0, 1], and facts for the sample meta.

    Decoding errors propagate as `BadInputError` naming the file. See the module docstring for the policy;
    `exact=True` refuses an image of another size instead of resizing it (the released LQ of a test set).
    """
    data = source.read_bytes()
    cached = None if exact else resize_cache_path(sha256_bytes(data))
    img = _read_cached(cached, size) if cached is not None else None
    if img is not None:
        return img, {"resized": True}
    img = source.decode(data)
    h, w = img.shape[-2:]
    if (h, w) == (size, size):
        return img, {"resized": False}
    if exact:
        raise BadInputError(
            f"{source.label} is {w}x{h}, but this set's LQ faces are {size}x{size} as released; replace it with "
            "the released file (a resized LQ image would change what is measured)"
        )
    out = resize_face(img, size, source.label)
    try:
        write_image(cached, out)
        atomic_write_bytes(cached.with_suffix(".sha256"), sha256_bytes(cached.read_bytes()).encode())
    except OSError:
        pass  # a read-only cache only costs the resize next time
    return out, {"resized": True, "source_size": [int(h), int(w)]}
