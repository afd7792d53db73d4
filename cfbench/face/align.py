"""Alignment of a face to the FFHQ 512 five-point template, the inverse warp and a soft-mask paste-back.

The template is facexlib's FFHQ template used by CodeFormer, GFPGAN and VQFR (`FaceRestoreHelper`, crop ratio
(1, 1)), in pixels of a 512x512 crop, in the point order of `cfbench.face.backends` (eye on the image's left, eye on
the image's right, nose tip, mouth corner left, mouth corner right); for another `face_size` it is scaled by
face_size / 512. As there, the transform is the similarity (rotation, uniform scale, translation) fitted by
`cv2.estimateAffinePartial2D(..., method=cv2.LMEDS)` and the warp is `cv2.warpAffine` with bilinear interpolation
and a constant border of RGB (132, 133, 135) (the official BGR (135, 133, 132)).

Paste-back (our own soft mask; the official helper differs in details): the restored face is warped back with the
inverse similarity; a mask of ones warped the same way is eroded by about 1/20 of the face's side and blurred with
a Gaussian of the same width, then used to blend the face into the image. The upscaling of the official helper is
not done here: the paste-back happens at the input image's resolution.

Coordinates: pixel centres at integers (see `cfbench.face.backends`), as OpenCV's warpAffine.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from cfbench.errors import BadInputError

FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    np.float64,
)
BORDER_RGB = (132, 133, 135)


def template(face_size: int = 512) -> np.ndarray:
    """The FFHQ five-point template for a `face_size` x `face_size` crop, (5, 2) float64."""
    if face_size < 16:
        raise BadInputError(f"face_size must be at least 16; got {face_size}")
    return FFHQ_TEMPLATE_512 * (face_size / 512.0)


def _points(points: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 2 or not np.isfinite(p).all():
        raise BadInputError(f"{what} must be finite (P, 2) points with P >= 2; got shape {p.shape}")
    return p


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix mapping `src` points onto `dst` (LMedS fit, as the official helper; a plain
    least-squares fit when LMedS gives nothing)."""
    src, dst = _points(src, "source points"), _points(dst, "template points")
    if src.shape != dst.shape:
        raise BadInputError(f"source and template points differ in shape: {src.shape} vs {dst.shape}")
    m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if m is None:
        m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1e9)
    if m is None or not np.isfinite(m).all():
        raise BadInputError("cannot fit a similarity transform to these points (degenerate, e.g. all equal)")
    return m.astype(np.float64)


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def align_face(image: np.ndarray, five: np.ndarray, face_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face with five-point landmarks `five` (template order) to a `face_size` square crop.

    `image`: uint8 or float32 (H, W, 3) RGB. Returns (crop of the same dtype, the 2x3 matrix image -> crop).
    """
    _check_image(image)
    m = similarity_transform(five, template(face_size))
    border = BORDER_RGB if image.dtype == np.uint8 else tuple(c / 255.0 for c in BORDER_RGB)
    crop = cv2.warpAffine(
        image, m, (face_size, face_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )
    return crop, m


def paste_mask(matrix: np.ndarray, face_size: int, image_shape: tuple[int, int]) -> np.ndarray:
    """The soft paste-back mask (H, W) float32 in [0, 1] of a crop with matrix `matrix` (image -> crop)."""
    h, w = image_shape
    inv = invert(matrix)
    ones = np.ones((face_size, face_size), np.float32)
    mask = cv2.warpAffine(ones, inv, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    scale = math.sqrt(abs(np.linalg.det(inv[:, :2])))  # crop pixel -> image pixels
    side = face_size * scale
    k = max(1, int(side / 20))
    mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    blur = 2 * k + 1
    return np.clip(cv2.GaussianBlur(mask, (blur, blur), 0), 0, 1)


def paste_back(
    image: np.ndarray, face: np.ndarray, matrix: np.ndarray, face_mask: np.ndarray | None = None
) -> np.ndarray:
    """Blend the (restored) square crop `face` back into `image` (both (H, W, 3) RGB, uint8 or float32), inverting
    `matrix` (image -> crop, as returned by `align_face`). `face_mask`: an optional mask of the crop (S, S) float in
    [0, 1] (e.g. `cfbench.face.parsing.FaceParser.masks`), warped back bicubically and combined with the soft mask by
    elementwise minimum, as CodeFormer's use_parse. Returns an array like `image`."""
    _check_image(image)
    _check_image(face)
    if face.shape[0] != face.shape[1]:
        raise BadInputError(f"the face crop must be square; got {face.shape[:2]}")
    h, w = image.shape[:2]
    back = cv2.warpAffine(face.astype(np.float32), invert(matrix), (w, h), flags=cv2.INTER_LINEAR)
    mask = paste_mask(matrix, face.shape[0], (h, w))
    if face_mask is not None:
        if face_mask.shape != face.shape[:2]:
            raise BadInputError(f"the face mask must be {face.shape[:2]} like its crop; got {face_mask.shape}")
        warped = cv2.warpAffine(face_mask.astype(np.float32), invert(matrix), (w, h), flags=cv2.INTER_CUBIC)
        mask = np.minimum(mask, np.clip(warped, 0, 1))  # bicubic overshoots [0, 1] near edges
    mask = mask[:, :, None]
    out = mask * back + (1 - mask) * image.astype(np.float32)
    if image.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out.astype(image.dtype)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise BadInputError(f"expected an (H, W, 3) RGB array; got {getattr(image, 'shape', type(image).__name__)}")
    if image.dtype not in (np.uint8, np.float32):
        raise BadInputError(f"expected a uint8 or float32 image; got {image.dtype}")
