"""Whole-photo restoration (cfbench.face.photo and `cfbench restore` on whole photos): detection and alignment of
every face, paste-back, upscaling, the centre face, photos without faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfbench.errors import BadInputError
from tests.face.conftest import FACES, photo_png, read_rgb, restore_cli


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


def _read(path) -> np.ndarray:
    return read_rgb(path)


def test_detect_and_align_every_face(dlib_backend):
    from cfbench.face.align import template
    from cfbench.face.photo import detect_and_align

    img = read_rgb(FACES / "cf_00.jpg")
    faces = detect_and_align(img, 512, backend=dlib_backend)
    assert len(faces) == 4
    for f in faces:
        assert f.crop.shape == (512, 512, 3) and f.crop.dtype == np.uint8 and f.matrix.shape == (2, 3)
        mapped = f.face.five @ f.matrix[:, :2].T + f.matrix[:, 2]
        assert np.abs(mapped - template(512)).max() < 25  # five points land near the template (px at 512)
    center = detect_and_align(img, 512, only_center_face=True, backend=dlib_backend)
    assert len(center) == 1
    cx = img.shape[1] / 2
    assert abs(center[0].face.box.center[0] - cx) == min(abs(f.face.box.center[0] - cx) for f in faces)
    assert detect_and_align(read_rgb(FACES / "aflw_00181.jpg"), backend=dlib_backend) == []


def test_upscale_matrix_maps_the_same_points():
    from cfbench.face.photo import upscale_matrix

    m = np.array([[1.2, -0.3, 10.0], [0.3, 1.2, -5.0]])
    pts = np.array([[0.0, 0.0], [10.0, 20.0], [100.5, 3.25]])
    for s in (1, 2, 3):
        up = (pts + 0.5) * s - 0.5  # the same points in the photo resized by s (cv2 pixel centres)
        mu = upscale_matrix(m, s)
        np.testing.assert_allclose(up @ mu[:, :2].T + mu[:, 2], pts @ m[:, :2].T + m[:, 2], atol=1e-9)
    with pytest.raises(BadInputError):
        upscale_matrix(m, 0)


@pytest.mark.parametrize("upscale", [1, 2])
def test_paste_back_of_unchanged_crops(dlib_backend, upscale):
    """Pasting the aligned crops back unchanged reproduces the (upscaled) photo: exactly far from the faces, within
    a stated PSNR inside them."""
    from cfbench.face.align import paste_mask
    from cfbench.face.photo import detect_and_align, paste_faces, upscale_image, upscale_matrix

    img = read_rgb(FACES / "cf_03.jpg")
    faces = detect_and_align(img, 512, backend=dlib_backend)
    out = paste_faces(img, [f.crop for f in faces], [f.matrix for f in faces], upscale)
    h, w = img.shape[:2]
    assert out.shape == (h * upscale, w * upscale, 3) and out.dtype == np.uint8
    base = upscale_image(img, upscale)
    mask = paste_mask(upscale_matrix(faces[0].matrix, upscale), 512, out.shape[:2])
    far = mask == 0
    assert far.mean() > 0.5
    assert np.array_equal(out[far], base[far])
    inside = mask > 0.5
    mse = np.mean((out[inside].astype(np.float64) - base[inside]) ** 2)
    assert 10 * np.log10(255**2 / mse) > 38  # observed 45.7 dB (x1) and 43.1 dB (x2): two bilinear warps


def test_paste_faces_bad_input():
    from cfbench.face.photo import paste_faces

    img = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(BadInputError, match="2 restored crops but 1"):
        paste_faces(img, [np.zeros((8, 8, 3), np.uint8)] * 2, [np.eye(2, 3)])
    with pytest.raises(BadInputError, match="upscale"):
        paste_faces(img, [], [], upscale=0)
    assert np.array_equal(paste_faces(img, [], []), img)


# -- the command, with the bundled codeformer_tiny ---------------------------------------------------------------------


@pytest.mark.slow
def test_cli_whole_photo_upscaled_and_far_pixels_unchanged(dlib_backend, tmp_path, capsys):
    from cfbench.face.align import paste_mask
    from cfbench.face.photo import detect_and_align, upscale_image, upscale_matrix

    path, rgb = photo_png(tmp_path, "cf_03")
    assert restore_cli([path], tmp_path / "out", "--upscale", "2", "--w", "0.7") == 0
    err = capsys.readouterr().err
    assert "restored 1 face(s) in 1 whole photo(s)" in err and "bicubic" in err
    out = _read(tmp_path / "out" / "cf_03.png")
    assert out.shape == (rgb.shape[0] * 2, rgb.shape[1] * 2, 3)
    base = upscale_image(rgb, 2)
    (face,) = detect_and_align(rgb, 512, backend=dlib_backend)
    mask = paste_mask(upscale_matrix(face.matrix, 2), 512, out.shape[:2])
    assert np.array_equal(out[mask == 0], base[mask == 0])
    assert np.abs(out[mask > 0.9].astype(int) - base[mask > 0.9]).mean() > 1  # the face was restored


@pytest.mark.slow
def test_cli_only_center_face_restores_one(dlib_backend, tmp_path, capsys):
    path, rgb = photo_png(tmp_path, "cf_00")
    assert restore_cli([path], tmp_path / "out", "--only-center-face", "--whole-photo") == 0
    assert "restored 1 face(s) in 1 whole photo(s)" in capsys.readouterr().err
    assert _read(tmp_path / "out" / "cf_00.png").shape == rgb.shape


def test_cli_photo_without_face_is_written_unchanged(dlib_backend, tmp_path, capsys):
    from cfbench.face.photo import upscale_image

    path, rgb = photo_png(tmp_path, "aflw_00181")
    assert restore_cli([path], tmp_path / "out", "--upscale", "2") == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "no face found" in line]
    assert len(warnings) == 1 and "unchanged" in warnings[0] and "aflw_00181.png" in warnings[0]
    assert "restored 0 face(s) in 1 whole photo(s)" in err
    assert np.array_equal(_read(tmp_path / "out" / "aflw_00181.png"), upscale_image(rgb, 2))


def test_cli_whole_photo_and_resize_conflict(tmp_path, capsys):
    path, _ = photo_png(tmp_path, "aflw_00181")
    assert restore_cli([path], tmp_path / "out", "--whole-photo", "--resize") == 2
    assert "--resize applies to aligned faces" in capsys.readouterr().err


def test_cli_aligned_flag_refuses_other_sizes(tmp_path, capsys):
    path, _ = photo_png(tmp_path, "aflw_00181")
    assert restore_cli([path], tmp_path / "out", "--aligned") == 2
    err = capsys.readouterr().err
    assert "is 450x450" in err and "--resize" in err


def test_cli_detector_choice(tmp_path, capsys):
    """--detector names a face backend: an unknown name and RetinaFace without its weights are one-line errors
    (exit 2) before anything is restored."""
    path, _ = photo_png(tmp_path, "cf_03")
    assert restore_cli([path], tmp_path / "out", "--detector", "retina") == 2
    assert "did you mean 'retinaface'" in capsys.readouterr().err
    assert restore_cli([path], tmp_path / "out", "--detector", "retinaface") == 2
    err = capsys.readouterr().err
    assert "detection_Resnet50_Final.pth" in err and "weights fetch retinaface_resnet50" in err
    assert not (tmp_path / "out" / "cf_03.png").exists()
