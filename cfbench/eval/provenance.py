"""What a run records about where its numbers come from: software, device, checkpoints and metric weights."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cfbench import __version__, weights
from cfbench.export.runtime import is_onnx, read_model
from cfbench.metrics.folders import BuiltMetric
from cfbench.restoration import resolve_checkpoint


def git_revision() -> str | None:
    """The git commit of the cfbench source, when it runs from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str) -> dict[str, Any]:
    """cfbench and library versions, git revision, and the device the run uses."""
    return {
        "cfbench": __version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
    }


def checkpoint_label(spec: str) -> str:
    """The name a checkpoint has in results: its registered name, or its file's stem."""
    return spec if spec in weights.WEIGHTS else Path(spec).stem


def checkpoint_records(checkpoints: Sequence[str]) -> dict[str, dict[str, Any]]:
    """label -> {source, path, sha256} of each checkpoint; an ONNX export adds its format, its metadata_props
    (model config, source checkpoint sha256, ...) and `encode_once: false` (one graph: every w runs the encoder)."""
    out = {}
    for c in checkpoints:
        path, _ = resolve_checkpoint(c)
        record: dict[str, Any] = {"source": c, "path": str(path), "sha256": weights.sha256_file(path)}
        if is_onnx(path):
            meta = {p.key: p.value for p in read_model(path).metadata_props}
            record.update(format="onnx", encode_once=False, onnx_metadata=meta)
        out[checkpoint_label(c)] = record
    return out


def metric_record(metric: BuiltMetric, options: dict[str, Any]) -> dict[str, Any]:
    """A metric's registry name, backend, reference, the sha256 of every weights file it was built with, the
    version of the package it runs through, and its facts for reports (label, unit, role)."""
    spec = metric.spec
    files = {n: weights.sha256_file(weights.require(n)) for n in spec.required_weights(options)}
    record = {"spec": spec.name, "backend": spec.backend, "reference": spec.reference, "weights_sha256": files}
    if spec.package:
        record["package"] = {spec.package: importlib.metadata.version(spec.package)}
    return {**record, "label": spec.display, "unit": spec.unit, "role": spec.role}
