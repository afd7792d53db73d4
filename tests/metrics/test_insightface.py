"""identity_cos / deg with the insightface backend: the 112x112 ArcFace alignment and normalisation, the onnxruntime
path on a small seeded ONNX model (the real w600k_r50.onnx cannot be downloaded here), the registry error."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cfbench.errors import CheckpointError, MissingWeightsError
from cfbench.face.align import FFHQ_TEMPLATE_512
from cfbench.face.insightface import (
    ARCFACE_TEMPLATE_112,
    align_112,
    aligned_face_points,
    preprocess,
    umeyama_similarity,
)
from cfbench.imageio import read_image
from cfbench.metrics.registry import get_metric, parse_metric_list

GT = Path(__file__).resolve().parents[1] / "data" / "metrics" / "gt"

pytest.importorskip("onnxruntime")


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def test_umeyama_recovers_a_known_similarity():
    a = math.radians(20)
    m = np.array([[1.3 * math.cos(a), -1.3 * math.sin(a), 5.0], [1.3 * math.sin(a), 1.3 * math.cos(a), -7.0]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    np.testing.assert_allclose(umeyama_similarity(src, _apply(m, src)), m, atol=1e-10)
    mirrored = src * [-1, 1]  # the best similarity never reflects
    fit = umeyama_similarity(src, mirrored)
    assert np.linalg.det(fit[:, :2]) > 0


def test_umeyama_equals_skimage():
    transform = pytest.importorskip("skimage.transform")
    src = FFHQ_TEMPLATE_512 * 0.7 + np.random.default_rng(1).normal(0, 3, (5, 2))
    if hasattr(transform.SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        t = transform.SimilarityTransform.from_estimate(src, ARCFACE_TEMPLATE_112)
    else:
        t = transform.SimilarityTransform()
        t.estimate(src, ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(umeyama_similarity(src, ARCFACE_TEMPLATE_112), t.params[:2], atol=1e-9)


def test_alignment_of_an_ffhq_face_to_the_arcface_template():
    """The FFHQ points of a 512 face land within 2.5 px of the ArcFace template (observed at most 2.1 px, the nose:
    the two templates are nearly, not exactly, similar); the scale is about 0.29 (the ArcFace crop is tighter)."""
    five = aligned_face_points(512, 512)
    np.testing.assert_array_equal(five, FFHQ_TEMPLATE_512)
    m = umeyama_similarity(five, ARCFACE_TEMPLATE_112)
    assert np.abs(_apply(m, five) - ARCFACE_TEMPLATE_112).max() < 2.5
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    assert 0.25 < scale < 0.32
    img = (read_image(sorted(GT.glob("*.png"))[0]).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    crop = align_112(img, five)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(aligned_face_points(256, 128), FFHQ_TEMPLATE_512 * [0.25, 0.5])


def test_preprocess_is_rgb_nchw_in_minus_one_one():
    crops = np.zeros((2, 112, 112, 3), np.uint8)
    crops[0, ..., 0] = 255  # red
    x = preprocess(crops)
    assert x.shape == (2, 3, 112, 112) and x.dtype == np.float32
    assert x[0, 0].min() == 1.0 and x[0, 1].max() == -1.0 and x[1].max() == -1.0


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A seeded stand-in for w600k_r50.onnx with its input contract ((N, 3, 112, 112) -> (N, 512))."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 8, 8), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 512)
    ).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny_arcface.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            torch.zeros(1, 3, 112, 112),
            str(path),
            input_names=["input.1"],
            dynamic_axes={"input.1": {0: "n"}},
            dynamo=False,
        )
    return net, path


def test_metric_on_a_seeded_onnx_model(tiny_onnx):
    from cfbench.metrics.identity import InsightFaceIdentity

    net, path = tiny_onnx
    gt = torch.stack([read_image(p) for p in sorted(GT.glob("*.png"))[:2]])
    cos = InsightFaceIdentity(model_path=path)
    deg = InsightFaceIdentity(family="deg", model_path=path)
    c = cos(gt, gt)
    assert c.dtype == torch.float64 and c.shape == (2,)
    torch.testing.assert_close(c, torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)
    assert deg(gt, gt).abs().max() < 0.1
    other = cos(gt.flip(0), gt)
    assert (other < 0.9999).all()
    # the embedding is the network on the aligned, normalised crop; batching does not change it
    u8 = (gt.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    five = aligned_face_points(512, 512)
    want = net(torch.from_numpy(preprocess(np.stack([align_112(im, five) for im in u8])))).detach().double().numpy()
    got = cos.embedder.embed(gt)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([cos.embedder.embed(gt[i : i + 1]) for i in range(2)]), got, atol=1e-6)


def test_tiny_and_gray_images_have_values(tiny_onnx):
    """No detection: a 16x16 face and a gray (3 equal channels) face are scored, never missing (docs/face.md)."""
    from cfbench.metrics.identity import InsightFaceIdentity

    cos = InsightFaceIdentity(model_path=tiny_onnx[1])
    gt = read_image(sorted(GT.glob("*.png"))[0])[None]
    tiny = torch.nn.functional.interpolate(gt, size=(16, 16), mode="area")
    assert float(cos(tiny, tiny)[0]) == pytest.approx(1.0, abs=1e-6)
    gray = gt.mean(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    assert math.isfinite(cos(gray, gt)[0])


def test_registered_specs_and_missing_weights_error():
    specs = parse_metric_list("identity_cos[insightface],deg[insightface]")
    assert [s.higher_is_better for s in specs] == [True, False]
    assert specs[0].weights == ("insightface_w600k_r50",)
    with pytest.raises(MissingWeightsError) as err:
        get_metric("identity_cos[insightface]").build()
    msg = str(err.value)
    assert "w600k_r50.onnx" in msg and "https://huggingface.co/" in msg and "\n" not in msg


def test_not_an_arcface_model_is_refused(tmp_path):
    from cfbench.face.insightface import InsightFaceEmbedder

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        InsightFaceEmbedder(bad)
    wrong = tmp_path / "wrong.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 64, 64), str(wrong), dynamo=False)
    with pytest.raises(CheckpointError, match=r"not \(N, 3, 112, 112\)"):
        InsightFaceEmbedder(wrong)


def test_without_onnxruntime_the_error_says_what_to_install(monkeypatch, tiny_onnx):
    from cfbench.face.insightface import InsightFaceEmbedder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="pip install"):
        InsightFaceEmbedder(tiny_onnx[1])
