"""Behaviour of the split encode/decode API, the official forward, and the input checks (tiny config, fast)."""

import pytest
import torch

from cfbench.errors import BadInputError
from cfbench.models import build_model
from cfbench.models.codeformer import adaptive_instance_norm


def test_decode_of_encode_equals_forward(tiny_codeformer, tiny_batch):
    with torch.no_grad():
        for w, adain in ((0.0, True), (0.3, False), (1.0, True)):
            out, logits, lq_feat = tiny_codeformer(tiny_batch, w=w, adain=adain)
            state = tiny_codeformer.encode(tiny_batch)
            torch.testing.assert_close(tiny_codeformer.decode(state, w, adain=adain), out, rtol=0, atol=0)
            torch.testing.assert_close(state.logits, logits, rtol=0, atol=0)
            torch.testing.assert_close(state.lq_feat, lq_feat, rtol=0, atol=0)


def test_state_exposes_indices_and_logits(tiny_codeformer, tiny_batch):
    with torch.no_grad():
        state = tiny_codeformer.encode(tiny_batch)
    assert state.indices.shape == (3, 256) and state.indices.dtype == torch.int64
    assert state.logits.shape == (3, 256, 64)
    torch.testing.assert_close(state.indices, state.logits.argmax(-1))
    # the quantized feature is the codebook row of each index, tokens in row-major (h, w) order
    row = tiny_codeformer.quantize.embedding.weight[state.indices[1, 17]]
    torch.testing.assert_close(state.quant_feat[1, :, 1, 1], row)


def test_tensor_w_equals_separate_calls(tiny_codeformer, tiny_batch):
    ws = torch.tensor([0.0, 0.5, 1.0])
    with torch.no_grad():
        state = tiny_codeformer.encode(tiny_batch)
        batched = tiny_codeformer.decode(state, ws, adain=True)
        for i, w in enumerate(ws.tolist()):
            single = tiny_codeformer.decode(tiny_codeformer.encode(tiny_batch[i : i + 1]), w, adain=True)
            torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-5, atol=1e-5)


def test_repeated_state_decodes_every_w_in_one_call(tiny_codeformer, tiny_batch):
    ws = [0.0, 0.25, 1.0]
    n = tiny_batch.shape[0]
    with torch.no_grad():
        state = tiny_codeformer.encode(tiny_batch)
        many = tiny_codeformer.decode(state.repeat(len(ws)), torch.tensor(ws).repeat_interleave(n), adain=True)
        for i, w in enumerate(ws):
            one = tiny_codeformer.decode(state, w, adain=True)
            torch.testing.assert_close(many[i * n : (i + 1) * n], one, rtol=1e-5, atol=5e-5)  # batch-size rounding


def test_w_changes_the_output_and_w0_skips_fusion(tiny_codeformer, tiny_batch):
    calls = []
    hook = tiny_codeformer.fuse_convs_dict["32"].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        state = tiny_codeformer.encode(tiny_batch)
        out0 = tiny_codeformer.decode(state, 0.0)
        assert calls == []
        out1 = tiny_codeformer.decode(state, 1.0)
        assert calls == [1]
        out0_tensor = tiny_codeformer.decode(state, torch.zeros(3))
    hook.remove()
    assert (out1 - out0).abs().max() > 1e-3
    torch.testing.assert_close(out0_tensor, out0, rtol=0, atol=0)


def test_nearest_lookup_uses_the_codebook_not_the_transformer(tiny_codeformer, tiny_batch):
    with torch.no_grad():
        state = tiny_codeformer.encode(tiny_batch, lookup="nearest")
        d = tiny_codeformer.quantize.distances(state.lq_feat.permute(0, 2, 3, 1).reshape(-1, 32))
    assert state.logits is None
    torch.testing.assert_close(state.indices.reshape(-1), d.argmin(1))
    with pytest.raises(BadInputError, match="unknown lookup"):
        tiny_codeformer.encode(tiny_batch, lookup="knn")


def test_code_only_returns_logits_and_features(tiny_codeformer, tiny_batch):
    with torch.no_grad():
        logits, lq_feat = tiny_codeformer(tiny_batch, code_only=True)
        state = tiny_codeformer.encode(tiny_batch)
    torch.testing.assert_close(logits, state.logits)
    torch.testing.assert_close(lq_feat, state.lq_feat)


def test_adain_transfers_channel_statistics():
    g = torch.Generator().manual_seed(0)
    content, style = torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 8, 4, 4, generator=g) * 3 + 1
    out = adaptive_instance_norm(content, style)
    torch.testing.assert_close(out.mean((2, 3)), style.mean((2, 3)), atol=1e-5, rtol=0)
    # std matches up to the eps inside the square roots
    torch.testing.assert_close(out.flatten(2).std(2), style.flatten(2).std(2), atol=1e-3, rtol=1e-3)


def test_eval_mode_is_deterministic(tiny_codeformer, tiny_batch):
    with torch.no_grad():
        a = tiny_codeformer(tiny_batch, w=0.7, adain=True)[0]
        b = tiny_codeformer(tiny_batch, w=0.7, adain=True)[0]
    assert torch.equal(a, b)


def test_straight_through_estimator_sends_gradients_to_the_encoder():
    torch.manual_seed(0)
    vq = build_model("vqgan", img_size=64, nf=32, ch_mult=(1, 1, 2), codebook_size=64, emb_dim=32)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    recon, loss, stats = vq(x)
    ((recon - x).abs().mean() + loss).backward()
    enc_grad = vq.encoder.blocks[0].weight.grad
    assert enc_grad is not None and enc_grad.abs().sum() > 0
    assert vq.quantize.embedding.weight.grad.abs().sum() > 0  # the codebook term reaches the codebook
    assert stats.indices.shape == (2 * 16 * 16, 1)
    assert 1.0 <= float(stats.perplexity) <= 64.0


def test_codebook_and_commitment_terms_weighted_as_official():
    vq = build_model("vqgan", img_size=64, nf=32, ch_mult=(1, 1, 2), codebook_size=64, emb_dim=32)
    z = torch.randn(1, 32, 4, 4)
    _, loss, stats = vq.quantize(z)
    z_q = vq.quantize.embedding.weight[stats.indices[:, 0]].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    expected = (1 + vq.config.beta) * torch.mean((z_q - z) ** 2)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.zeros(1, 3, 32, 32), r"shape \(N, 3, 64, 64\)"),
        (torch.zeros(1, 1, 64, 64), r"shape \(N, 3, 64, 64\)"),
        (torch.zeros(3, 64, 64), r"shape \(N, 3, 64, 64\)"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "floating-point"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
    ],
)
def test_bad_inputs_raise_clear_errors(tiny_codeformer, bad, match):
    with pytest.raises(BadInputError, match=match):
        tiny_codeformer.encode(bad)


def test_bad_w_tensor_shape(tiny_codeformer, tiny_batch):
    with torch.no_grad():
        state = tiny_codeformer.encode(tiny_batch)
    with pytest.raises(BadInputError, match="w must be a scalar or a tensor of 3 values"):
        tiny_codeformer.decode(state, torch.ones(2))


def test_bad_config_is_refused():
    with pytest.raises(BadInputError, match="connect_list entry '16'"):
        build_model("codeformer", connect_list=["16"])
    with pytest.raises(BadInputError, match="unknown codeformer config field"):
        build_model("codeformer", n_layer=3)
    with pytest.raises(KeyError, match="did you mean 'codeformer'"):
        build_model("codeformr")
