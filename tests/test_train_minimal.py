"""The minimal trainer (cfbench/train/minimal.py) and the bundled demo checkpoint it produced. Fast: tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cfbench.models import build_model, load_checkpoint
from cfbench.models.checkpoint import load_state_dict_file
from cfbench.train.data import FaceSet, local_degrade, sample_batch, step_rng
from cfbench.train.minimal import (
    CARD_KEY,
    code_targets,
    codeformer_from_vqgan,
    cosine_lr,
    restart_dead_codes,
    stage1_losses,
    stage2_losses,
    stage2_parameters,
    stage3_losses,
    stage3_parameters,
    train_step,
    zero_init_fusion,
)
from tests.conftest import TINY_CODEFORMER

BUNDLED = Path(__file__).resolve().parents[1] / "cfbench" / "weights_bundled" / "codeformer_tiny.safetensors"


def _faces(n: int = 3, size: int = 64) -> FaceSet:
    rng = np.random.default_rng(0)
    return FaceSet(tuple(f"f{i}.png" for i in range(n)), rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_stage1_step_gives_finite_loss_and_encoder_gradients():
    vq = build_model("vqgan_tiny")
    hq = sample_batch(_faces(), step_rng(0, 1, 0), batch=2, crop=64)
    assert hq.shape == (2, 3, 64, 64) and 0 <= hq.min() and hq.max() <= 1
    loss, logs, aux = stage1_losses(vq, hq)
    assert torch.isfinite(loss) and all(np.isfinite(v) for v in logs.values())
    loss.backward()
    grads = [p.grad for p in vq.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert aux.indices.shape == (2 * 2 * 2,) and aux.z.shape == (2, 64, 2, 2)


def test_restart_dead_codes_replaces_only_unused_codes():
    vq = build_model("vqgan_tiny")
    before = vq.quantize.embedding.weight.detach().clone()
    usage = torch.zeros(256, dtype=torch.long)
    usage[:10] = 1
    z = torch.randn(2, 64, 2, 2)
    assert restart_dead_codes(vq, z, usage, np.random.default_rng(0)) == 246
    after = vq.quantize.embedding.weight.detach()
    assert torch.equal(after[:10], before[:10]) and not torch.equal(after[10:], before[10:])


def test_stage2_step_leaves_quantize_and_generator_bitwise_unchanged():
    torch.manual_seed(0)
    net = build_model("codeformer", **TINY_CODEFORMER)
    frozen = {name: _snapshot(getattr(net, name)) for name in ("quantize", "generator")}
    encoder = _snapshot(net.encoder)
    lq = torch.rand(2, 3, 64, 64)
    idx = code_targets(net, torch.rand(2, 3, 64, 64))
    assert idx.shape == (2, 16 * 16) and idx.dtype == torch.int64
    opt = torch.optim.Adam(stage2_parameters(net), lr=1e-2, betas=(0.9, 0.99))
    loss, logs = stage2_losses(net, lq, idx)
    assert torch.isfinite(loss) and set(logs) == {"loss", "feat", "ce", "token_acc"}
    train_step(opt, loss)
    for name, snap in frozen.items():
        for key, value in getattr(net, name).state_dict().items():
            assert torch.equal(value, snap[key]), f"{name}.{key} changed in stage II"
    assert any(not torch.equal(v, encoder[k]) for k, v in net.encoder.state_dict().items())


def test_stage3_trains_only_the_fusion_blocks_and_zero_init_is_identity():
    torch.manual_seed(0)
    net = build_model("codeformer", **TINY_CODEFORMER)
    zero_init_fusion(net)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        state = net.encode(x)
        assert torch.equal(net.decode(state, 0.0), net.decode(state, 0.7))
    rest = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("fuse_convs_dict.")}
    opt = torch.optim.Adam(stage3_parameters(net), lr=1e-3)
    loss, _ = stage3_losses(net, torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), 1.0)
    train_step(opt, loss)
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in rest.items())
    assert any(p.abs().sum() > 0 for b in net.fuse_convs_dict.values() for p in b.scale[-1].parameters())


def test_codeformer_starts_from_the_stage1_weights():
    vq = build_model("vqgan_tiny")
    net = codeformer_from_vqgan("codeformer_tiny", vq, seed=0)
    ref = vq.state_dict()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in ref.items())


def test_step_randomness_is_keyed_by_step_and_schedule_decays():
    faces = _faces()
    a = sample_batch(faces, step_rng(3, 1, 5), 2, 32)
    assert torch.equal(a, sample_batch(faces, step_rng(3, 1, 5), 2, 32))
    assert not torch.equal(a, sample_batch(faces, step_rng(3, 1, 6), 2, 32))
    assert cosine_lr(1.0, 0, 10) == 1.0 and cosine_lr(1.0, 10, 10) == pytest.approx(0.1)


def test_local_degrade_fallback_is_seeded_and_8bit():
    hq = torch.rand(3, 64, 64)
    a = local_degrade(hq, np.random.default_rng(1))
    assert torch.equal(a, local_degrade(hq, np.random.default_rng(1)))
    assert a.shape == hq.shape and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, (a * 255).round() / 255)


def test_bundled_checkpoint_loads_and_restores_a_demo_face():
    from cfbench.data.demo import demo_lq_paths
    from cfbench.imageio import read_image
    from cfbench.restoration import restore_batch

    assert BUNDLED.stat().st_size < 20_000_000
    _, meta = load_state_dict_file(BUNDLED)
    card = json.loads(meta[CARD_KEY])
    assert card["perceptual"] == "none" and card["heldout"]["stage1_recon_psnr"] > 0
    net = load_checkpoint(BUNDLED)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    lq = read_image(demo_lq_paths()[0])[None]
    with torch.inference_mode():
        out = restore_batch(net, lq, 0.5, adain=True)
    assert out.shape == (1, 3, 512, 512) and torch.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1
    assert Path(BUNDLED.with_name("MODEL_CARD.md")).is_file() and BUNDLED.with_name("train_log.csv").is_file()
