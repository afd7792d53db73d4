"""Bad input to face analysis and the face metrics, on real faces and simple transforms of them: no face, several
faces where one is expected, tiny images, grayscale images. Each has the outcome documented in docs/face.md
("Bad input"): a missing value (NaN, counted), an empty list, or a one-line BadInputError; never a crash."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from cfbench.errors import BadInputError
from cfbench.eval.gt_pose import gt_head_pose
from cfbench.face.pose import head_pose
from cfbench.metrics.gt_landmarks import image_digest
from cfbench.metrics.registry import get_metric
from tests.face.conftest import ALIGNED, FACES, read_rgb

FACE = ALIGNED / "celebahq_015248.png"


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)


@pytest.fixture(scope="module")
def dlib_metrics(dlib_backend):
    return {name: get_metric(name).build() for name in ("identity_cos[dlib]", "lmd[dlib]")}


def _noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)


# -- no face ---------------------------------------------------------------------------------------------------------


def test_no_face_in_noise_or_blank(dlib_backend, dlib_metrics):
    from cfbench.face.photo import detect_and_align

    face = _tensor(read_rgb(FACE))
    for empty in (_noise(), np.zeros((512, 512, 3), np.uint8)):
        assert dlib_backend.analyze(empty) == [] and detect_and_align(empty, backend=dlib_backend) == []
        x = _tensor(empty)
        assert all(math.isnan(v) for v in gt_head_pose(dlib_backend, x))
        for metric in dlib_metrics.values():
            before = metric.missing
            out = metric(torch.stack([x, face]), torch.stack([x, face]))  # the other row keeps its value
            assert math.isnan(out[0]) and math.isfinite(out[1]) and metric.missing == before + 1


# -- several faces where one is expected -----------------------------------------------------------------------------


def test_several_faces_the_largest_is_used(dlib_backend, dlib_metrics):
    """A whole photo with 4 faces (cf_00) as GT: the metrics and the GT pose use the largest face, every time."""
    photo = read_rgb(FACES / "cf_00.jpg")
    faces = dlib_backend.analyze(photo, 1)
    assert len(faces) == 4
    largest = max(faces, key=lambda f: f.box.area)
    x = _tensor(photo)[None]
    cos, lmd = dlib_metrics["identity_cos[dlib]"], dlib_metrics["lmd[dlib]"]
    assert cos._gt_face(photo, image_digest(photo)).box == largest.box
    assert float(cos(x, x)[0]) == pytest.approx(1.0, abs=1e-7) and float(lmd(x, x)[0]) == 0.0
    each = get_metric("lmd[dlib]").build(boxes="each")
    assert float(each(x, x)[0]) == 0.0  # the restored image's own detection picks the same (largest) face
    pose = head_pose(largest.landmarks68, photo.shape[:2])
    assert gt_head_pose(dlib_backend, x[0]) == (pose.yaw, pose.pitch, pose.roll)


# -- tiny images -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 1])
def test_tiny_images_are_missing_for_dlib(dlib_backend, dlib_metrics, size):
    """A real face shrunk to 16x16 (and a 1x1 image, which once crashed inside dlib on its strides): no face."""
    tiny = cv2.resize(read_rgb(FACE), (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, 3)
    assert dlib_backend.analyze(tiny) == []
    x = _tensor(tiny)[None]
    for metric in dlib_metrics.values():
        assert math.isnan(metric(x, x)[0])
    assert all(math.isnan(v) for v in gt_head_pose(dlib_backend, x[0]))


def test_tiny_images_have_values_for_the_whole_image_protocols():
    """ArcFace (VQFR protocol) sees the whole image, resized to 128x128: a 16x16 face has a value, never missing."""
    from cfbench.face.arcface import ResNetArcFace
    from cfbench.metrics.identity import ArcFaceIdentity

    torch.manual_seed(0)
    arc = ArcFaceIdentity(state_dict=ResNetArcFace().state_dict())
    face = _tensor(read_rgb(FACE))[None]
    tiny = torch.nn.functional.interpolate(face, size=(16, 16), mode="area")
    assert float(arc(tiny, tiny)[0]) == pytest.approx(1.0, abs=1e-6)
    assert math.isfinite(arc(torch.roll(tiny, 2, dims=3), tiny)[0])


# -- grayscale -------------------------------------------------------------------------------------------------------


def test_grayscale_arrays_are_analysed_as_gray_rgb(dlib_backend):
    gray = cv2.cvtColor(read_rgb(FACE), cv2.COLOR_RGB2GRAY)
    as_rgb = dlib_backend.analyze(np.repeat(gray[:, :, None], 3, axis=2))
    assert len(as_rgb) == 1
    for form in (gray, gray[:, :, None]):
        (face,) = dlib_backend.analyze(form)
        np.testing.assert_array_equal(face.landmarks68, as_rgb[0].landmarks68)


def test_grayscale_tensors(dlib_metrics):
    """1-channel tensors are refused with the fix in the message; a face converted to gray (3 equal channels) is
    scored against its colour GT: still the same person, the same geometry within a pixel or two."""
    color = _tensor(read_rgb(FACE))[None]
    gray3 = (
        color.mul(torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True).expand(-1, 3, -1, -1)
    )
    cos, lmd = dlib_metrics["identity_cos[dlib]"], dlib_metrics["lmd[dlib]"]
    for metric in (cos, lmd):
        with pytest.raises(BadInputError, match=r"\(N, 3, H, W\)") as err:
            metric(gray3[:, :1], gray3[:, :1])
        assert "\n" not in str(err.value)
    assert float(cos(gray3.contiguous(), color)[0]) > 0.95
    assert float(lmd(gray3.contiguous(), color)[0]) < 2.0
