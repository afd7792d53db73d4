"""Whole-photo face restoration: detect the faces of a photo, align each to the FFHQ 512 template, restore the crops,
paste them back with the soft mask of `cfbench.face.align`.

The steps are pure functions of the image (`detect_and_align`: photo -> aligned crops and their matrices;
`paste_faces`: photo and restored crops -> photo); `restore_photo` chains them around a CodeFormer. In the spirit of
CodeFormer's `inference_codeformer.py` (facexlib `FaceRestoreHelper`), with these differences:

- detection and the five points come from a named face backend (default `dlib`: HOG detector with one 2x
  upsampling step, five points from its 68 landmarks, see `cfbench.face.backends.five_from_68`), not RetinaFace;
- `upscale`: the background is the photo upscaled by a plain bicubic resize (`cv2.resize`, INTER_CUBIC), not by
  Real-ESRGAN; the faces are pasted at the upscaled resolution (the restored 512 crop is warped straight into it);
- the paste-back mask (`PASTE_MASKS`, `cfbench restore --mask`): `soft` (default), ours alone
  (`cfbench.face.align.paste_mask`: eroded and blurred warped square); `parsing`, CodeFormer's use_parse: that mask
  limited (elementwise minimum) by the blurred face classes of ParseNet on each restored crop
  (`cfbench.face.parsing`; needs the `parsing_parsenet` weights);
- a photo where no face is found comes back upscaled and otherwise unchanged (the caller warns), never an error.

Images are uint8 (H, W, 3) RGB arrays (`cfbench.face.as_uint8_rgb` converts other forms).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from cfbench.errors import BadInputError
from cfbench.face.align import align_face, paste_back
from cfbench.face.backends import Face, as_uint8_rgb, get_backend
from cfbench.registry import Registry

# restored crops (N, S, S, 3) float32 in [0, 1] -> one (S, S) face mask in [0, 1] per crop, or None for the soft
# mask alone
FaceMasker = Callable[[np.ndarray], Sequence[np.ndarray | None]]
PASTE_MASKS: Registry[Callable[..., FaceMasker]] = Registry("paste-back mask")


@PASTE_MASKS.register("soft")
def _soft_mask(device: str | torch.device = "cpu") -> FaceMasker:
    """No mask of the face's own: the warped square, eroded and blurred, alone."""
    return lambda faces: [None] * len(faces)


@PASTE_MASKS.register("parsing")
def _parsing_mask(device: str | torch.device = "cpu") -> FaceMasker:
    """CodeFormer's use_parse mask (cfbench.face.parsing); loads ParseNet, or raises MissingWeightsError."""
    from cfbench.face.parsing import FaceParser

    return FaceParser(device).masks


def face_masker(name: str, device: str | torch.device = "cpu") -> FaceMasker:
    """The paste-back mask `name` of `PASTE_MASKS`, built (its network loaded on `device`) once per call: an
    unknown name raises with close-match suggestions, missing weights with the registry's MissingWeightsError."""
    return PASTE_MASKS.get(name)(device)


@dataclass(frozen=True)
class AlignedFace:
    """One face of a photo: the detection (box, landmarks, five points), the aligned square crop (uint8 RGB) and the
    2x3 similarity matrix photo pixels -> crop pixels."""

    face: Face
    crop: np.ndarray
    matrix: np.ndarray


def _check_upscale(upscale: int) -> int:
    if isinstance(upscale, bool) or not isinstance(upscale, (int, np.integer)) or not 1 <= upscale <= 8:
        raise BadInputError(f"upscale must be an integer in 1..8; got {upscale!r}")
    return int(upscale)


def center_face(faces: Sequence[Face], image_shape: tuple[int, int]) -> Face | None:
    """The face whose box centre is closest to the image centre (None for no faces)."""
    if not faces:
        return None
    cy, cx = (image_shape[0] - 1) / 2, (image_shape[1] - 1) / 2
    return min(faces, key=lambda f: (f.box.center[0] - cx) ** 2 + (f.box.center[1] - cy) ** 2)


def detect_and_align(
    image: Any,
    face_size: int = 512,
    only_center_face: bool = False,
    backend: Any = None,
) -> list[AlignedFace]:
    """Faces of `image` (uint8 RGB), each aligned to the FFHQ template at `face_size`; best detection first (only
    the face closest to the centre with `only_center_face`). `backend`: a face backend object or name (default
    "dlib"). An empty list when no face is found."""
    img = as_uint8_rgb(image)
    if backend is None or isinstance(backend, str):
        backend = get_backend(backend or "dlib")
    faces = list(backend.analyze(img))
    if only_center_face:
        faces = [f for f in [center_face(faces, img.shape[:2])] if f is not None]
    out = []
    for f in faces:
        crop, m = align_face(img, f.five, face_size)
        out.append(AlignedFace(f, crop, m))
    return out


def upscale_image(image: np.ndarray, upscale: int) -> np.ndarray:
    """The photo resized by the integer factor `upscale` with bicubic interpolation (`cv2.resize` INTER_CUBIC;
    uint8 in, uint8 out, saturated); a copy when upscale is 1."""
    upscale = _check_upscale(upscale)
    if upscale == 1:
        return image.copy()
    h, w = image.shape[:2]
    return cv2.resize(image, (w * upscale, h * upscale), interpolation=cv2.INTER_CUBIC)


def upscale_matrix(matrix: np.ndarray, upscale: int) -> np.ndarray:
    """The 2x3 matrix photo -> crop rewritten for the photo upscaled by `upscale` (pixel centres at integers, as
    cv2.resize: x = (x' + 0.5) / upscale - 0.5)."""
    upscale = _check_upscale(upscale)
    m = np.asarray(matrix, np.float64)
    a, t = m[:, :2], m[:, 2]
    offset = 0.5 / upscale - 0.5
    return np.concatenate([a / upscale, (t + a @ np.array([offset, offset]))[:, None]], axis=1)


def paste_faces(
    image: np.ndarray,
    restored: Sequence[np.ndarray],
    matrices: Sequence[np.ndarray],
    upscale: int = 1,
    face_masks: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """Paste restored square crops back into `image` (uint8 RGB, the original photo) upscaled by `upscale`.

    `restored`: crops (S, S, 3), float32 RGB in [0, 1] or uint8; `matrices`: their 2x3 matrices photo -> crop (from
    `detect_and_align`); `face_masks`: optional (S, S) masks of the crops (a `FaceMasker`'s, None entries for the
    soft mask alone; see `cfbench.face.align.paste_back`). The blending is in float, so pixels outside every face
    mask equal the upscaled photo exactly. Returns uint8 (H * upscale, W * upscale, 3).
    """
    face_masks = [None] * len(restored) if face_masks is None else face_masks
    if not len(restored) == len(matrices) == len(face_masks):
        raise BadInputError(
            f"{len(restored)} restored crops but {len(matrices)} matrices and {len(face_masks)} face masks"
        )
    img = as_uint8_rgb(image)
    out = upscale_image(img, upscale).astype(np.float32) / 255.0
    for crop, m, face_mask in zip(restored, matrices, face_masks, strict=True):
        face = crop.astype(np.float32) / 255.0 if crop.dtype == np.uint8 else np.asarray(crop, np.float32)
        out = paste_back(out, face, upscale_matrix(m, upscale), face_mask)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PhotoResult:
    """What `restore_photo` gives: the output image (uint8 RGB, upscaled) and the faces it restored."""

    image: np.ndarray
    faces: list[AlignedFace]

    @property
    def num_faces(self) -> int:
        return len(self.faces)


@torch.inference_mode()
def restore_photo(
    image: Any,
    net: Any,
    w: float = 0.5,
    upscale: int = 1,
    only_center_face: bool = False,
    adain: bool = True,
    lookup: str = "transformer",
    batch_size: int = 4,
    backend: Any = None,
    mask: str | FaceMasker = "soft",
    checkpoint: str = "(a model object)",
) -> PhotoResult:
    """Detect, align, restore with CodeFormer `net` at fidelity weight `w`, paste back (module docstring). `mask`:
    a `PASTE_MASKS` name or a built `FaceMasker` (`face_masker`; pass one to load its network once for many photos).
    With no face found, the result is the photo upscaled and otherwise unchanged, with `num_faces` 0. `checkpoint`
    names the weights when their output is broken (`cfbench.restoration.check_restored`)."""
    from cfbench.restoration import restore_batch

    upscale = _check_upscale(upscale)
    if batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1; got {batch_size}")
    img = as_uint8_rgb(image)
    size = net.config.img_size
    faces = detect_and_align(img, size, only_center_face, backend)
    device = next(net.parameters()).device
    masker = face_masker(mask, device) if isinstance(mask, str) else mask
    restored: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    for i in range(0, len(faces), batch_size):
        crops = np.stack([f.crop for f in faces[i : i + batch_size]])
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0).to(device)
        y = restore_batch(net, x, w, adain, lookup, checkpoint).float().cpu().permute(0, 2, 3, 1).numpy()
        restored.extend(np.ascontiguousarray(c) for c in y)
        masks.extend(masker(np.ascontiguousarray(y)))
    out = paste_faces(img, restored, [f.matrix for f in faces], upscale, masks)
    return PhotoResult(out, faces)
