"""Applying params records: ``apply_params(img, records)`` is a deterministic function of the images and the
records `Pipeline.sample` drew (backend ``cpu``: OpenCV/numpy per image, bit-exact; ``torch``: batched on the input's
device), so any degraded image can be replayed from its record alone. Images are float32 RGB NCHW tensors in [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from degradations.errors import DegradationsError
from degradations.ops import OPS, Op
from degradations.registry import UnknownNameError

BACKENDS = ("cpu", "torch")


def check_images(img: Any) -> torch.Tensor:
    """Check the image contract: float32 RGB NCHW tensor in [0, 1]; ValueError says what is wrong."""
    if not isinstance(img, torch.Tensor):
        raise DegradationsError(f"images must be a torch.Tensor (float32 RGB NCHW in [0, 1]), got {type(img).__name__}")
    if img.ndim != 4 or img.shape[1] != 3:
        raise DegradationsError(f"images must be (N, 3, H, W) RGB, got shape {tuple(img.shape)}")
    if img.dtype != torch.float32:
        raise DegradationsError(
            f"images must be float32 in [0, 1], got {img.dtype}; convert with x.float() / 255 for uint8"
        )
    if img.numel():
        lo, hi = float(img.min()), float(img.max())
        if not (0.0 <= lo and hi <= 1.0):
            raise DegradationsError(
                f"images must lie in [0, 1], got values in [{lo:g}, {hi:g}]; this API never rescales"
            )
    return img


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """round(x * 255) clipped to 0..255, divided by 255 (CodeFormer's final LQ quantisation)."""
    return torch.clamp(torch.round(x * 255.0), 0, 255) / 255.0


def _quantize_np(x: np.ndarray) -> np.ndarray:
    return (np.clip(np.rint(x * np.float32(255.0)), 0, 255) / np.float32(255.0)).astype(np.float32)


def _checked_records(params: Any, n: int) -> list[Mapping[str, Any]]:
    records = [params] if isinstance(params, Mapping) else list(params)
    if len(records) != n:
        raise DegradationsError(
            f"got {len(records)} params record(s) for {n} image(s): pass one record per image "
            f"(sample each image with its own seed, e.g. derive_seed(...))"
        )
    for r, rec in enumerate(records):
        if not isinstance(rec, Mapping) or not isinstance(rec.get("ops"), list):
            raise DegradationsError(f"params record {r} has no 'ops' list; pass what Pipeline.sample returned")
        for k, entry in enumerate(rec["ops"]):
            where = f"params record {r}, ops[{k}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("applied"), bool):
                raise DegradationsError(f"{where}: expected {{op, applied, params}}, got {entry!r}")
            try:
                op = OPS.get(entry.get("op"))
            except UnknownNameError as exc:
                raise UnknownNameError(f"{where}: {exc}") from None
            if entry["applied"]:
                p = entry.get("params")
                missing = [name for name in op.params if not isinstance(p, Mapping) or name not in p]
                if missing:
                    raise DegradationsError(f"{where} ({op.name}): params lack {missing[0]!r}; re-sample the record")
    return records


def _bind(op: Op, params: Mapping[str, Any], input_hw: tuple[int, int]) -> Mapping[str, Any]:
    # 'input' sizes mean the size the pipeline was given, not the current (possibly downsampled) size.
    fields = [f for f in op.size_fields() if params.get(f) == "input"]
    if not fields:
        return params
    return {**params, **{f: [input_hw[0], input_hw[1]] for f in fields}}


def apply_params(
    img: torch.Tensor, params: Mapping[str, Any] | Sequence[Mapping[str, Any]], backend: str = "cpu"
) -> torch.Tensor:
    """Apply params records (one per image, from `Pipeline.sample`) to an (N, 3, H, W) float32 batch.

    backend ``cpu``: OpenCV/numpy per image, bit-exact reproducible; ``torch``: batched on the input's device.
    Returns (N, 3, H', W') float32 in [0, 1] on the input's device (8-bit quantised when the record says so).
    """
    check_images(img)
    records = _checked_records(params, img.shape[0])
    if not records:  # an empty batch
        return img.clone()
    if backend == "cpu":
        return _apply_cpu(img, records)
    if backend == "torch":
        return _apply_torch(img, records)
    raise DegradationsError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")


def apply_op(
    name: str,
    img: torch.Tensor,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    backend: str = "cpu",
) -> torch.Tensor:
    """Apply one registered op with concrete params (one dict for all images or one per image), unquantised.

    The result must have one size for the whole batch (per-image downsample scales that give different sizes
    raise ValueError: apply those images one at a time).
    """
    per_image = [params] * img.shape[0] if isinstance(params, Mapping) else list(params)
    records = [{"quantize": False, "ops": [{"op": name, "applied": True, "params": p}]} for p in per_image]
    return apply_params(img, records, backend)


def _stack(outs: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(o.shape) for o in outs}
    if len(shapes) != 1:
        raise DegradationsError(
            f"the degraded images have different sizes {sorted(shapes)}; add a 'resize' op to the pipeline "
            f"or apply the images one at a time"
        )
    return torch.cat(outs)


def _apply_cpu(img: torch.Tensor, records: list[Mapping[str, Any]]) -> torch.Tensor:
    host = img.detach().to("cpu").permute(0, 2, 3, 1).numpy()
    outs = []
    for i, rec in enumerate(records):
        x = np.ascontiguousarray(host[i])
        hw = (x.shape[0], x.shape[1])
        for entry in rec["ops"]:
            if entry["applied"]:
                op = OPS.get(entry["op"])
                x = op.cpu(x, _bind(op, entry["params"], hw)).astype(np.float32, copy=False)
        if rec.get("quantize", True):
            x = _quantize_np(x)
        outs.append(torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).unsqueeze(0))
    return _stack(outs).contiguous().to(img.device)


def _apply_torch(img: torch.Tensor, records: list[Mapping[str, Any]]) -> torch.Tensor:
    sequences = {tuple(e["op"] for e in rec["ops"]) for rec in records}
    if len(sequences) > 1:  # records of different pipelines: nothing to batch across them
        return _stack([_apply_torch(img[i : i + 1], [rec]) for i, rec in enumerate(records)])
    hw = (img.shape[-2], img.shape[-1])
    items = [img[i : i + 1] for i in range(img.shape[0])]
    for k in range(len(records[0]["ops"]) if records else 0):
        op = OPS.get(records[0]["ops"][k]["op"])
        # Batch the images that apply this op and share input and output sizes.
        groups: dict[tuple, list[int]] = {}
        for i, rec in enumerate(records):
            entry = rec["ops"][k]
            if entry["applied"]:
                in_hw = (items[i].shape[-2], items[i].shape[-1])
                out_hw = op.output_size(_bind(op, entry["params"], hw), in_hw) if op.output_size else in_hw
                groups.setdefault((in_hw, out_hw), []).append(i)
        for idx in groups.values():
            batch = torch.cat([items[i] for i in idx])
            out = op.torch(batch, [_bind(op, records[i]["ops"][k]["params"], hw) for i in idx])
            for j, i in enumerate(idx):
                items[i] = out[j : j + 1]
    items = [quantize_8bit(x) if rec.get("quantize", True) else x for x, rec in zip(items, records, strict=True)]
    return _stack(items).contiguous()


def record_to_json(record: Mapping[str, Any]) -> str:
    """One params record as a compact, deterministic JSON line (keys in insertion order)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
