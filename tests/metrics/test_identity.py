"""identity_cos / deg with the dlib backend (real faces) and the ArcFace ResNet-18 protocol (seeded weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cfbench.errors import BadInputError, CheckpointError, MissingWeightsError
from cfbench.imageio import read_image
from cfbench.metrics.identity import ArcFaceIdentity, cos_to_deg, vqfr_deg_mean
from cfbench.metrics.registry import get_metric, parse_metric_list

DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = sorted(p.name for p in (DATA / "metrics" / "gt").glob("*.png"))
MANIFEST = DATA / "faces_analysis" / "manifest_arcface_resnet18.json"


@pytest.fixture(scope="module")
def gt() -> torch.Tensor:
    return torch.stack([read_image(DATA / "metrics" / "gt" / n) for n in NAMES])


def _mild(images: torch.Tensor) -> torch.Tensor:
    """A mild degradation: Gaussian blur sigma 1 and JPEG quality 70."""
    out = []
    for im in images:
        a = (im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        a = cv2.GaussianBlur(a, (0, 0), 1.0)
        a = cv2.imdecode(cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_UNCHANGED)
        out.append(torch.from_numpy(a).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


@pytest.fixture(scope="module")
def dlib_metrics():
    pytest.importorskip("dlib")
    try:
        return get_metric("identity_cos[dlib]").build(), get_metric("deg[dlib]").build()
    except MissingWeightsError:
        pytest.skip("face-recognition-models is not installed")


def test_registered_specs():
    specs = parse_metric_list("identity_cos[dlib],deg[dlib],identity_cos[arcface],deg[arcface]")
    assert [s.higher_is_better for s in specs] == [True, False, True, False]
    assert {s.backend for s in specs} == {"dlib", "arcface"}
    assert get_metric("deg[arcface]").weights == ("arcface_resnet18",)


def test_dlib_self_is_one_and_zero(dlib_metrics, gt):
    cos, deg = dlib_metrics
    c, d = cos(gt, gt), deg(gt, gt)
    assert c.dtype == torch.float64 and c.shape == (4,)
    torch.testing.assert_close(c, torch.ones(4, dtype=torch.float64), atol=1e-7, rtol=0)
    assert d.abs().max() < 0.05  # arccos near 1 amplifies float rounding of the descriptors


def test_dlib_degraded_copy_closer_than_other_people(dlib_metrics, gt):
    cos, deg = dlib_metrics
    same = cos(_mild(gt), gt)
    other = cos(gt.roll(1, 0), gt)  # each face against another person
    assert same.min() > 0.95
    assert same.min() > other.max()
    torch.testing.assert_close(deg(_mild(gt), gt), cos_to_deg(same))


def test_dlib_gt_descriptor_is_computed_once_per_gt_face_of_a_sweep(gt, monkeypatch):
    """A sweep scores each GT face once per w: k predictions against the same GT cost k + 1 descriptors, not 2k,
    and give the values of a metric that computes every descriptor."""
    pytest.importorskip("dlib")
    fresh = get_metric("identity_cos[dlib]").build()
    preds = torch.cat([_mild(gt[:1]), gt[:1], _mild(gt[:1]).flip(-1)])
    expected = torch.stack([fresh(p[None], gt[:1])[0] for p in preds])  # one pair per call, as without the memo
    metric = get_metric("identity_cos[dlib]").build()
    calls = []
    real = metric.backend.descriptor
    monkeypatch.setattr(metric.backend, "descriptor", lambda img, box: calls.append(1) or real(img, box))
    got = metric(preds, gt[:1].repeat(3, 1, 1, 1))
    assert len(calls) == 3 + 1
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_dlib_missing_face_is_nan_and_counted(dlib_metrics, gt):
    cos, _ = dlib_metrics
    blank = torch.full_like(gt[:2], 0.5)
    before = cos.missing
    out = cos(torch.cat([gt[:1], blank[:1]]), torch.cat([gt[:1], blank[:1]]))
    assert out[0] > 0.99 and math.isnan(out[1])
    assert cos.missing == before + 1
    each = get_metric("identity_cos[dlib]").build(boxes="each")
    assert each.column_name == "identity_cos[dlib,each]"
    assert math.isnan(each(blank[:1], gt[:1])[0])  # no face in the restored image
    with pytest.raises(BadInputError):
        get_metric("identity_cos[dlib]").build(boxes="center")


def test_dlib_bad_input(dlib_metrics, gt):
    cos, _ = dlib_metrics
    with pytest.raises(BadInputError):
        cos(gt * 2, gt)
    with pytest.raises(BadInputError):
        cos(gt[:, :1], gt[:, :1])
    tiny = torch.rand(1, 3, 8, 8)
    assert math.isnan(cos(tiny, tiny)[0])


def test_vqfr_deg_mean_leaves_out_identical_pairs():
    mean, left_out = vqfr_deg_mean([0.5, 10.0, 20.0, float("nan")])
    assert mean == 15.0 and left_out == 1


# -- ArcFace ResNet-18 (seeded weights: the real ones cannot be downloaded here) -----------------------------------


def _seeded_state(seed: int = 0) -> dict[str, torch.Tensor]:
    from cfbench.face.arcface import ResNetArcFace

    torch.manual_seed(seed)
    net = ResNetArcFace()
    with torch.no_grad():  # non-trivial BN statistics so eval mode is exercised
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return {f"module.{k}": v for k, v in net.state_dict().items()}  # as resnet18_110.pth (DataParallel)


def test_arcface_structure_matches_manifest():
    from cfbench.face.arcface import ResNetArcFace

    manifest = json.loads(MANIFEST.read_text())
    sd = ResNetArcFace().state_dict()
    assert list(sd) == list(manifest["state_dict"])
    for k, (shape, dtype) in manifest["state_dict"].items():
        assert list(sd[k].shape) == shape and str(sd[k].dtype) == f"torch.{dtype}", k
    assert sum(p.numel() for p in ResNetArcFace().parameters()) == manifest["num_parameters"]


def test_arcface_preprocessing():
    from cfbench.face.arcface import preprocess_gfpgan, preprocess_vqfr

    img = torch.rand(2, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    a, b = preprocess_vqfr(img), preprocess_gfpgan(img)
    assert a.shape == b.shape == (2, 1, 128, 128) and a.dtype == b.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    # vqfr: the uint8 gray of OpenCV, resized by cv2, mapped with (x - 127.5) / 127.5
    u8 = (img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ref = cv2.resize(cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY), (128, 128), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(a[0, 0].numpy(), (ref.astype(np.float32) - 127.5) / 127.5)
    # gfpgan: a constant colour gives 0.2989 R + 0.5870 G + 0.1140 B on [-1, 1]
    c = torch.tensor([0.2, 0.6, 0.9]).view(1, 3, 1, 1).expand(1, 3, 64, 64)
    want = sum(w * (2 * v - 1) for w, v in zip((0.2989, 0.5870, 0.1140), (0.2, 0.6, 0.9), strict=True))
    torch.testing.assert_close(preprocess_gfpgan(c), torch.full((1, 1, 128, 128), want), atol=1e-6, rtol=0)
    # the two variants agree up to the uint8 rounding and the gray weights
    assert (a - b).abs().mean() < 0.02


def test_arcface_metric_with_seeded_weights(gt):
    torch.set_num_threads(2)
    state = _seeded_state()
    cos = ArcFaceIdentity(family="identity_cos", state_dict=state)
    deg = ArcFaceIdentity(family="deg", state_dict=state)
    assert cos.column_name == "identity_cos[arcface]"
    pred = _mild(gt)
    c = cos(pred, gt)
    torch.testing.assert_close(cos(gt, gt), torch.ones(4, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(c, cos(pred, gt), atol=0, rtol=0)  # deterministic
    torch.testing.assert_close(torch.cat([cos(pred[:1], gt[:1]), cos(pred[1:], gt[1:])]), c, atol=1e-6, rtol=0)
    torch.testing.assert_close(deg(pred, gt), cos_to_deg(c), atol=1e-6, rtol=0)
    g = ArcFaceIdentity(family="identity_cos", preprocess="gfpgan", state_dict=state)
    assert g.column_name == "identity_cos[arcface,gfpgan]"
    assert g(pred, gt).shape == (4,)


def test_arcface_checkpoint_errors():
    from cfbench.face.arcface import load_arcface

    state = _seeded_state()
    state.pop("module.fc5.bias")
    with pytest.raises(CheckpointError, match="fc5.bias"):
        load_arcface(state)
    with pytest.raises(BadInputError):
        ArcFaceIdentity(preprocess="rgb", state_dict=_seeded_state())


def test_arcface_missing_weights_names_file_and_url():
    with pytest.raises(MissingWeightsError) as err:
        get_metric("identity_cos[arcface]").build()
    msg = str(err.value)
    assert "arcface_resnet18.pth" in msg
    assert "https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth" in msg
