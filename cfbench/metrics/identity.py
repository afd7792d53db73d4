"""Identity similarity of restored and GT faces: `identity_cos[<backend>]` (cosine of the identity embeddings, higher
is better, 1 for identical faces) and `deg[<backend>]` (the angle arccos(cos) in degrees, the papers' "Deg.", lower
is better, 0 for identical faces). The backend is in the column name and never substituted.

Input: restored and GT float32 RGB NCHW in [0, 1]. Output: one value per image; NaN (missing, counted in `missing`)
where `dlib` finds no face, never 0. Backends: `dlib` (offline; our protocol, the GT face box used on both images
unless `boxes="each"`), `arcface` (the GFPGAN/VQFR protocol, `cfbench.face.arcface`; the whole image is the face)
and `insightface` (buffalo_l ArcFace R50 on the FFHQ-template 112x112 crop, `cfbench.face.insightface`). The
protocols step by step and VQFR's aggregate (`vqfr_deg_mean`): docs/metrics/identity.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cfbench.errors import BadInputError
from cfbench.metrics.base import MetricKind, MetricSpec, PerImageMetric
from cfbench.metrics.gt_landmarks import CachedGtSide, GtMemo, image_digest
from cfbench.metrics.registry import register
from cfbench.weights import require, sha256_file

BOX_MODES = ("gt", "each")
_GT_FACE_WIDTH = 5 + 68 * 2  # the memo row of a GT face: box (x1, y1, x2, y2, score), then the 68 (x, y) points


def cos_to_deg(cos: torch.Tensor) -> torch.Tensor:
    """arccos in degrees, cos clipped to [-1, 1] first (NaN stays NaN)."""
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def vqfr_deg_mean(deg: Any, threshold: float = 1.0) -> tuple[float, int]:
    """VQFR's reported Deg: the mean of the finite per-image degrees that are >= `threshold`, and the number of
    pairs it left out as "identical" (deg < threshold). NaN rows (missing faces) are not counted in either."""
    d = np.asarray(deg, np.float64)
    d = d[np.isfinite(d)]
    kept = d[d >= threshold]
    return (float(kept.mean()) if kept.size else math.nan), int((d < threshold).sum())


def _largest(faces: list) -> Any:
    return max(faces, key=lambda f: f.box.area) if faces else None


def dlib_gt_face(backend: Any, image: np.ndarray) -> Any:
    """The face used for a GT image: HOG without upsampling, then with one 2x step if none; the largest box."""
    faces = backend.analyze(image, 0) or backend.analyze(image, 1)
    return _largest(faces)


class _DlibPairMetric(CachedGtSide, PerImageMetric):
    """Shared by the dlib identity and landmark metrics: per pair, the GT face and the face of the restored image
    (the GT box, or its own detection), or None when missing. The GT faces (box and 68 landmarks) are a `GtMemo`,
    cached per dataset by the sweep and folder scoring (`cfbench.metrics.gt_landmarks`)."""

    family: str

    def __init__(self, device: torch.device | str = "cpu", boxes: str = "gt") -> None:
        super().__init__(device)
        if boxes not in BOX_MODES:
            raise BadInputError(f"boxes must be one of {', '.join(BOX_MODES)}; got {boxes!r}")
        from cfbench.face import get_backend

        self.boxes = boxes
        self.backend = get_backend("dlib")
        self.missing = 0  # rows returned as NaN so far (face not found)
        self.gt_memo = GtMemo(_GT_FACE_WIDTH)

    @property
    def column_name(self) -> str:
        return self.spec.name if self.boxes == "gt" else f"{self.family}[dlib,{self.boxes}]"

    def gt_cache_key(self) -> dict[str, Any]:
        import dlib

        return {
            "backend": "dlib",
            "dlib": dlib.__version__,
            "gt_face": f"{self.backend.detector_name} upsample 0, else 1; largest box; 68 points",
            "shape_predictor_68": sha256_file(require("dlib_shape_predictor_68")),
            "version": 1,
        }

    def fill_gt(self, gt: torch.Tensor) -> None:
        from cfbench.face.backends import as_uint8_rgb

        for g in gt.cpu():
            g8 = as_uint8_rgb(g)
            self._gt_face(g8, image_digest(g8))

    def _gt_face(self, g8: np.ndarray, digest: str) -> Any:
        """The GT face of `g8` (`dlib_gt_face`; `digest` its `image_digest`), from the memo when this image was
        analysed before."""
        from cfbench.face.backends import Face, FaceBox, five_from_68

        row = self.gt_memo.get(digest)
        if row is None:
            face = dlib_gt_face(self.backend, g8)
            if face is None:
                row = np.full(_GT_FACE_WIDTH, np.nan)
            else:
                row = np.concatenate([face.box.as_array(), [face.box.score], face.landmarks68.ravel()])
            row = self.gt_memo.put(digest, row)
        if np.isnan(row[0]):
            return None
        points = row[5:].reshape(68, 2)
        return Face(FaceBox(*(float(v) for v in row[:5])), points, five_from_68(points))

    def _pairs(self, pred: torch.Tensor, gt: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray, str, Any, Any]]:
        """Per pair: the 8-bit prediction and GT, the GT's `image_digest`, its face (None: not found) and the box to
        read the prediction in (None: no face there)."""
        from cfbench.face.backends import as_uint8_rgb

        out = []
        for p, g in zip(pred.cpu(), gt.cpu(), strict=True):
            p8, g8 = as_uint8_rgb(p), as_uint8_rgb(g)
            digest = image_digest(g8)
            gface = self._gt_face(g8, digest)
            if gface is None:
                pface = None
            elif self.boxes == "gt":
                pface = gface.box
            else:
                found = dlib_gt_face(self.backend, p8)
                pface = found.box if found is not None else None
            out.append((p8, g8, digest, gface, pface))
        return out


class DlibIdentity(_DlibPairMetric):
    """`identity_cos[dlib]` or `deg[dlib]` (docs/metrics/identity.md)."""

    def __init__(self, device: torch.device | str = "cpu", family: str = "identity_cos", boxes: str = "gt") -> None:
        self.family = family
        self.spec = SPECS[family, "dlib"]
        super().__init__(device, boxes)

    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        cos = []
        gt_descriptors: dict[str, np.ndarray] = {}  # a sweep's batch holds each GT face once per w
        for p8, g8, digest, gface, pbox in self._pairs(pred, gt):
            if gface is None or pbox is None:
                cos.append(math.nan)
                self.missing += 1
                continue
            if digest not in gt_descriptors:
                gt_descriptors[digest] = self.backend.descriptor(g8, gface.box)
            a = gt_descriptors[digest]
            b = self.backend.descriptor(p8, pbox)
            cos.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
        c = torch.tensor(cos, dtype=torch.float64).clamp(-1.0, 1.0)
        return c if self.family == "identity_cos" else cos_to_deg(c)


class ArcFaceIdentity(PerImageMetric):
    """`identity_cos[arcface]` or `deg[arcface]`: ArcFace ResNet-18 embeddings (see `cfbench.face.arcface`)."""

    def __init__(
        self,
        device: torch.device | str = "cpu",
        family: str = "identity_cos",
        preprocess: str = "vqfr",
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__(device)
        from cfbench.face import arcface

        if preprocess not in arcface.PREPROCESS:
            raise BadInputError(f"unknown arcface preprocessing {preprocess!r}; use {', '.join(arcface.PREPROCESS)}")
        self.family = family
        self.preprocess = preprocess
        self.spec = SPECS[family, "arcface"]
        self.net = arcface.load_arcface(state_dict).to(self.device).eval()
        self._arcface = arcface

    @property
    def column_name(self) -> str:
        return self.spec.name if self.preprocess == "vqfr" else f"{self.family}[arcface,{self.preprocess}]"

    @torch.no_grad()
    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        prep = self._arcface.PREPROCESS[self.preprocess]
        fp = self.net(prep(pred).to(self.device)).double()
        fg = self.net(prep(gt).to(self.device)).double()
        c = torch.nn.functional.cosine_similarity(fp, fg, dim=1, eps=1e-12).clamp(-1.0, 1.0)
        return c if self.family == "identity_cos" else cos_to_deg(c)


class InsightFaceIdentity(PerImageMetric):
    """`identity_cos[insightface]` or `deg[insightface]`: buffalo_l ArcFace R50 embeddings of the FFHQ-aligned
    faces (see `cfbench.face.insightface`). `model_path`: an ONNX file instead of the registered one."""

    def __init__(self, device: torch.device | str = "cpu", family: str = "identity_cos", model_path: Any = None):
        super().__init__(device)
        from cfbench.face.insightface import InsightFaceEmbedder

        self.family = family
        self.spec = SPECS[family, "insightface"]
        self.embedder = InsightFaceEmbedder(model_path)

    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        fp = torch.from_numpy(self.embedder.embed(pred))
        fg = torch.from_numpy(self.embedder.embed(gt))
        c = torch.nn.functional.cosine_similarity(fp, fg, dim=1, eps=1e-12).clamp(-1.0, 1.0)
        return c if self.family == "identity_cos" else cos_to_deg(c)


_DESCRIPTIONS = {
    "dlib": "dlib 128-D face descriptors (HOG box of the GT, 5-point chip), offline",
    "arcface": "ArcFace ResNet-18 (GFPGAN arcface_resnet18.pth), gray 128x128, whole image (GFPGAN/VQFR protocol)",
    "insightface": "insightface buffalo_l ArcFace R50 (w600k_r50.onnx), RGB 112x112 crop of the FFHQ-aligned face",
}
_REFERENCES = {
    "dlib": "cfbench's own protocol on dlib 20 face_recognition_model_v1 (no published reference numbers)",
    "arcface": "VQFR metric_paper/calculate_cos_dist.py (gray 128x128, [-1,1]), every row kept (no deg<1 exclusion)",
    "insightface": "insightface ArcFaceONNX.get_feat on norm_crop(112) of the FFHQ template points (no SCRFD)",
}


def _spec(family: str, backend: str) -> MetricSpec:
    is_cos = family == "identity_cos"
    if backend == "dlib":

        def build(device="cpu", boxes="gt"):
            return DlibIdentity(device, family=family, boxes=boxes)

        options, weights = (
            {"boxes": "gt"},
            (
                "dlib_shape_predictor_68",
                "dlib_shape_predictor_5",
                "dlib_face_recognition_resnet",
            ),
        )
    elif backend == "insightface":

        def build(device="cpu"):
            return InsightFaceIdentity(device, family=family)

        options, weights = {}, ("insightface_w600k_r50",)
    else:

        def build(device="cpu", preprocess="vqfr"):
            return ArcFaceIdentity(device, family=family, preprocess=preprocess)

        options, weights = {"preprocess": "vqfr"}, ("arcface_resnet18",)
    what = "cosine similarity" if is_cos else "angle in degrees (arccos of the cosine similarity)"
    return MetricSpec(
        name=f"{family}[{backend}]",
        family=family,
        backend=backend,
        kind=MetricKind.FULL_REFERENCE,
        higher_is_better=is_cos,
        reference=_REFERENCES[backend],
        build=build,
        description=f"identity {what} of restored vs GT: {_DESCRIPTIONS[backend]}; NaN where no face is found",
        weights=weights,
        options=options,
        value_range=(-1.0, 1.0) if is_cos else (0.0, 180.0),
        unit="" if is_cos else "°",
        label="identity cosine" if is_cos else "Deg",
        role="fidelity",
        identity=1.0 if is_cos else 0.0,
    )


SPECS: dict[tuple[str, str], MetricSpec] = {
    (f, b): register(_spec(f, b)) for f in ("identity_cos", "deg") for b in ("dlib", "arcface", "insightface")
}
