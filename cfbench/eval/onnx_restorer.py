"""An ONNX export (`cfbench export onnx`) behind the sweep's `Restorer` interface, run with onnxruntime.

The export is one graph (image, w) -> (restored, codes), so the sweep's encode-once saving does not apply: every w
runs the whole model (the run manifest says `encode_once: false` for the checkpoint). That is the file a product
ships, which is what the gate should measure; benchmarks/README.md has what it costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cfbench.errors import BadInputError
from cfbench.export.runtime import OnnxCodeFormer
from cfbench.restoration import check_onnx_options, check_restored, check_unit_images


@dataclass
class OnnxState:
    """The LQ faces (N, 3, S, S) in [0, 1], and their code indices (N, T) once a decode has produced them."""

    lq: torch.Tensor
    codes: torch.Tensor | None = None


@dataclass
class OnnxRestorer:
    """`Restorer` of a monolithic ONNX export: `encode` keeps the faces, `decode` runs the graph per (face, w)."""

    model: OnnxCodeFormer
    label: str
    encode_once = False

    def encode(self, lq: torch.Tensor) -> OnnxState:
        check_unit_images(lq, self.model.img_size)
        return OnnxState(lq)

    def decode(self, state: OnnxState, ws: Sequence[float], batch_size: int) -> torch.Tensor:
        n = state.lq.shape[0]
        rows = state.lq.repeat(len(ws), 1, 1, 1)
        w_each = torch.tensor([float(w) for w in ws]).repeat_interleave(n)
        outs, codes = [], []
        for i in range(0, len(rows), batch_size):
            out, c = self.model.restore(rows[i : i + batch_size], w_each[i : i + batch_size])
            outs.append(out)
            codes.append(c)
        state.codes = torch.cat(codes)[:n]
        return check_restored(torch.cat(outs), self.label)

    def codes(self, state: OnnxState) -> torch.Tensor:
        if state.codes is None:  # the codes do not depend on w
            state.codes = self.model.restore(state.lq, 0.0)[1]
        return state.codes

    def nn_codes(self, state: OnnxState, gt: torch.Tensor | None) -> dict[str, Any]:
        raise BadInputError(
            f"{self.model.path}: --store-nn-codes needs the model's codebook, which an ONNX export does not expose; "
            "run it with the PyTorch checkpoint"
        )


def load_onnx_restorer(path: str, label: str, device: str, lookup: str, adain: bool) -> OnnxRestorer:
    """The restorer of an `.onnx` file on `device` (onnxruntime CUDA provider when it has one, else CPU)."""
    check_onnx_options(adain, lookup)
    return OnnxRestorer(OnnxCodeFormer(path, device), label)
