"""Run a CodeFormer ONNX export with onnxruntime, after checking that the file meets the export contract.

Contract (what `cfbench export onnx` writes, docs/export.md):
    inputs   image    float32 (N, 3, S, S) in [-1, 1]   (RGB; [0, 1] images go in as x * 2 - 1)
             w        float32, a scalar or (N,)          (fidelity weight per face; 0 quality ... 1 fidelity)
    outputs  restored float32 (N, 3, S, S) in [-1, 1]   (clamped inside the graph; AdaIN included)
             codes    int64 (N, T)                       (the code indices the transformer chose)
    metadata cfbench.config (the model config JSON), cfbench.source_sha256 (the checkpoint it came from), ...

A file that is unreadable (truncated, not ONNX), not CodeFormer-shaped, or needs an operator onnxruntime lacks is
refused with one `BadInputError` line. onnxruntime (and onnx) are imported only when a file is loaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cfbench.errors import BadInputError

ONNX_SUFFIX = ".onnx"
IMAGE, W, RESTORED, CODES = "image", "w", "restored", "codes"
META_CONFIG = "cfbench.config"
META_SOURCE_SHA256 = "cfbench.source_sha256"
FLOAT, INT64 = 1, 7  # onnx.TensorProto element types
CONTRACT = "inputs image (N, 3, S, S) and w (scalar or (N,)), outputs restored (N, 3, S, S) and codes (N, T)"
FIX = "export the model with `cfbench export onnx`"


def is_onnx(spec: str | os.PathLike) -> bool:
    """Whether a checkpoint spec names an ONNX file (by its suffix)."""
    return str(spec).lower().endswith(ONNX_SUFFIX)


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise BadInputError(f"running ONNX files needs the {name} package: pip install 'cfbench[export]'") from None


def read_model(path: str | os.PathLike) -> Any:
    """The parsed `onnx.ModelProto` of `path`; BadInputError for a missing, truncated or non-ONNX file."""
    onnx = _import("onnx")
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as err:
        raise BadInputError(
            f"{path} is not a readable ONNX model ({first_line(err)}); is it truncated? re-copy it or {FIX}"
        ) from None
    if not model.graph.node:
        raise BadInputError(f"{path} is not a readable ONNX model (no graph); is it truncated? re-copy it or {FIX}")
    return model


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most `limit` characters."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dims(value_info: Any) -> tuple[int | str, ...] | None:
    """A graph input's/output's shape: ints for fixed sizes, names (or '?') for free ones; None: unknown rank."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)


@dataclass(frozen=True)
class Contract:
    """What `check_contract` read from a file: the face size S and the number of code tokens T (None: free)."""

    size: int
    tokens: int | None


def check_contract(model: Any, source: str) -> Contract:
    """BadInputError naming what differs when `model` is not a CodeFormer export (see the module docstring)."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    outputs = {o.name: o for o in graph.output}
    if set(inputs) != {IMAGE, W} or not {RESTORED, CODES} <= set(outputs):
        raise BadInputError(
            f"{source} is not a CodeFormer export: it has inputs {sorted(inputs)} and outputs {sorted(outputs)}, "
            f"expected {CONTRACT}; {FIX}"
        )
    image, restored, codes = _dims(inputs[IMAGE]), _dims(outputs[RESTORED]), _dims(outputs[CODES])
    if image is None or len(image) != 4 or image[1] != 3 or not isinstance(image[2], int) or image[2] != image[3]:
        raise BadInputError(f"{source}: input image has shape {image}, expected (N, 3, S, S) with a fixed S; {FIX}")
    size = int(image[2])
    want = (3, size, size)
    if restored is not None and (
        len(restored) != 4 or any(isinstance(d, int) and d != e for d, e in zip(restored[1:], want, strict=True))
    ):
        raise BadInputError(
            f"{source}: output restored has shape {restored}, expected (N, 3, {size}, {size}) like its input; {FIX}"
        )
    for name, info, kind in ((IMAGE, inputs[IMAGE], FLOAT), (W, inputs[W], FLOAT), (CODES, outputs[CODES], INT64)):
        if info.type.tensor_type.elem_type != kind:
            want = "float32" if kind == FLOAT else "int64"
            raise BadInputError(f"{source}: {name} must be {want}; {FIX}")
    tokens = codes[1] if codes is not None and len(codes) == 2 and isinstance(codes[1], int) else None
    return Contract(size, tokens)


def providers(device: str | torch.device) -> list[Any]:
    """onnxruntime execution providers for a torch device: CUDA (then CPU) for cuda[:i] when onnxruntime has it,
    else CPU."""
    ort = _import("onnxruntime")
    dev = torch.device(device)
    if dev.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session_errors(ort: Any) -> tuple[type[BaseException], ...]:
    state = ort.capi.onnxruntime_pybind11_state
    names = ("Fail", "InvalidGraph", "InvalidProtobuf", "InvalidArgument", "NotImplemented", "RuntimeException")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def make_session(path: str | os.PathLike, provider_list: list[Any], threads: int | None = None) -> Any:
    """An `onnxruntime.InferenceSession`; BadInputError with onnxruntime's first line when it cannot build one (an
    operator it lacks, an invalid graph)."""
    ort = _import("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=provider_list)
    except _session_errors(ort) as err:
        raise BadInputError(
            f"onnxruntime {ort.__version__} cannot run {path} ({first_line(err)}); export it again with an opset "
            f"and operators this onnxruntime supports ({FIX} --opset N)"
        ) from None


class OnnxCodeFormer:
    """A checked CodeFormer ONNX export in an onnxruntime session. `restore` has the `cfbench.restore` contract:
    float32 RGB (N, 3, S, S) in [0, 1] in and out."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu") -> None:
        self.path = Path(path)
        model = read_model(self.path)
        self.contract = check_contract(model, str(self.path))
        self.metadata: dict[str, str] = {p.key: p.value for p in model.metadata_props}
        self.device = torch.device(device)
        self.session = make_session(self.path, providers(self.device))

    @property
    def img_size(self) -> int:
        return self.contract.size

    @property
    def provider(self) -> str:
        """The execution provider that runs the graph (the first of the session's)."""
        return self.session.get_providers()[0]

    def config(self) -> dict[str, Any] | None:
        """The model config the exporter stored (`cfbench.config`), or None."""
        text = self.metadata.get(META_CONFIG)
        return json.loads(text) if text else None

    def run(self, image: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(restored, codes) for `image` float32 (N, 3, S, S) in [-1, 1] and `w` float32 () or (N,)."""
        restored, codes = self.session.run(
            [RESTORED, CODES], {IMAGE: np.ascontiguousarray(image, np.float32), W: np.asarray(w, np.float32)}
        )
        if restored.shape != image.shape or codes.ndim != 2 or codes.shape[0] != image.shape[0]:
            raise BadInputError(
                f"{self.path} returned restored {restored.shape} and codes {codes.shape} for an input of "
                f"{image.shape}, expected {CONTRACT}; {FIX}"
            )
        return restored, codes

    def restore(self, images: torch.Tensor, w: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(restored, codes): faces (N, 3, S, S) in [0, 1] at w (a float or N values) -> restored in [0, 1] on the
        input's device and (N, T) int64 code indices."""
        x = (images.detach().float().cpu().numpy() * 2 - 1).astype(np.float32)
        ws = np.broadcast_to(np.asarray(torch.as_tensor(w, dtype=torch.float32).cpu()), (len(x),))
        restored, codes = self.run(x, ws)
        out = (torch.from_numpy(restored).clamp(-1, 1) + 1) / 2
        return out.to(images.device), torch.from_numpy(codes).to(images.device)
