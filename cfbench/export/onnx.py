"""`cfbench export onnx`: CodeFormer as one ONNX graph with the fidelity weight w as an input, checked on writing.

The graph (contract in `cfbench.export.runtime`): `image` (N, 3, S, S) in [-1, 1] and `w` (scalar or (N,)) in,
`restored` (N, 3, S, S) in [-1, 1] (AdaIN included, clamped) and `codes` (N, T) out; the batch is dynamic. The
fusion blocks are always in the graph (`CodeFormer.decode(fuse=True)`): the official code skips them when w == 0,
which a tracer would freeze into a graph whose w does nothing when traced at w = 0 (sczhou/CodeFormer#252).
It is traced with the TorchScript exporter (`dynamo=False`: no onnxscript needed, same path on torch 2.4 ... 2.14).

Right after writing, onnxruntime on CPU restores the bundled demo faces at w = 0, 0.5 and 1 and is compared with
the PyTorch model in float32: the largest absolute difference in [0, 1] image units must stay below one 8-bit level
(1/255) for fp32 (float32 reordering across ~50 layers measures about 1e-4 on codeformer_tiny) and four levels for
fp16 (half precision carries about 3 decimal digits); else the file is removed and the export refused (exit 1).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfbench import __version__, weights
from cfbench.atomic import atomic_path
from cfbench.data.demo import demo_lq_paths
from cfbench.errors import EXIT_FAILED_CHECK, BadInputError, CfbenchError
from cfbench.export.runtime import (
    CODES,
    IMAGE,
    META_CONFIG,
    META_SOURCE_SHA256,
    RESTORED,
    OnnxCodeFormer,
    W,
    check_contract,
    read_model,
)
from cfbench.imageio import read_image
from cfbench.models.codeformer import CodeFormer
from cfbench.models.config import config_to_dict
from cfbench.restoration import load_restorer, resolve_checkpoint, restore_batch

DEFAULT_OPSET = 17
CHECK_WS = (0.0, 0.5, 1.0)
PRECISIONS = {"fp32": (torch.float32, 1 / 255), "fp16": (torch.float16, 4 / 255)}  # dtype, check tolerance


class ExportCheckError(CfbenchError):
    """The written export disagrees with the PyTorch model beyond the tolerance (exit 1)."""

    exit_code = EXIT_FAILED_CHECK


class ExportGraph(nn.Module):
    """What is traced: (image in [-1, 1], w) -> (restored in [-1, 1], codes); weights and compute in `dtype`."""

    def __init__(self, net: CodeFormer, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.net = net.to(dtype).eval()
        self.dtype = dtype

    def forward(self, image: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = self.net.encode(image.to(self.dtype))
        out = self.net.decode(state, w.reshape(-1).to(self.dtype), adain=True, fuse=True)
        return out.float().clamp(-1, 1), state.indices


@dataclass(frozen=True)
class ExportCheck:
    """onnxruntime (CPU) vs PyTorch float32 on `faces` demo faces at each of `ws`: the largest absolute difference
    in [0, 1] image units, its tolerance, and the share of code indices that agree."""

    faces: int
    ws: tuple[float, ...]
    max_abs_error: float
    tolerance: float
    codes_agree: float

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.tolerance


@dataclass(frozen=True)
class ExportResult:
    path: Path
    opset: int
    precision: str
    source_sha256: str
    check: ExportCheck


def write_graph(module: nn.Module, size: int, path: Path, opset: int, metadata: dict[str, str]) -> None:
    """Trace `module` ((image, w) -> (restored, codes)) into `path` with a dynamic batch, a `w` of free rank (a
    scalar or (N,): the graph reshapes it), and `metadata` as the model's metadata_props."""
    import onnx

    image, w = torch.zeros(2, 3, size, size), torch.tensor([0.25, 0.75])
    batch = {0: "N"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about the input checks, constant in the graph
        torch.onnx.export(
            module,
            (image, w),
            str(path),
            input_names=[IMAGE, W],
            output_names=[RESTORED, CODES],
            dynamic_axes={IMAGE: batch, W: {0: "W"}, RESTORED: batch, CODES: batch},
            opset_version=opset,
            dynamo=False,
        )
    model = onnx.load(str(path))
    w_input = next((i for i in model.graph.input if i.name == W), None)
    if w_input is None:  # the tracer drops an input the outputs do not depend on
        raise BadInputError(f"the traced graph does not use its w input ({type(module).__name__}); nothing written")
    w_input.type.tensor_type.ClearField("shape")
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.producer_version = "cfbench", __version__
    onnx.save(model, str(path))


def demo_faces(size: int, count: int) -> torch.Tensor:
    """The first `count` bundled real LQ faces, float32 (count, 3, size, size) in [0, 1] (resized when size is not
    512: small test models)."""
    faces = torch.stack([read_image(p) for p in demo_lq_paths()[:count]])
    if faces.shape[-1] != size:
        faces = F.interpolate(faces, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return faces


def check_export(
    path: Path, net: CodeFormer, faces: torch.Tensor, ws: Sequence[float], tolerance: float
) -> ExportCheck:
    """Compare onnxruntime on CPU with `net` (float32 PyTorch, CPU) on `faces` in [0, 1] at every w."""
    session = OnnxCodeFormer(path, "cpu")
    worst, agree = 0.0, []
    for w in ws:
        ours, codes = session.restore(faces, w)
        with torch.inference_mode():
            ref = restore_batch(net, faces, float(w))
            ref_codes = net.encode(faces * 2 - 1).indices
        worst = max(worst, float((ours - ref).abs().max()))
        agree.append(float((codes == ref_codes).float().mean()))
    return ExportCheck(len(faces), tuple(float(w) for w in ws), worst, tolerance, float(np.mean(agree)))


def export_onnx(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
    check_faces: int = 4,
    graph: nn.Module | None = None,
) -> ExportResult:
    """Export a CodeFormer checkpoint (registered name or file) to `out`, check it (module docstring) and write it
    atomically; the file is not left behind when the check fails. `graph` replaces `ExportGraph` (tests)."""
    if precision not in PRECISIONS:
        raise BadInputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not 7 <= opset <= 25:
        raise BadInputError(f"--opset {opset} is outside the opsets the exporter writes (7 ... 25); try 17")
    if check_faces < 1:
        raise BadInputError(f"--check-faces must be >= 1, got {check_faces}")
    dtype, tolerance = PRECISIONS[precision]
    path, _ = resolve_checkpoint(checkpoint)
    net = load_restorer(checkpoint, "cpu")
    if graph is None:
        graph = ExportGraph(load_restorer(checkpoint, "cpu"), dtype)
    size = net.config.img_size
    sha = weights.sha256_file(path)
    metadata = {
        META_CONFIG: json.dumps(config_to_dict(net.config)),
        META_SOURCE_SHA256: sha,
        "cfbench.source": str(checkpoint),
        "cfbench.version": __version__,
        "cfbench.precision": precision,
        "cfbench.contract": "image (N,3,S,S) in [-1,1], w scalar or (N,) -> restored (N,3,S,S) in [-1,1], codes (N,T)",
        "cfbench.inference": "adain on, transformer lookup, fusion at every w",
    }
    out = Path(out)
    with atomic_path(out) as tmp:
        write_graph(graph, size, tmp, opset, metadata)
        check_contract(read_model(tmp), str(out))
        check = check_export(tmp, net, demo_faces(size, check_faces), CHECK_WS, tolerance)
        if not check.passed:
            raise ExportCheckError(
                f"refused: the ONNX export differs from the PyTorch model by up to {check.max_abs_error:.3g} (in "
                f"[0, 1] image units, over {check.faces} demo faces at w {', '.join(f'{w:g}' for w in check.ws)}), "
                f"more than {check.tolerance:.3g} for {precision}; nothing was written to {out}"
            )
        _add_metadata(tmp, {"cfbench.check": json.dumps(asdict(check))})
    return ExportResult(out, opset, precision, sha, check)


def _add_metadata(path: Path, entries: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
