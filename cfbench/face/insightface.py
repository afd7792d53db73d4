"""insightface ArcFace embeddings (`buffalo_l` pack, `w600k_r50.onnx`: ResNet-50 trained on WebFace600K, 512-D)
through onnxruntime, for `identity_cos[insightface]` and `deg[insightface]` (deepinsight/insightface
`model_zoo/arcface_onnx.py`, `utils/face_align.py`).

Input: FFHQ-aligned faces (the benchmark's contract); their five points are the FFHQ template scaled to the image
(no detection, no missing rows, the same crop for the restored image and its GT), warped to the 112x112 ArcFace
template, fed as (N, 3, 112, 112) float32 RGB (x - 127.5) / 127.5. Output: the 512-D embeddings, compared by cosine.
Differs from insightface's `FaceAnalysis` (SCRFD points) on faces whose points are off the template (side faces).
onnxruntime and the weights (`insightface_w600k_r50`) are needed only when an embedder is built; without them the
error says what to install or where to put the file. Details: docs/face/insightface.md.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from cfbench import weights
from cfbench.errors import BadInputError, CheckpointError
from cfbench.face.align import FFHQ_TEMPLATE_512
from cfbench.imageio import to_uint8

INPUT_SIZE = 112
EMBEDDING_DIM = 512
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float64
)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) that maps the (P, 2) points `src` onto `dst` with
    the least squared error (Umeyama 1991, reflections excluded)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise BadInputError(f"need two matching (P, 2) point sets, P >= 2; got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s == 0:
        raise BadInputError("cannot fit a similarity to points that all coincide")
    u, sv, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sv) @ sign)) / var_s
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def align_112(image: np.ndarray, five: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB image and its five points (template order) -> the (112, 112, 3) uint8 ArcFace crop."""
    m = umeyama_similarity(five, ARCFACE_TEMPLATE_112)
    return cv2.warpAffine(image, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderValue=0.0)


def aligned_face_points(height: int, width: int) -> np.ndarray:
    """The five points of an FFHQ-aligned face of `height` x `width` pixels: the template scaled to that size."""
    return FFHQ_TEMPLATE_512 * np.array([width / 512.0, height / 512.0])


def preprocess(crops: np.ndarray) -> np.ndarray:
    """(N, 112, 112, 3) uint8 RGB crops -> (N, 3, 112, 112) float32, (x - 127.5) / 127.5."""
    return np.ascontiguousarray((crops.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5)


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "the insightface backend needs onnxruntime: pip install 'cfbench[metrics]' (or onnxruntime)"
        ) from exc
    return onnxruntime


class InsightFaceEmbedder:
    """ArcFace embeddings of FFHQ-aligned faces with `w600k_r50.onnx` (docs/face/insightface.md).

    `embed(images)`: (N, 3, H, W) float RGB in [0, 1] -> (N, 512) float64. `model_path`: an ONNX file to use instead
    of the registered one (tests).
    """

    def __init__(self, model_path: str | None = None) -> None:
        ort = _import_onnxruntime()
        path = model_path or weights.require("insightface_w600k_r50")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2  # the shared CPUs of a benchmark run
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any unreadable model is the same user error
            raise CheckpointError(f"{path} is not a readable ONNX model: {str(exc).splitlines()[0]}") from exc
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4 or list(inp.shape[1:]) != [3, INPUT_SIZE, INPUT_SIZE]:
            raise CheckpointError(f"{path} takes input {inp.shape}, not (N, 3, 112, 112): not an ArcFace model")
        self.input_name = inp.name
        self.one_at_a_time = inp.shape[0] == 1  # a model exported with a fixed batch of 1

    def embed(self, images: torch.Tensor) -> np.ndarray:
        u8 = to_uint8(images)
        five = aligned_face_points(*u8.shape[1:3])
        blob = preprocess(np.stack([align_112(np.ascontiguousarray(im), five) for im in u8]))
        chunks = [blob[i : i + 1] for i in range(len(blob))] if self.one_at_a_time else [blob]
        out = [self.session.run(None, {self.input_name: c})[0] for c in chunks]
        return np.concatenate(out).reshape(len(blob), -1).astype(np.float64)
