"""Each training loss against a hand computation; perceptual losses refuse to run without registered weights."""

from __future__ import annotations

import math

import pytest
import torch

from cfbench.errors import MissingWeightsError
from cfbench.models.vqgan import VectorQuantizer
from cfbench.train import losses as L


def test_l1_loss():
    pred = torch.tensor([[0.0, 1.0], [2.0, -3.0]])
    assert L.l1_loss(pred, torch.zeros(2, 2)).item() == pytest.approx(1.5)


def test_code_cross_entropy():
    logits = torch.tensor([[[0.0, math.log(3.0)], [math.log(3.0), 0.0]]])  # (N=1, L=2, K=2)
    idx = torch.tensor([[1, 1]])
    expected = (-math.log(3 / 4) - math.log(1 / 4)) / 2
    assert L.code_cross_entropy(logits, idx).item() == pytest.approx(expected, rel=1e-6)


def test_latent_l2_stops_gradient_at_the_target():
    lq = torch.tensor([1.0, 2.0], requires_grad=True)
    gt = torch.tensor([0.0, 4.0], requires_grad=True)
    loss = L.latent_l2(lq, gt)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert torch.allclose(lq.grad, torch.tensor([1.0, -2.0])) and gt.grad is None


def test_codebook_loss_weights_and_stop_gradients():
    z = torch.tensor([1.0], requires_grad=True)
    z_q = torch.tensor([3.0], requires_grad=True)
    loss = L.codebook_loss(z, z_q, beta=0.25)
    assert loss.item() == pytest.approx(4 + 0.25 * 4)  # commitment weight 1, codebook weight beta (official)
    loss.backward()
    assert z.grad.item() == pytest.approx(2 * (1 - 3)) and z_q.grad.item() == pytest.approx(0.25 * 2 * (3 - 1))


def test_quantizer_loss_and_straight_through_match_the_reference():
    vq = VectorQuantizer(codebook_size=2, emb_dim=1, beta=0.25)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0.0], [3.0]]))
    z = torch.tensor([2.0, -1.0]).view(1, 1, 1, 2).requires_grad_(True)
    z_q, loss, stats = vq(z)
    assert stats.indices.flatten().tolist() == [1, 0]
    ref = L.codebook_loss(z, torch.tensor([3.0, 0.0]).view(1, 1, 1, 2), 0.25)
    assert loss.item() == pytest.approx(ref.item())
    assert torch.equal(z_q.detach().flatten(), torch.tensor([3.0, 0.0]))
    z_q.sum().backward()  # straight-through: d z_q / d z = 1
    assert torch.equal(z.grad.flatten(), torch.ones(2))
    st = L.straight_through(torch.tensor([1.0], requires_grad=True), torch.tensor([5.0]))
    assert st.item() == 5.0


def test_hinge_and_nonsaturating_losses():
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.0])
    d_real, d_fake = L.d_loss("hinge", real, fake)
    assert d_real.item() == pytest.approx(0.25) and d_fake.item() == pytest.approx(0.5)
    assert L.g_loss("hinge", fake).item() == pytest.approx(1.0)
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    d_real, d_fake = L.d_loss("nonsaturating", real, fake)
    assert d_real.item() == pytest.approx((sp(-0.5) + sp(-2.0)) / 2)
    assert d_fake.item() == pytest.approx((sp(-2.0) + sp(0.0)) / 2)
    assert L.g_loss("nonsaturating", fake).item() == pytest.approx((sp(2.0) + sp(0.0)) / 2)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        L.g_loss("wgan", fake)


def test_adaptive_gan_weight_is_the_clamped_gradient_norm_ratio():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    recon = (3 * w).sum()  # gradient (3, 3)
    gan = w.sum()  # gradient (1, 1)
    expected = 3 * math.sqrt(2) / (math.sqrt(2) + 1e-4)
    assert L.adaptive_gan_weight(recon, gan, w, max_weight=10.0).item() == pytest.approx(expected, rel=1e-6)
    assert L.adaptive_gan_weight(recon, gan, w, max_weight=1.0).item() == 1.0
    assert not L.adaptive_gan_weight(recon, gan, w).requires_grad


def test_perceptual_none_and_missing_weights():
    assert L.build_perceptual("none") is None
    with pytest.raises(MissingWeightsError, match="vgg19-dcbb9e9d.pth"):
        L.build_perceptual("vgg19")
    with pytest.raises(MissingWeightsError, match="vgg16"):
        L.build_perceptual("lpips")
    with pytest.raises(ValueError, match="unknown perceptual"):
        L.build_perceptual("random")


def test_vgg19_perceptual_with_registered_weights(tmp_path, monkeypatch):
    from cfbench import weights

    torch.manual_seed(0)
    src = L._vgg19_features(34)
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in src.state_dict().items()}, path)
    monkeypatch.setattr(weights, "require", lambda name: path)
    net = L.build_perceptual("vgg19")
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert net(x, x).item() == 0.0
    y = x.clone().requires_grad_(True)
    loss = net(y + 0.1, x)
    loss.backward()
    assert loss.item() > 0 and y.grad.abs().sum() > 0
