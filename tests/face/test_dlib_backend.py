"""The dlib backend on real faces: detection counts, landmark conventions, descriptors, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from cfbench.errors import BadInputError
from cfbench.face import FACE_BACKENDS, as_uint8_rgb, five_from_68, get_backend
from cfbench.face.align import FFHQ_TEMPLATE_512
from cfbench.registry import UnknownNameError
from tests.face.conftest import ALIGNED, FACES, read_rgb


def test_registry_names_and_unknown_backend():
    assert "dlib" in FACE_BACKENDS.names()
    with pytest.raises(UnknownNameError, match="dlib"):
        get_backend("dlibb")


@pytest.mark.parametrize(("name", "count"), [("cf_00.jpg", 4), ("cf_03.jpg", 1)])
def test_whole_photos_face_count(dlib_backend, name, count):
    """Every face HOG finds at upsample 1 in the whole photos (counts observed with dlib 20.0.1)."""
    boxes = dlib_backend.detect(read_rgb(FACES / name))
    assert len(boxes) == count
    assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)


def test_aligned_faces_landmarks_near_template(dlib_backend):
    """On FFHQ-aligned 512 faces, the eye centres from the 68 points lie within 12 px of the template's eyes and
    the five points within 25 px (dlib's mouth corners and nose tip are defined differently from the template's)."""
    for path in sorted(ALIGNED.glob("*.png")):
        faces = dlib_backend.analyze(read_rgb(path), 0)
        assert len(faces) == 1, path.name
        lm = faces[0].landmarks68
        assert lm.shape == (68, 2) and lm.dtype == np.float64
        err = np.linalg.norm(faces[0].five - FFHQ_TEMPLATE_512, axis=1)
        assert err[:2].max() < 12, (path.name, err)
        assert err.max() < 60, (path.name, err)
        # conventions: the first eye is on the image's left, the chin (8) is below the nose tip (30)
        assert faces[0].five[0, 0] < faces[0].five[1, 0] and lm[8, 1] > lm[30, 1]


def test_five_points_from_68_order():
    lm = np.zeros((68, 2))
    lm[36:42] = [10, 20]
    lm[42:48] = [30, 20]
    lm[30], lm[48], lm[54] = [20, 30], [12, 40], [28, 40]
    np.testing.assert_array_equal(five_from_68(lm), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])
    with pytest.raises(BadInputError):
        five_from_68(np.zeros((5, 2)))


def test_landmarks_5_and_68_and_descriptor(dlib_backend):
    img = read_rgb(ALIGNED / "ffhq_00003.png")
    box = dlib_backend.detect(img, 0)[0]
    assert dlib_backend.landmarks(img, box, 5).shape == (5, 2)
    d = dlib_backend.descriptor(img, box)
    assert d.shape == (128,) and np.isfinite(d).all()
    np.testing.assert_array_equal(d, dlib_backend.descriptor(img, box))  # deterministic
    with pytest.raises(BadInputError):
        dlib_backend.landmarks(img, box, 98)


def test_tensor_input_equals_uint8(dlib_backend):
    img = read_rgb(ALIGNED / "ffhq_00003.png")
    t = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    np.testing.assert_array_equal(as_uint8_rgb(t), img)
    assert dlib_backend.detect(t, 0) == dlib_backend.detect(img, 0)


def test_bad_and_degenerate_inputs(dlib_backend):
    # no face: a near-profile face HOG misses, a flat gray image, a tiny image -> empty lists, no crash
    assert dlib_backend.detect(read_rgb(FACES / "aflw_00181.jpg")) == []
    assert dlib_backend.analyze(np.full((200, 200, 3), 128, np.uint8)) == []
    assert dlib_backend.detect(np.zeros((4, 4, 3), np.uint8)) == []
    # grayscale images are analysed as gray RGB
    gray = read_rgb(ALIGNED / "ffhq_00003.png").mean(2).astype(np.uint8)
    assert len(dlib_backend.detect(gray, 0)) == 1
    for bad in (np.zeros((10, 10, 3), np.float64), np.zeros((10, 10, 2), np.uint8), "x", torch.zeros(3, 8, 8) + 2):
        with pytest.raises(BadInputError):
            dlib_backend.detect(bad)
    with pytest.raises(BadInputError):
        get_backend("dlib", detector="nope")


def test_cnn_detector_finds_the_face(dlib_backend):
    cnn = get_backend("dlib", detector="cnn", upsample=0)
    img = read_rgb(ALIGNED / "ffhq_00003.png")[::2, ::2].copy()  # 256x256 keeps the CNN fast on CPU
    boxes = cnn.detect(img)
    assert len(boxes) == 1
    hog = dlib_backend.detect(img, 1)[0]
    assert abs(boxes[0].center[0] - hog.center[0]) < 20 and abs(boxes[0].center[1] - hog.center[1]) < 20


def test_speed_per_face(dlib_backend):
    """Loose bound (shared 2-core CPU): HOG detection + 68 points + descriptor of a 512 face under 2 s."""
    img = read_rgb(ALIGNED / "celebahq_015248.png")
    t = time.perf_counter()
    box = dlib_backend.detect(img, 0)[0]
    dlib_backend.landmarks(img, box)
    dlib_backend.descriptor(img, box)
    assert time.perf_counter() - t < 2.0
