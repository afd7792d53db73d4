"""`Pipeline`: an ordered list of ops with field ranges and probabilities; sampling is separate from applying.

``params = pipeline.sample(seed)`` returns a plain JSON record (every drawn value, which ops were skipped);
``apply_params(img, params)`` (`degradations.apply`; also ``pipeline.apply``) is a deterministic function of the
image and the record, so any degraded image can be replayed from its record alone. Images are float32 RGB NCHW
tensors in [0, 1]. The pipeline as data (ops, levels): `degradations.pipeline_config`.

Each op draws from its own generator, ``PCG64(SeedSequence(seed, spawn_key=(hash32(op id),)))``: changing,
adding or removing one op does not change what the others draw. The probability gate is always drawn first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from degradations.apply import apply_params
from degradations.errors import DegradationsError
from degradations.ops import OPS, Op
from degradations.pipeline_config import PipelineConfig
from degradations.registry import UnknownNameError
from degradations.seeds import stable_hash32
from degradations.severity import Severity, check_severity, severity_label

RECORD_VERSION = 1


@dataclass(frozen=True)
class _Step:
    id: str
    op: Op
    prob: float
    resolved: dict[str, Any]


def _plain(value: Any) -> Any:
    """Numpy scalars and tuples -> plain JSON types (records must survive json.dumps/loads unchanged)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _steps(config: PipelineConfig) -> list[_Step]:
    steps: list[_Step] = []
    seen: set[str] = set()
    for i, o in enumerate(config.ops):
        where = f"{config.name}: ops[{i}] ({o.op})"
        try:
            op = OPS.get(o.op)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{config.name}: ops[{i}]: {exc}") from None
        prob = o.prob
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
            raise DegradationsError(f"{where}.prob: probability {prob!r} is outside [0, 1]")
        if o.key in seen:
            raise DegradationsError(f"{where}: duplicate op id {o.key!r}; give one of them an 'id'")
        seen.add(o.key)
        steps.append(_Step(o.key, op, float(prob), op.resolve(o.params, where)))
    return steps


def _check_levels(config: PipelineConfig) -> None:
    levels = config.levels
    if not levels:
        return
    if sorted(levels) != list(range(len(levels))):
        raise DegradationsError(f"{config.name}: levels must be numbered 0..L without gaps, got {sorted(levels)}")
    ids = {o.key for o in config.ops}
    first = levels[0]
    for lvl, over in levels.items():
        if not isinstance(over, Mapping) or any(not isinstance(v, Mapping) for v in over.values()):
            raise DegradationsError(f"{config.name}: levels[{lvl}] must map op ids to {{field: value}}")
        for op_id in over:
            if op_id not in ids:
                raise DegradationsError(
                    f"{config.name}: levels[{lvl}] names op id {op_id!r}, not in the ops ({sorted(ids)})"
                )
        if {k: set(v) for k, v in over.items()} != {k: set(v) for k, v in first.items()}:
            raise DegradationsError(f"{config.name}: levels[{lvl}] must set the same op ids and fields as levels[0]")
        _steps(config.at_severity(lvl))  # each level must give a valid pipeline


class Pipeline:
    """A degradation pipeline at a fixed severity.

    ``Pipeline(config, severity=None)`` with a `PipelineConfig` or its dict/YAML form. ``sample(seed)`` ->
    params record; ``apply(img, params)`` -> LQ; ``pipeline(img, seed)`` -> (LQ, records).
    """

    def __init__(self, config: PipelineConfig | Mapping[str, Any], severity: Severity | None = None) -> None:
        if not isinstance(config, PipelineConfig):
            config = PipelineConfig.from_dict(config)
        _steps(config)
        _check_levels(config)
        self.base_config = config
        self.severity = None if severity is None else check_severity(severity, config.max_level or 4)
        self.config = config.at_severity(self.severity)
        self._steps = _steps(self.config)

    @classmethod
    def from_yaml(cls, path: str | Path, severity: Severity | None = None) -> Pipeline:
        return cls(PipelineConfig.from_yaml(path), severity)

    @property
    def name(self) -> str:
        return self.config.name

    def sample(self, seed: int | np.random.Generator) -> dict[str, Any]:
        """Draw every op's params for one image. ``seed``: an int >= 0 (e.g. from `derive_seed`) or a
        Generator (one int is drawn from it). Returns a JSON-serialisable record."""
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(0, 2**63))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DegradationsError(f"seed must be an int >= 0, got {seed!r}")
        seed = int(seed)
        ops = []
        for step in self._steps:
            seq = np.random.SeedSequence(seed, spawn_key=(stable_hash32(step.id),))
            rng = np.random.Generator(np.random.PCG64(seq))
            applied = bool(rng.random() < step.prob)
            entry: dict[str, Any] = {"id": step.id, "op": step.op.name, "applied": applied}
            if applied:
                entry["params"] = _plain(step.op.sample(rng, step.resolved))
            ops.append(entry)
        return {
            "version": RECORD_VERSION,
            "pipeline": self.name,
            "severity": severity_label(self.severity),
            "seed": seed,
            "quantize": self.config.quantize,
            "ops": ops,
        }

    def apply(
        self, img: torch.Tensor, params: Mapping[str, Any] | Sequence[Mapping[str, Any]], backend: str = "cpu"
    ) -> torch.Tensor:
        """Apply params record(s), one per image, to an (N, 3, H, W) float32 batch; see `apply_params`."""
        return apply_params(img, params, backend)

    def __call__(
        self, img: torch.Tensor, seed: int | Sequence[int], backend: str = "cpu"
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Sample (one seed per image; an int only for N == 1) and apply. Returns (LQ batch, records)."""
        seeds = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
        records = [self.sample(s) for s in seeds]
        return apply_params(img, records, backend), records
