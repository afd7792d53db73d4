"""RetinaFace ResNet-50 (cfbench.face.retinaface): structure against the manifest of facexlib's state_dict, output
shapes, priors and decoding against hand computations, strict loading, the weights registry, and equality with
facexlib's own module on the same seeded weights (when facexlib is installed). The real detection_Resnet50_Final.pth
cannot be downloaded here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cfbench import weights
from cfbench.errors import CheckpointError, MissingWeightsError
from cfbench.face import get_backend
from cfbench.face.retinaface import (
    RetinaFaceDetector,
    RetinaFaceNet,
    decode_boxes,
    decode_landmarks,
    load_retinaface,
    prior_boxes,
)
from tests.face.conftest import seeded_bn_state

MANIFEST = Path(__file__).resolve().parents[1] / "data" / "faces_analysis" / "manifest_retinaface_resnet50.json"
URL = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth"


@pytest.fixture(scope="module")
def seeded_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return seeded_bn_state(RetinaFaceNet())


@pytest.fixture(scope="module")
def seeded_net(seeded_state) -> RetinaFaceNet:
    return load_retinaface(seeded_state)


def test_structure_matches_manifest():
    manifest = json.loads(MANIFEST.read_text())["state_dict"]
    ours = RetinaFaceNet().state_dict()
    assert list(ours) == list(manifest)
    for key, tensor in ours.items():
        shape, dtype = manifest[key]
        assert list(tensor.shape) == shape and str(tensor.dtype) == f"torch.{dtype}", key


@pytest.mark.parametrize(("h", "w"), [(64, 96), (70, 101)])
def test_output_shapes_match_the_priors(seeded_net, h, w):
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 50
    with torch.no_grad():
        loc, logits, offsets = seeded_net(x)
    cells = sum(math.ceil(h / s) * math.ceil(w / s) for s in (8, 16, 32))
    assert loc.shape == (1, 2 * cells, 4) and logits.shape == (1, 2 * cells, 2) and offsets.shape == (1, 2 * cells, 10)
    assert prior_boxes(h, w).shape == (2 * cells, 4)


def test_prior_boxes_by_hand():
    """A 32x64 (H x W) image: 4x8 cells at step 8 with sizes 16 and 32, 2x4 at 16, 1x2 at 32; anchors innermost."""
    p = prior_boxes(32, 64)
    assert p.dtype == torch.float32 and p.shape == ((32 + 8 + 2) * 2, 4)
    torch.testing.assert_close(p[0], torch.tensor([4 / 64, 4 / 32, 16 / 64, 16 / 32]))
    torch.testing.assert_close(p[1], torch.tensor([4 / 64, 4 / 32, 32 / 64, 32 / 32]))  # same cell, next size
    torch.testing.assert_close(p[2], torch.tensor([12 / 64, 4 / 32, 16 / 64, 16 / 32]))  # next column
    torch.testing.assert_close(p[16], torch.tensor([4 / 64, 12 / 32, 16 / 64, 16 / 32]))  # next row (8 columns)
    torch.testing.assert_close(p[64], torch.tensor([8 / 64, 8 / 32, 64 / 64, 64 / 32]))  # stride 16, size 64
    torch.testing.assert_close(p[-1], torch.tensor([48 / 64, 16 / 32, 512 / 64, 512 / 32]))  # stride 32, size 512


def test_decode_by_hand():
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    loc = torch.tensor([[1.0, -1.0, 0.0, math.log(2) / 0.2]])
    # centre (0.5 + 0.1 * 0.2, 0.5 - 0.1 * 0.4), size (0.2, 0.4 * 2)
    torch.testing.assert_close(decode_boxes(loc, prior), torch.tensor([[0.42, 0.06, 0.62, 0.86]]))
    offsets = torch.arange(10, dtype=torch.float32)[None]
    want = torch.tensor([[0.5 + 0.02 * (2 * k), 0.5 + 0.04 * (2 * k + 1)] for k in range(5)])[None]
    torch.testing.assert_close(decode_landmarks(offsets, prior), want)
    batched = decode_boxes(loc[None].repeat(3, 1, 1), prior)  # (N, P, 4) with shared priors
    assert batched.shape == (3, 1, 4)


def test_official_key_names_load_strictly_with_or_without_module_prefix(seeded_state, tmp_path):
    prefixed = {f"module.{k}": v for k, v in seeded_state.items()}
    net = load_retinaface(prefixed)
    assert torch.equal(net.state_dict()["LandmarkHead.2.conv1x1.bias"], seeded_state["LandmarkHead.2.conv1x1.bias"])
    path = weights.weights_path("retinaface_resnet50")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(prefixed, path)  # the file layout of detection_Resnet50_Final.pth: a plain (prefixed) state_dict
    assert torch.equal(load_retinaface().state_dict()["body.conv1.weight"], seeded_state["body.conv1.weight"])
    bad = dict(seeded_state)
    bad.pop("ssh3.conv7x7_3.1.running_var")
    with pytest.raises(CheckpointError) as err:
        load_retinaface(bad)
    assert "missing (1): ssh3.conv7x7_3.1.running_var" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_retinaface({**seeded_state, "ClassHead.0.conv1x1.bias": torch.zeros(6)})


def test_registry_entry_and_missing_weights_error():
    entry = weights.WEIGHTS.get("retinaface_resnet50")
    assert entry.urls == (URL,) and entry.filename == "detection_Resnet50_Final.pth"
    assert entry.sha256 == "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d"
    assert entry.size == 109497761
    with pytest.raises(MissingWeightsError) as err:
        get_backend("retinaface")
    assert "detection_Resnet50_Final.pth" in str(err.value) and URL in str(err.value)


class _StubNet(torch.nn.Module):
    """Outputs chosen by hand: zero offsets (the priors themselves), face logits high at `faces`."""

    def __init__(self, faces: dict[int, float]) -> None:
        super().__init__()
        self.faces = faces

    def forward(self, x):
        n = prior_boxes(*x.shape[-2:]).shape[0]
        logits = torch.zeros(1, n, 2)
        for i, logit in self.faces.items():
            logits[0, i, 1] = logit
        offsets = torch.zeros(1, n, 10)
        offsets[0, :, 0] = 1.0  # the first point one tenth of the prior width to the right of the centre
        return torch.zeros(1, n, 4), logits, offsets


def test_detection_threshold_nms_and_pixel_scaling(seeded_state):
    """Priors 0 and 1 share a centre (sizes 16, 32: IoU 0.25, both kept); prior 2 overlaps prior 0 by IoU 1/3
    (kept at nms 0.4, dropped at nms 0.3); prior 4 scores below the threshold."""
    det = RetinaFaceDetector(state_dict=seeded_state)
    det.net = _StubNet({0: 5.0, 1: 4.0, 2: 3.0, 4: 1.0})  # softmax 0.993, 0.982, 0.953, 0.731
    image = np.zeros((32, 64, 3), np.uint8)
    found = det.detect_five(image)
    assert [round(b.score, 3) for b, _ in found] == [0.993, 0.982, 0.953]
    box, five = found[0]
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((-4, -4, 12, 12))  # prior 0 in pixels
    assert five.shape == (5, 2) and five.dtype == np.float64
    np.testing.assert_allclose(five[0], [4 + 1.6, 4])
    np.testing.assert_allclose(five[1:], [[4, 4]] * 4)
    det.nms_threshold = 0.3
    assert len(det.detect(image)) == 2
    faces = det.analyze(image)
    assert faces[0].landmarks68 is None and np.array_equal(faces[0].five, five)


def test_detect_and_align_with_retinaface(seeded_state):
    """Whole-photo alignment takes RetinaFace's five points (a stub net: one face, at prior 40 of a 64x64 image)."""
    from cfbench.face.photo import detect_and_align

    det = RetinaFaceDetector(state_dict=seeded_state)
    det.net = _StubNet({40: 5.0})
    (face,) = detect_and_align(np.zeros((64, 64, 3), np.uint8), 32, backend=det)
    assert face.crop.shape == (32, 32, 3) and face.face.landmarks68 is None and face.matrix.shape == (2, 3)


def test_preprocess_is_bgr_minus_mean():
    from cfbench.face.retinaface import preprocess

    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 50  # R, G, B
    x = preprocess(img)
    assert x.shape == (1, 3, 2, 3)
    assert x[0, :, 0, 0].tolist() == [50 - 104, 100 - 117, 200 - 123]


def test_equals_facexlib_on_the_same_weights(seeded_state):
    retinaface = pytest.importorskip("facexlib.detection.retinaface")
    utils = pytest.importorskip("facexlib.detection.retinaface_utils")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation warning for pretrained=False
        theirs = retinaface.RetinaFace(network_name="resnet50", device=torch.device("cpu"))
    theirs.load_state_dict(seeded_state, strict=True)
    ours = load_retinaface(seeded_state)
    x = torch.randn(1, 3, 70, 101, generator=torch.Generator().manual_seed(2)) * 60
    with torch.no_grad():
        loc, logits, offsets = ours(x)
        t_loc, t_conf, t_offsets = theirs.eval()(x)
    torch.testing.assert_close(loc, t_loc, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.softmax(logits, -1), t_conf, rtol=0, atol=1e-6)
    torch.testing.assert_close(offsets, t_offsets, rtol=0, atol=1e-5)
    priors = prior_boxes(70, 101)
    their_priors = utils.PriorBox(theirs.cfg, image_size=(70, 101)).forward()
    assert torch.equal(priors, their_priors)
    g = torch.Generator().manual_seed(3)  # offsets of a trained net's size (the seeded ones overflow exp)
    loc, offsets = torch.randn(len(priors), 4, generator=g), torch.randn(len(priors), 10, generator=g)
    assert torch.equal(decode_boxes(loc, priors), utils.decode(loc, priors, theirs.cfg["variance"]))
    landmarks = decode_landmarks(offsets, priors).reshape(-1, 10)
    assert torch.equal(landmarks, utils.decode_landm(offsets, priors, theirs.cfg["variance"]))
