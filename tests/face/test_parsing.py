"""Face parsing (cfbench.face.parsing) and the parsing paste-back mask: structure against the manifest of facexlib's
ParseNet, output shapes, the input normalisation, strict loading, the weights registry, equality with facexlib's
module on the same seeded weights (when facexlib is installed), the face mask against hand computations, and
`cfbench restore --mask parsing` on a whole photo. The real parsing_parsenet.pth cannot be downloaded here."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cfbench import weights
from cfbench.errors import BadInputError, CheckpointError, MissingWeightsError
from cfbench.face.parsing import (
    CLASSES,
    FACE_CLASSES,
    FaceParser,
    ParseNet,
    class_mask,
    load_parsenet,
    preprocess,
)
from tests.face.conftest import photo_png, read_rgb, restore_cli, seeded_bn_state

MANIFEST = Path(__file__).resolve().parents[1] / "data" / "faces_analysis" / "manifest_parsenet.json"
URL = "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth"


@pytest.fixture(scope="module")
def seeded_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return seeded_bn_state(ParseNet())


@pytest.fixture(scope="module")
def seeded_net(seeded_state) -> ParseNet:
    return load_parsenet(seeded_state)


def _install(state: dict[str, torch.Tensor]) -> None:
    """Put `state` where the registry looks for parsing_parsenet.pth (the test's own $CFBENCH_HOME), in the file's
    layout: a plain state_dict."""
    path = weights.weights_path("parsing_parsenet")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def test_structure_matches_manifest():
    manifest = json.loads(MANIFEST.read_text())
    ours = ParseNet().state_dict()
    assert list(ours) == list(manifest["state_dict"]) and len(ours) == manifest["num_state_dict_entries"]
    for key, tensor in ours.items():
        shape, dtype = manifest["state_dict"][key]
        assert list(tensor.shape) == shape and str(tensor.dtype) == f"torch.{dtype}", key
    assert sum(p.numel() for p in ParseNet().parameters()) == manifest["num_parameters"] == 21303254


def test_output_shapes_any_multiple_of_16(seeded_net):
    x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        logits, image = seeded_net(x)
    assert logits.shape == (2, 19, 64, 48) and image.shape == (2, 3, 64, 48)
    assert torch.isfinite(logits).all()


@pytest.mark.slow
def test_output_shape_at_512(seeded_net):
    """The released weights' size: (N, 19, 512, 512) logits (about 9 s per face on one CPU thread)."""
    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        logits, image = seeded_net(x)
    assert logits.shape == (1, 19, 512, 512) and image.shape == (1, 3, 512, 512)


class _RecordingNet(torch.nn.Module):
    """Records its input; the logits pick class 1 (skin) where the red input channel is positive, else class 18."""

    def forward(self, x):
        self.seen = x
        logits = torch.zeros(x.shape[0], 19, *x.shape[-2:])
        logits[:, 1] = (x[:, 0] > 0).float()
        logits[:, 18] = 0.5
        return logits, x


def test_normalisation_resize_and_rgb_order(seeded_state):
    assert preprocess(torch.tensor([0.0, 0.5, 1.0])).tolist() == [-1.0, 0.0, 1.0]
    parser = FaceParser(state_dict=seeded_state)
    parser.net = _RecordingNet()
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    crops[:, :, :32, 0] = 255  # red on the left half: skin there, cloth elsewhere
    crops[:, :, :, 2] = 51  # blue 0.2 everywhere
    labels = parser.labels(crops)
    seen = parser.net.seen
    assert seen.shape == (2, 3, 512, 512) and seen.dtype == torch.float32
    want = cv2.resize(crops[0].astype(np.float32) / 255, (512, 512), interpolation=cv2.INTER_LINEAR) * 2 - 1
    np.testing.assert_allclose(seen[0].permute(1, 2, 0).numpy(), want, atol=1e-6)  # RGB, (x - 0.5) / 0.5
    assert torch.allclose(seen[:, 2], torch.tensor(0.2 * 2 - 1))
    assert labels.shape == (2, 512, 512) and labels.dtype == np.int64
    assert (labels[:, :, :250] == 1).all() and (labels[:, :, 262:] == 18).all()
    float_labels = parser.labels(crops.astype(np.float32) / 255)
    assert np.array_equal(float_labels, labels)
    with pytest.raises(BadInputError, match="square RGB crops"):
        parser.labels(crops[:, :, :32])
    with pytest.raises(BadInputError, match="uint8 or float32"):
        parser.labels(crops.astype(np.float64))


def test_equals_facexlib_on_the_same_weights(seeded_state):
    parsenet = pytest.importorskip("facexlib.parsing.parsenet")
    theirs = parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19)
    theirs.load_state_dict(seeded_state, strict=True)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        logits, image = load_parsenet(seeded_state)(x)
        t_logits, t_image = theirs.eval()(x)
    torch.testing.assert_close(logits, t_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(image, t_image, rtol=0, atol=1e-5)


def test_strict_loading_and_the_registry_file(seeded_state):
    _install(seeded_state)
    loaded = load_parsenet().state_dict()
    assert torch.equal(loaded["out_mask_conv.conv2d.bias"], seeded_state["out_mask_conv.conv2d.bias"])
    bad = dict(seeded_state)
    bad.pop("body.9.conv2.norm.norm.running_var")
    with pytest.raises(CheckpointError) as err:
        load_parsenet(bad)
    assert "missing (1): body.9.conv2.norm.norm.running_var" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_parsenet({**seeded_state, "out_mask_conv.conv2d.bias": torch.zeros(18)})


def test_registry_entry_and_missing_weights_error():
    entry = weights.WEIGHTS.get("parsing_parsenet")
    assert entry.urls[0] == URL and entry.filename == "parsing_parsenet.pth"
    assert entry.sha256 == "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2"
    assert entry.size == 85331193
    with pytest.raises(MissingWeightsError) as err:
        FaceParser()
    assert "parsing_parsenet.pth" in str(err.value) and URL in str(err.value)


# -- the face mask ------------------------------------------------------------------------------------------------


def test_face_classes_are_codeformers():
    """CodeFormer's MASK_COLORMAP (255 = face) over the 19 classes, and what they are."""
    colormap = [0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0]
    assert [255 if c in FACE_CLASSES else 0 for c in range(19)] == colormap
    assert len(CLASSES) == 19
    excluded = [CLASSES[c] for c in range(19) if c not in FACE_CLASSES]
    assert excluded == ["background", "hat", "necklace", "neck", "cloth"]
    for c in range(19):
        mask = class_mask(np.full((128, 128), c, np.int64))
        assert mask[64, 64] == (1.0 if c in FACE_CLASSES else 0.0), CLASSES[c]


def test_uniform_face_is_one_inside_a_zero_frame():
    mask = class_mask(np.ones((512, 512), np.int64))
    assert mask.dtype == np.float32 and mask.shape == (512, 512)
    np.testing.assert_allclose(mask[10:-10, 10:-10], 1.0, atol=1e-6)  # a blurred constant stays constant
    frame = np.ones((512, 512), bool)
    frame[10:-10, 10:-10] = False
    assert (mask[frame] == 0).all()


def test_blurred_edge_by_hand():
    """Face (skin) on columns < 256, cloth right of them: each row is the step convolved twice with the normalized
    101-tap Gaussian of sigma 11, with reflect-101 borders, then the 10-pixel frame is zeroed."""
    labels = np.where(np.arange(512) < 256, 1, 18)[None].repeat(512, 0)
    x = np.arange(-50, 51)
    kernel = np.exp(-(x**2) / (2 * 11.0**2))
    kernel /= kernel.sum()
    row = (np.arange(512) < 256).astype(np.float64)
    for _ in range(2):
        row = np.convolve(np.pad(row, 50, mode="reflect"), kernel, mode="valid")  # numpy 'reflect' = reflect-101
    row[:10], row[-10:] = 0, 0
    mask = class_mask(labels)
    np.testing.assert_allclose(mask[10:-10], np.broadcast_to(row, (492, 512)), atol=1e-6)
    assert mask[100, 255] + mask[100, 256] == pytest.approx(1.0, abs=1e-6)  # symmetric about the edge
    assert 0.5 < mask[100, 255] < 0.55 and mask[100, 150] == pytest.approx(1.0, abs=1e-6)
    assert mask[100, 256 + 101] == pytest.approx(0.0, abs=1e-6)  # two 50-pixel blurs reach 100 pixels


def test_masks_at_the_crop_size(seeded_state):
    parser = FaceParser(state_dict=seeded_state)
    parser.net = _RecordingNet()
    crops = np.zeros((1, 64, 64, 3), np.float32)
    crops[:, :, :32, 0] = 1.0
    (mask,) = parser.masks(crops)
    full = class_mask(parser.labels(crops)[0])
    assert mask.shape == (64, 64) and mask.dtype == np.float32
    np.testing.assert_allclose(mask, cv2.resize(full, (64, 64), interpolation=cv2.INTER_LINEAR))


def test_paste_back_with_a_face_mask():
    """A zero face mask pastes nothing; an all-ones one gives the soft-mask paste where the bicubic warp of it is
    one (two crop pixels in from the crop's edge, where the warp meets its zero border) and never pastes more; the
    mask must match its crop."""
    from cfbench.face.align import paste_back

    rng = np.random.default_rng(0)
    image = rng.random((80, 90, 3), dtype=np.float32)
    face = rng.random((32, 32, 3), dtype=np.float32)
    m = np.array([[0.8, 0.1, -10.0], [-0.1, 0.8, -8.0]])  # image -> crop
    assert np.array_equal(paste_back(image, face, m, np.zeros((32, 32), np.float32)), image)
    soft = paste_back(image, face, m)
    ones = paste_back(image, face, m, np.ones((32, 32), np.float32))
    ys, xs = np.mgrid[:80, :90]
    crop_xy = np.stack([xs, ys, np.ones_like(xs)], -1) @ m.T
    interior = ((crop_xy >= 2) & (crop_xy <= 29)).all(-1)
    assert interior.sum() > 600
    np.testing.assert_allclose(ones[interior], soft[interior], atol=1e-5)
    assert (np.abs(ones - image) <= np.abs(soft - image) + 1e-6).all()
    half = np.ones((32, 32), np.float32)
    half[:, 16:] = 0
    out = paste_back(image, face, m, half)
    assert not np.allclose(out, soft) and (np.abs(out - image) <= np.abs(soft - image) + 1e-6).all()
    with pytest.raises(BadInputError, match="face mask must be"):
        paste_back(image, face, m, np.ones((16, 16), np.float32))


def test_paste_faces_mask_count_and_unknown_mask_name():
    from cfbench.face.photo import face_masker, paste_faces

    img = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(BadInputError, match="1 restored crops but 1 matrices and 2 face masks"):
        paste_faces(img, [np.zeros((8, 8, 3), np.uint8)], [np.eye(2, 3)], face_masks=[None, None])
    with pytest.raises(Exception, match="did you mean 'parsing'"):
        face_masker("parse")
    assert face_masker("soft")(np.zeros((3, 8, 8, 3), np.float32)) == [None] * 3


# -- the command -------------------------------------------------------------------------------------------------


def test_cli_parsing_mask_without_weights(dlib_backend, tmp_path, capsys):
    path, _ = photo_png(tmp_path, "cf_03")
    assert restore_cli([path], tmp_path / "out", "--mask", "parse") == 2
    assert "did you mean 'parsing'" in capsys.readouterr().err
    assert restore_cli([path], tmp_path / "out", "--mask", "parsing") == 2
    err = capsys.readouterr().err
    assert "parsing_parsenet.pth" in err and URL in err and "--mask soft" in err and "\n" not in err.strip()
    assert not (tmp_path / "out" / "cf_03.png").exists()


@pytest.mark.slow
def test_cli_whole_photo_with_seeded_parsing_weights(dlib_backend, seeded_state, tmp_path, capsys):
    """End to end on the whole photo cf_03 (the committed copy of ../shared/faces/whole/cf_03.jpg) with seeded
    ParseNet weights in the test's $CFBENCH_HOME, their class bias pushed to 'neck' (not a face class): the face is
    found and restored, but the parsing mask is zero everywhere, so the output is the photo itself, pixel for pixel
    (the soft mask alone changes the face: test_photo_restore.py)."""
    state = dict(seeded_state)
    bias = state["out_mask_conv.conv2d.bias"].clone()
    bias[CLASSES.index("neck")] += 100.0
    _install({**state, "out_mask_conv.conv2d.bias": bias})
    path, rgb = photo_png(tmp_path, "cf_03")
    assert restore_cli([path], tmp_path / "out", "--mask", "parsing", "--w", "0.7") == 0
    err = capsys.readouterr().err
    assert "restored 1 face(s) in 1 whole photo(s)" in err and "parsing paste-back mask" in err
    out = read_rgb(tmp_path / "out" / "cf_03.png")
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out, rgb)
