"""The restorer a sweep calls: encode each LQ face once, decode it for every w, and report its code indices.

`Restorer` is the interface (CodeFormer, and its ONNX exports in `onnx_restorer`; another method plugs in by
implementing it);
`CodeFormerRestorer` wraps a `cfbench.models.CodeFormer`. Images are float32 RGB NCHW in [0, 1] on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from cfbench.eval.onnx_restorer import OnnxRestorer, load_onnx_restorer
from cfbench.export.runtime import is_onnx
from cfbench.models.codeformer import CodeFormer
from cfbench.restoration import check_restored, load_restorer, resolve_checkpoint


class Restorer(Protocol):
    """What `FidelityWeightSweep` needs from a restoration model."""

    label: str

    def encode(self, lq: torch.Tensor) -> Any:
        """The w-independent state of LQ faces (N, 3, H, W) in [0, 1]."""

    def decode(self, state: Any, ws: Sequence[float], batch_size: int) -> torch.Tensor:
        """Restored faces in [0, 1] for every w, w-major: rows i*N .. (i+1)*N-1 are w = ws[i]; at most
        `batch_size` faces per forward pass."""

    def codes(self, state: Any) -> torch.Tensor:
        """(N, tokens) int code indices the restorer chose for each face (w-independent)."""

    def nn_codes(self, state: Any, gt: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The `--store-nn-codes` sets, each (N, tokens): nearest-neighbour codes of the LQ feature (`nn_codes`)
        and, with GT faces, the codes of the GT face (`hq_codes`, `hq_nn_codes`)."""


@dataclass
class CodeFormerRestorer:
    """CodeFormer behind the `Restorer` interface: `lookup` transformer or nearest, `adain` as the official
    inference (on)."""

    net: CodeFormer
    label: str
    lookup: str = "transformer"
    adain: bool = True

    def encode(self, lq: torch.Tensor) -> Any:
        return self.net.encode(lq * 2 - 1, lookup=self.lookup)

    def decode(self, state: Any, ws: Sequence[float], batch_size: int) -> torch.Tensor:
        n = state.indices.shape[0]
        per_call = max(1, batch_size // n)
        outs = []
        for c in range(0, len(ws), per_call):
            chunk = list(ws[c : c + per_call])
            w_each = torch.tensor(chunk, device=state.indices.device).repeat_interleave(n)
            out = self.net.decode(state.repeat(len(chunk)) if len(chunk) > 1 else state, w_each, adain=self.adain)
            outs.append((out.float().clamp(-1, 1) + 1) / 2)  # float32 after a bf16/fp16 model
        return check_restored(torch.cat(outs), self.label)

    def codes(self, state: Any) -> torch.Tensor:
        return state.indices

    def nn_codes(self, state: Any, gt: torch.Tensor | None) -> dict[str, torch.Tensor]:
        out = {"nn_codes": self.net.quantize.nearest(state.lq_feat)}
        if gt is not None:
            hq = self.net.encode(gt * 2 - 1, lookup="transformer")
            out.update(hq_codes=hq.indices, hq_nn_codes=self.net.quantize.nearest(hq.lq_feat))
        return out


def load_sweep_restorer(
    spec: str, label: str, device: str, lookup: str = "transformer", adain: bool = True
) -> CodeFormerRestorer | OnnxRestorer:
    """The restorer of a checkpoint (registered name or file; an `.onnx` file runs with onnxruntime), in eval mode
    on `device`."""
    if is_onnx(spec):
        return load_onnx_restorer(str(resolve_checkpoint(spec)[0]), label, device, lookup, adain)
    return CodeFormerRestorer(load_restorer(spec, device), label, lookup, adain)
