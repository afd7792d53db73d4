"""Stage configs and what each stage trains: frozen modules stay frozen, gradients reach what they should."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cfbench.errors import BadInputError
from cfbench.models import build_model
from cfbench.train.config import WSchedule, default_config, load_config
from cfbench.train.ema import EMA
from cfbench.train.loop import Trainer
from tests.train.helpers import TINY_YAML, tiny


def _snap(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_official_configs_equal_the_stage_defaults(stage):
    cfg = load_config(TINY_YAML.parent / f"{stage}.yaml")
    assert cfg.stage == default_config(stage).stage


def test_official_numbers():
    s1, s2, s3 = (default_config(s).stage for s in ("stage1", "stage2", "stage3"))
    assert (s1.lr_g, s1.losses["gan"].weight, s1.losses["gan"].start, s1.ema_decay) == (7e-5, 0.8, 30001, 0.995)
    assert (s2.losses["ce"].weight, s2.losses["feat"].weight, s2.frozen) == (0.5, 1.0, ("quantize", "generator"))
    assert (s3.ema_decay, s3.losses["gan"].weight, s3.losses["gan"].start, s3.lr_g) == (0.997, 0.1, 5001, 5e-5)


def test_w_schedule_is_the_official_one():
    ws = WSchedule()
    assert ws.mode(1) == ws.mode(40000) == ("small", 1.0)
    assert ws.mode(40001) == ws.mode(80000) == ("small", 1.3)
    assert ws.mode(80001) == ws.mode(120000) == ("large", 0.0)
    assert ws.mode(120015) == ("small", 1.3) and ws.mode(120016) == ("large", 0.0)


def test_config_errors_name_the_field():
    with pytest.raises(BadInputError, match="lr_g"):
        tiny("stage1", lr_g="fast")
    with pytest.raises(BadInputError, match="batchsize"):
        tiny("stage1", batchsize=3)
    with pytest.raises(BadInputError, match="run.accum"):
        tiny("stage1", run={"accum": 3}, batch=2)
    with pytest.raises(BadInputError, match="'perceptual'"):
        tiny("stage1", perceptual="none", losses={"perceptual": 1.0})


def test_ema_update_formula():
    net = nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = EMA(net, decay=0.9)
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(net)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.9 * 1.0 + 0.1 * 3.0))
    assert not ema.module.weight.requires_grad


def test_stage1_straight_through_gradients_reach_the_encoder(tmp_path):
    trainer = Trainer(tiny("stage1"), tmp_path, echo=lambda s: None)
    batch = trainer.batches.batch(1, 1, None)
    out = trainer.losses(batch, it=1)
    out.loss.backward()
    grads = [p.grad for p in trainer.net.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert {"pixel", "codebook"} <= set(out.logs)


def test_stage2_keeps_codebook_and_decoder_frozen(tmp_path):
    trainer = Trainer(tiny("stage2"), tmp_path, echo=lambda s: None)
    net = trainer.net
    before = _snap(net)
    for _ in range(2):
        trainer.train_step()
    changed = _changed(before, net)
    assert not any(k.startswith(("quantize.", "generator.", "fuse_convs_dict.")) for k in changed)
    for part in ("encoder.", "ft_layers.", "feat_emb.", "idx_pred_layer.", "position_emb"):
        assert any(k.startswith(part) for k in changed), part


def test_stage3_trains_fusion_keeps_generator_frozen(tmp_path):
    trainer = Trainer(tiny("stage3"), tmp_path, echo=lambda s: None)
    net = trainer.net
    before = _snap(net)
    logs = trainer.train_step()  # iteration 1: small degradation, w = 1, GAN from 2
    assert {"pixel", "ce", "feat"} <= set(logs) and "g_gan" not in logs
    logs = trainer.train_step()
    assert {"g_gan", "d_weight", "d_real"} <= set(logs)
    changed = _changed(before, net)
    assert not any(k.startswith(("quantize.", "generator.")) for k in changed)
    assert any(k.startswith("fuse_convs_dict.") for k in changed)
    assert any(k.startswith("encoder.") for k in changed)


def test_restart_dead_codes_moves_only_unused_codes_onto_latents():
    from cfbench.train.stages import restart_dead_codes

    quantize = build_model("vqgan", img_size=64, nf=32, ch_mult=[1, 1, 2], codebook_size=8, emb_dim=4).quantize
    before = quantize.embedding.weight.detach().clone()
    usage = torch.tensor([3, 0, 1, 0, 0, 7, 1, 2])
    latents = torch.arange(20, dtype=torch.float32).reshape(5, 4) + 100
    torch.manual_seed(0)
    assert restart_dead_codes(quantize, usage, latents) == 3
    after = quantize.embedding.weight.detach()
    used = usage > 0
    assert torch.equal(after[used], before[used])
    for row in after[~used]:  # each restarted code is one of the latents
        assert any(torch.equal(row, lat) for lat in latents)
    assert restart_dead_codes(quantize, torch.ones(8, dtype=torch.long), latents) == 0
