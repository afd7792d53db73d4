"""The `dlib` face backend: works offline, its models ship on PyPI (`dlib-bin` + `face-recognition-models`).

- Detection: dlib's HOG + linear SVM frontal detector (`get_frontal_face_detector`, finds faces of about 80x80
  pixels and larger at `upsample=0`, 40x40 at `upsample=1`; near-profile faces are often missed), or, with
  `detector="cnn"`, the mmod CNN detector `mmod_human_face_detector.dat` (slower on CPU, finds more poses).
- Landmarks: the 68-point iBUG 300-W shape predictor (`shape_predictor_68_face_landmarks.dat`) and the 5-point one
  (`shape_predictor_5_face_landmarks.dat`: two corners of each eye and the bottom of the nose, in dlib's order,
  which is NOT the FFHQ template order; use `Face.five` for alignment).
- Descriptor: `dlib_face_recognition_resnet_model_v1.dat`, a 128-D embedding (ResNet-29 metric learning; dlib
  reports 99.38% on LFW; two faces of one person are usually within Euclidean distance 0.6). It is computed on
  dlib's own 150x150 chip aligned with the 5-point shape (padding 0.25, no jitter), as dlib's examples do.

The model files are located inside the installed `face_recognition_models` package without importing it (its
`__init__` imports `pkg_resources`, gone in setuptools >= 81), through the weights registry entries `dlib_*`.

Coordinates and input formats: see `cfbench.face.backends`. dlib's points are integers (pixel centres); they are
returned as float64.

Results of `analyze` are cached in memory per (image bytes, upsample), so metrics that share GT images (identity
and LMD) analyse each GT once per process.
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
from typing import Any

import numpy as np

from cfbench import weights
from cfbench.errors import BadInputError
from cfbench.face.backends import Face, FaceBox, as_uint8_rgb, five_from_68, register_backend

DESCRIPTOR_DIM = 128
_CACHE_SIZE = 512


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the dlib face backend needs dlib: pip install 'cfbench[metrics]' (or dlib-bin face-recognition-models)"
        ) from exc
    return dlib


@register_backend("dlib")
class DlibBackend:
    """dlib detection, landmarks and descriptors; see the module docstring.

    `detector`: "hog" (default) or "cnn". `upsample`: how many times the detector upsamples the image by 2 before
    detecting (finds smaller faces, costs about 4x per step). `num_threads` caps dlib's own threads (default 2).
    """

    def __init__(self, detector: str = "hog", upsample: int = 1, num_threads: int = 2) -> None:
        if detector not in ("hog", "cnn"):
            raise BadInputError(f"unknown dlib detector {detector!r}; use 'hog' or 'cnn'")
        if isinstance(upsample, bool) or not isinstance(upsample, int) or not 0 <= upsample <= 3:
            raise BadInputError(f"upsample must be an integer in 0..3; got {upsample!r}")
        dlib = _import_dlib()
        os.environ.setdefault("OMP_NUM_THREADS", str(num_threads))
        self.detector_name = detector
        self.upsample = upsample
        if detector == "hog":
            self._detector = dlib.get_frontal_face_detector()
        else:
            self._detector = dlib.cnn_face_detection_model_v1(str(weights.require("dlib_mmod_detector")))
        self._sp68 = dlib.shape_predictor(str(weights.require("dlib_shape_predictor_68")))
        self._sp5 = dlib.shape_predictor(str(weights.require("dlib_shape_predictor_5")))
        self._rec = dlib.face_recognition_model_v1(str(weights.require("dlib_face_recognition_resnet")))
        self._dlib = dlib
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe
        self._cache: collections.OrderedDict[tuple, list[Face]] = collections.OrderedDict()

    # -- single steps ---------------------------------------------------------------------------------------------

    def detect(self, image: Any, upsample: int | None = None) -> list[FaceBox]:
        """Faces in `image`, best score first (an empty list when there is none, e.g. tiny images)."""
        img = as_uint8_rgb(image)
        up = self.upsample if upsample is None else upsample
        with self._lock:
            if self.detector_name == "hog":
                rects, scores, _ = self._detector.run(img, up, 0.0)
                found = [(r, s) for r, s in zip(rects, scores, strict=True)]
            else:
                found = [(d.rect, d.confidence) for d in self._detector(img, up)]
        boxes = [
            FaceBox(float(r.left()), float(r.top()), float(r.right()), float(r.bottom()), float(s)) for r, s in found
        ]
        return sorted(boxes, key=lambda b: -b.score)

    def _rect(self, box: FaceBox) -> Any:
        return self._dlib.rectangle(round(box.x1), round(box.y1), round(box.x2), round(box.y2))

    def _shape(self, predictor: Any, img: np.ndarray, box: FaceBox) -> Any:
        with self._lock:
            return predictor(img, self._rect(box))

    def landmarks(self, image: Any, box: FaceBox, points: int = 68) -> np.ndarray:
        """(points, 2) float64 landmarks of the face in `box`: 68 (iBUG 300-W order) or 5 (dlib's own order)."""
        if points not in (5, 68):
            raise BadInputError(f"the dlib backend gives 5 or 68 landmarks; got points={points!r}")
        img = as_uint8_rgb(image)
        shape = self._shape(self._sp68 if points == 68 else self._sp5, img, box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def descriptor(self, image: Any, box: FaceBox) -> np.ndarray:
        """The 128-D dlib descriptor (float64) of the face in `box` (chip aligned by the 5-point shape)."""
        img = as_uint8_rgb(image)
        shape = self._shape(self._sp5, img, box)
        with self._lock:
            vec = self._rec.compute_face_descriptor(img, shape, 0, 0.25)
        return np.array(vec, np.float64)

    # -- one pass, cached -----------------------------------------------------------------------------------------

    def analyze(self, image: Any, upsample: int | None = None) -> list[Face]:
        """Detection and 68 landmarks of every face, best detection score first (cached per image content)."""
        img = as_uint8_rgb(image)
        up = self.upsample if upsample is None else upsample
        key = (hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest(), img.shape, up)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        faces = []
        for box in self.detect(img, up):
            lm = self.landmarks(img, box, 68)
            faces.append(Face(box, lm, five_from_68(lm)))
        self._cache[key] = faces
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return faces
