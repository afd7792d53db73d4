"""Face analysis: named backends (detection, landmarks, identity descriptors), FFHQ alignment and paste-back, head
pose. Heavy libraries load only when a backend is built."""

from cfbench.face import dlib_backend, retinaface  # noqa: F401  (register 'dlib' and 'retinaface'; models load lazily)
from cfbench.face.backends import FACE_BACKENDS, Face, FaceBox, as_uint8_rgb, five_from_68, get_backend

__all__ = ["FACE_BACKENDS", "Face", "FaceBox", "as_uint8_rgb", "five_from_68", "get_backend"]
