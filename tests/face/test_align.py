"""FFHQ alignment, inverse warp and paste-back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cfbench.errors import BadInputError
from cfbench.face.align import (
    FFHQ_TEMPLATE_512,
    align_face,
    invert,
    paste_back,
    paste_mask,
    similarity_transform,
    template,
)
from tests.face.conftest import FACES, read_rgb


def test_template_values_and_scaling():
    np.testing.assert_allclose(FFHQ_TEMPLATE_512[0], [192.98138, 239.94708])
    np.testing.assert_allclose(FFHQ_TEMPLATE_512[4], [313.08905, 371.15118])
    np.testing.assert_allclose(template(256), FFHQ_TEMPLATE_512 / 2)


def test_similarity_recovers_a_known_transform():
    angle, scale, t = np.deg2rad(20), 0.7, np.array([30.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = FFHQ_TEMPLATE_512.copy()
    dst = src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-6)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-4)
    np.testing.assert_allclose(invert(m) @ np.append(dst[0], 1), src[0], atol=1e-4)


def test_synthetic_points_map_exactly_onto_template():
    """A face whose five points are a similarity image of the template warps with the template exactly."""
    img = np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)
    five = FFHQ_TEMPLATE_512 * 0.4 + [100, 40]
    crop, m = align_face(img, five)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(five @ m[:, :2].T + m[:, 2], FFHQ_TEMPLATE_512, atol=1e-3)


@pytest.mark.parametrize("name", ["cf_00.jpg", "cf_03.jpg"])
def test_whole_photo_alignment_and_paste_back(dlib_backend, name):
    """Each face of a whole photo aligns to a 512 crop in which dlib finds the face again: the re-detected five
    points are within 4 px (mean) of where the transform sends the original points, and within 15 px (mean) of the
    template (LMedS fits a subset of the points; dlib's points differ from the template's definitions). Pasting the
    unchanged crop back reproduces the face box region with PSNR > 40 dB (two bilinear resamplings)."""
    img = read_rgb(FACES / name)
    faces = dlib_backend.analyze(img)
    assert faces
    for face in faces:
        crop, m = align_face(img, face.five)
        again = dlib_backend.analyze(crop, 0)
        assert len(again) >= 1
        mapped = face.five @ m[:, :2].T + m[:, 2]
        assert np.linalg.norm(again[0].five - mapped, axis=1).mean() < 4
        assert np.linalg.norm(again[0].five - FFHQ_TEMPLATE_512, axis=1).mean() < 15
        back = paste_back(img, crop, m)
        assert back.shape == img.shape and back.dtype == np.uint8
        x1, y1, x2, y2 = (int(round(v)) for v in face.box.as_array())
        region = (slice(max(y1, 0), y2), slice(max(x1, 0), x2))
        mse = ((back[region].astype(float) - img[region].astype(float)) ** 2).mean()
        assert mse == 0 or 10 * np.log10(255**2 / mse) > 40


def test_paste_back_replaces_face_region_only():
    img = np.zeros((300, 300, 3), np.float32)
    five = FFHQ_TEMPLATE_512 * 0.3 + [70, 60]
    _, m = align_face(img, five)
    out = paste_back(img, np.ones((512, 512, 3), np.float32), m)
    mask = paste_mask(m, 512, (300, 300))
    center = (five[2] + 0.5).astype(int)
    assert out[center[1], center[0]].min() > 0.99  # inside the face: the crop
    assert out[0, 0].max() == 0 and out[-1, -1].max() == 0  # far outside: the image
    assert 0 <= mask.min() and mask.max() <= 1 and 0 < mask.mean() < 1


def test_bad_inputs():
    with pytest.raises(BadInputError):
        similarity_transform(np.zeros((5, 2)), FFHQ_TEMPLATE_512)  # degenerate
    with pytest.raises(BadInputError):
        similarity_transform(np.zeros((5, 3)), FFHQ_TEMPLATE_512)
    with pytest.raises(BadInputError):
        align_face(np.zeros((10, 10), np.uint8), FFHQ_TEMPLATE_512)
    with pytest.raises(BadInputError):
        template(8)
    img = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(BadInputError):
        paste_back(img, np.zeros((512, 500, 3), np.uint8), np.eye(2, 3))
    assert cv2.invertAffineTransform(np.eye(2, 3)).shape == (2, 3)
