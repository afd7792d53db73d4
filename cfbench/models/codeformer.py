"""CodeFormer: VQGAN + code-lookup transformer + controllable feature transformation (Zhou et al., NeurIPS 2022).

Re-implements the official `basicsr/archs/codeformer_arch.py` (sczhou/CodeFormer) with the same state_dict keys, so
the released `codeformer.pth` loads without conversion. Beyond the official forward, it offers a split API for
fidelity-weight sweeps: `encode` runs the encoder and transformer once, `decode` runs the generator for one w (a
float or a per-sample tensor), so k values of w cost one encode plus k decodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cfbench.errors import BadInputError
from cfbench.models.blocks import ResBlock
from cfbench.models.config import CodeFormerConfig
from cfbench.models.vqgan import VQAutoEncoder

LOOKUPS = ("transformer", "nearest")


def adaptive_instance_norm(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Give `content` (N, C, H, W) the per-sample, per-channel mean and std of `style` (unbiased variance + eps)."""

    def mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.flatten(2)
        return flat.mean(dim=2)[..., None, None], (flat.var(dim=2) + eps).sqrt()[..., None, None]

    c_mean, c_std = mean_std(content)
    s_mean, s_std = mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


class TransformerSALayer(nn.Module):
    """Pre-norm self-attention layer; the position embedding is added to queries and keys only. Seq-first (L, N, E)."""

    def __init__(self, embed_dim: int, nhead: int, dim_mlp: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(embed_dim, nhead, dropout=dropout)
        self.linear1 = nn.Linear(embed_dim, dim_mlp)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_mlp, embed_dim)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def attend(self, qk: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Multi-head attention with `self_attn`'s weights (official fused in_proj layout), through SDPA.

        Same function as `nn.MultiheadAttention(qk, qk, value)`; written out so that SDPA kernels (flash on GPU)
        are used and FLOP counters see the attention matmuls.
        """
        mha = self.self_attn
        length, n, e = qk.shape
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)

        def heads(t: torch.Tensor) -> torch.Tensor:  # (L, N, E) -> (N, heads, L, E / heads)
            return t.reshape(length, n, mha.num_heads, e // mha.num_heads).permute(1, 2, 0, 3)

        q, k, v = heads(F.linear(qk, w_q, b_q)), heads(F.linear(qk, w_k, b_k)), heads(F.linear(value, w_v, b_v))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=mha.dropout if self.training else 0.0)
        return mha.out_proj(out.permute(2, 0, 1, 3).reshape(length, n, e))

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        t = self.norm1(tgt)
        tgt = tgt + self.dropout1(self.attend(t + query_pos, t))
        t = self.norm2(tgt)
        return tgt + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(t)))))


class FuseSFTBlock(nn.Module):
    """Controllable feature transformation: dec + w * (dec * scale(h) + shift(h)), h = ResBlock([enc, dec])."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encode_enc = ResBlock(2 * channels, channels)
        self.scale = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(channels, channels, 3, 1, 1),
        )
        self.shift = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(channels, channels, 3, 1, 1),
        )

    def forward(self, enc_feat: torch.Tensor, dec_feat: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
        h = self.encode_enc(torch.cat([enc_feat, dec_feat], dim=1))
        return dec_feat + w * (dec_feat * self.scale(h) + self.shift(h))


@dataclass
class CodeFormerState:
    """What `CodeFormer.encode` computed for a batch of N LQ faces; `decode` turns it into images for any w.

    lq_feat: (N, emb_dim, s, s) encoder output before quantization (s = 16 for 512 inputs).
    logits: (N, s*s, codebook_size) transformer code logits, or None for the nearest-neighbour lookup.
    indices: (N, s*s) int64 code indices, tokens in row-major (h, w) order.
    quant_feat: (N, emb_dim, s, s) the codebook vectors of `indices`.
    enc_feats: resolution -> encoder feature (detached) used by the fusion blocks.
    lookup: "transformer" or "nearest".
    """

    lq_feat: torch.Tensor
    logits: torch.Tensor | None
    indices: torch.Tensor
    quant_feat: torch.Tensor
    enc_feats: dict[int, torch.Tensor]
    lookup: str

    def repeat(self, times: int) -> CodeFormerState:
        """`times` copies of the batch stacked copy after copy (N * times faces), to decode one encoded batch at
        several w in one call: copy i takes w[i * N : (i + 1) * N]. The logits are not copied (None)."""

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.repeat(times, *([1] * (t.ndim - 1)))

        feats = {res: rep(f) for res, f in self.enc_feats.items()}
        return CodeFormerState(rep(self.lq_feat), None, rep(self.indices), rep(self.quant_feat), feats, self.lookup)


class CodeFormer(VQAutoEncoder):
    """CodeFormer. Inputs (N, 3, S, S) in [-1, 1] with S = config.img_size (512 for the official model).

    `forward(x, w, adain, ...)` mirrors the official call and returns (out, logits, lq_feat); out is unclamped.
    """

    def __init__(self, cfg: CodeFormerConfig | None = None) -> None:
        cfg = cfg or CodeFormerConfig()
        super().__init__(cfg)
        self.config: CodeFormerConfig = cfg
        n_tokens = cfg.latent_size**2
        self.position_emb = nn.Parameter(torch.zeros(n_tokens, cfg.dim_embd))
        self.feat_emb = nn.Linear(cfg.emb_dim, cfg.dim_embd)
        self.ft_layers = nn.Sequential(
            *[TransformerSALayer(cfg.dim_embd, cfg.n_head, cfg.dim_embd * cfg.ff_mult) for _ in range(cfg.n_layers)]
        )
        self.idx_pred_layer = nn.Sequential(
            nn.LayerNorm(cfg.dim_embd), nn.Linear(cfg.dim_embd, cfg.codebook_size, bias=False)
        )
        self.fuse_convs_dict = nn.ModuleDict({s: FuseSFTBlock(cfg.channels_at(int(s))) for s in cfg.connect_list})
        self._enc_taps = {int(s): self.encoder.level_ends[int(s)] for s in cfg.connect_list}
        self._dec_fuse = {self.generator.level_starts[int(s)]: int(s) for s in cfg.connect_list}
        for name in cfg.fix_modules:
            getattr(self, name).requires_grad_(False)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise BadInputError unless x is a finite floating (N, 3, S, S) batch for this model's size S."""
        s = self.config.img_size
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (s, s):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise BadInputError(f"CodeFormer expects an RGB batch of shape (N, 3, {s}, {s}); got {shape}")
        if not x.is_floating_point():
            raise BadInputError(f"CodeFormer expects a floating-point tensor; got {x.dtype}")
        if not torch.isfinite(x).all():
            raise BadInputError("the input batch contains NaN or infinite values")

    def transformer_logits(self, lq_feat: torch.Tensor) -> torch.Tensor:
        """Code logits (N, s*s, codebook_size) for encoder latents (N, emb_dim, s, s)."""
        n = lq_feat.shape[0]
        pos = self.position_emb.unsqueeze(1).expand(-1, n, -1)
        tokens = self.feat_emb(lq_feat.flatten(2).permute(2, 0, 1))  # (s*s, N, dim_embd)
        for layer in self.ft_layers:
            tokens = layer(tokens, query_pos=pos)
        return self.idx_pred_layer(tokens).permute(1, 0, 2)

    def encode(self, x: torch.Tensor, lookup: str = "transformer", detach_16: bool = True) -> CodeFormerState:
        """Run the encoder and the code lookup once. `lookup="nearest"` skips the transformer (paper ablation)."""
        if lookup not in LOOKUPS:
            raise BadInputError(f"unknown lookup {lookup!r}; use one of {', '.join(LOOKUPS)}")
        self.check_input(x)
        lq_feat, feats = self.encoder(x, self._enc_taps)
        s = self.config.latent_size
        if lookup == "transformer":
            logits = self.transformer_logits(lq_feat)
            indices = logits.argmax(dim=2)  # the official softmax + topk(1) picks the same index
        else:
            logits, indices = None, self.quantize.nearest(lq_feat)
        quant_feat = self.quantize.lookup(indices, (s, s))
        if detach_16:
            quant_feat = quant_feat.detach()
        enc_feats = {res: f.detach().clone() for res, f in feats.items()}
        return CodeFormerState(lq_feat, logits, indices, quant_feat, enc_feats, lookup)

    def decode(
        self, state: CodeFormerState, w: float | torch.Tensor = 0.0, adain: bool = False, fuse: bool | None = None
    ) -> torch.Tensor:
        """Generator output (N, 3, S, S), unclamped, for fidelity weight w (float, or a tensor of N values).

        As in the official code, the fusion blocks run only when some w > 0 (`fuse=None`); w = 0 is the pure codebook
        output. `fuse=True` always runs them (the same output, since they add w times their result): a traced or
        exported graph must not fix that choice at the w it was traced with.
        """
        n = state.quant_feat.shape[0]
        if isinstance(w, torch.Tensor):
            if w.ndim > 1 or (w.ndim == 1 and w.numel() not in (1, n)):
                raise BadInputError(f"w must be a scalar or a tensor of {n} values; got shape {tuple(w.shape)}")
            fuse = bool((w > 0).any()) if fuse is None else fuse
            w = w.to(state.quant_feat).reshape(-1, 1, 1, 1)
        elif fuse is None:
            fuse = w > 0
        x = adaptive_instance_norm(state.quant_feat, state.lq_feat) if adain else state.quant_feat
        for i, block in enumerate(self.generator.blocks):
            x = block(x)
            if fuse and i in self._dec_fuse:
                res = self._dec_fuse[i]
                x = self.fuse_convs_dict[str(res)](state.enc_feats[res], x, w)
        return x

    def forward(
        self,
        x: torch.Tensor,
        w: float | torch.Tensor = 0.0,
        detach_16: bool = True,
        code_only: bool = False,
        adain: bool = False,
        lookup: str = "transformer",
    ) -> tuple[torch.Tensor | None, ...]:
        """The official call: returns (out, logits, lq_feat), or (logits, lq_feat) with code_only=True."""
        if code_only:
            self.check_input(x)
            lq_feat, _ = self.encoder(x)
            return self.transformer_logits(lq_feat), lq_feat
        state = self.encode(x, lookup=lookup, detach_16=detach_16)
        return self.decode(state, w, adain=adain), state.logits, state.lq_feat
