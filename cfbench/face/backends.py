"""Face-analysis backends: what they return, the registry of named backends, and image conversion.

Conventions shared by every backend (and by `cfbench.face.align` and `cfbench.face.pose`):

- Images are uint8 RGB arrays of shape (H, W, 3) (`as_uint8_rgb` converts the other accepted forms).
- Coordinates are (x, y) pixels in the image the backend was given: x to the right, y down, and integer values at
  pixel centres (the OpenCV and dlib convention: the top-left pixel covers [-0.5, 0.5] x [-0.5, 0.5]). Arrays of
  points have shape (P, 2), float64.
- Boxes are (x1, y1, x2, y2) in the same coordinates (dlib's rectangles are inclusive: x2 is the last column).
- Five-point landmarks are in the order of the FFHQ template (`cfbench.face.align.FFHQ_TEMPLATE_512`): the eye on
  the image's left (the subject's right eye), the eye on the image's right, the nose tip, the mouth corner on the
  image's left, the mouth corner on the image's right.

Backends are registered in `FACE_BACKENDS` by name (`get_backend("dlib")`); heavy libraries (dlib, facexlib,
insightface) are imported only when a backend is built, so `cfbench` imports without them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cfbench.errors import BadInputError
from cfbench.imageio import to_uint8
from cfbench.registry import Registry


@dataclass(frozen=True)
class FaceBox:
    """A detected face: box (x1, y1, x2, y2) in pixels and the detector's score (its units depend on the detector:
    the HOG SVM margin for dlib HOG, the mmod confidence for dlib CNN)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    @property
    def area(self) -> float:
        return max(self.x2 - self.x1, 0.0) * max(self.y2 - self.y1, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    def as_array(self) -> np.ndarray:
        return np.array([self.x1, self.y1, self.x2, self.y2], np.float64)


@dataclass(frozen=True)
class Face:
    """Everything one analysis pass gives for one face: its box, 68 landmarks (iBUG 300-W order) and the five
    template points (derived from the 68 by `five_from_68` for dlib; a detector's own five points for RetinaFace,
    which gives no 68 landmarks: `landmarks68` is None)."""

    box: FaceBox
    landmarks68: np.ndarray | None  # (68, 2) float64
    five: np.ndarray  # (5, 2) float64, FFHQ template order


def five_from_68(points68: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG 300-W landmarks -> (5, 2) in FFHQ template order: the centres of the two eyes (points 36-41 and
    42-47), the nose tip (30), the two mouth corners (48, 54)."""
    p = np.asarray(points68, np.float64)
    if p.shape != (68, 2):
        raise BadInputError(f"expected (68, 2) landmarks; got shape {p.shape}")
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def as_uint8_rgb(image: Any) -> np.ndarray:
    """The uint8 (H, W, 3) RGB array that the backends analyse, from any of:

    - a float tensor (3, H, W) or (1, H, W) in [0, 1] (cfbench's image format): times 255, rounded
      (`cfbench.imageio.to_uint8`, so analysing a tensor equals analysing the PNG it is saved as);
    - a uint8 numpy array (H, W, 3) RGB, (H, W, 4) RGBA (alpha dropped) or (H, W) gray.

    Gray images are repeated to three channels (the detectors then see gray faces: a documented outcome, not an
    error). Anything else raises BadInputError.
    """
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3) or not image.is_floating_point():
            raise BadInputError(f"expected a float tensor (3, H, W) in [0, 1]; got {image.dtype} {tuple(image.shape)}")
        if not torch.isfinite(image).all() or float(image.min()) < 0 or float(image.max()) > 1:
            raise BadInputError("image tensor values must be finite and in [0, 1]")
        image = to_uint8(image)
    if not isinstance(image, np.ndarray):
        raise BadInputError(f"expected a uint8 numpy image or a float tensor; got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise BadInputError(f"numpy images must be uint8 (H, W, 3) RGB; got {image.dtype} (scale floats by 255)")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise BadInputError(f"expected an (H, W, 3) RGB image; got shape {image.shape}")
    if min(image.shape[:2]) < 1:
        raise BadInputError(f"empty image of shape {image.shape}")
    return _c_strided(image)


def _c_strided(image: np.ndarray) -> np.ndarray:
    """`image` with the strides of a fresh C-ordered array (a copy if needed). numpy's and torch's contiguity checks
    ignore the strides of size-1 dimensions, dlib does not: a (1, W) or (H, 1) image permuted from a tensor passes
    `np.ascontiguousarray` unchanged and then fails inside dlib with a stride error."""
    strides, step = [], image.itemsize
    for size in reversed(image.shape):
        strides.insert(0, step)
        step *= size
    return image if image.strides == tuple(strides) else image.copy(order="C")


FACE_BACKENDS: Registry[Callable[..., Any]] = Registry("face backend")


def register_backend(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a backend factory (a class or function taking keyword options) under `name`."""
    return FACE_BACKENDS.register(name)


@functools.lru_cache(maxsize=8)
def _build(name: str, options: tuple[tuple[str, Any], ...]) -> Any:
    return FACE_BACKENDS.get(name)(**dict(options))


def get_backend(name: str, **options: Any) -> Any:
    """The backend `name` built with `options`; built once per (name, options) and shared (models load once).
    An unknown name raises with close-match suggestions."""
    FACE_BACKENDS.get(name)  # the helpful error for unknown names, before anything is built
    return _build(name, tuple(sorted(options.items())))
