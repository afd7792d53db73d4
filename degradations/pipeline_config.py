"""The pipeline as data: `OpConfig` (one step) and `PipelineConfig` (the ops, the 8-bit quantisation and the
optional severity levels), read from a preset's dict or YAML form and resolved to a concrete pipeline at a severity
(`PipelineConfig.at_severity`). Checking the ops against the registry and drawing from them: `degradations.pipeline`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from degradations.errors import DegradationsError, MissingFileError
from degradations.severity import Severity, check_severity, level_overrides

_OP_KEYS = ("op", "id", "prob")
_TOP_KEYS = ("name", "description", "quantize", "ops", "levels")


@dataclass
class OpConfig:
    """One step: a registered op name, the probability it is applied, its fields, and an id (default: the op
    name; ids must be unique in a pipeline, so a pipeline with two blurs names them)."""

    op: str
    prob: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @property
    def key(self) -> str:
        return self.id or self.op

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "op") -> OpConfig:
        """Flat form: ``{op: jpeg, prob: 0.5, quality: [30, 80]}``."""
        if not isinstance(data, Mapping) or "op" not in data:
            raise DegradationsError(
                f"{where}: expected a mapping with an 'op' key, e.g. {{op: jpeg, quality: [60, 100]}}"
            )
        return cls(
            op=data["op"],
            prob=data.get("prob", 1.0),
            id=data.get("id"),
            params={k: v for k, v in data.items() if k not in _OP_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if self.id is not None:
            out["id"] = self.id
        out["prob"] = self.prob
        out.update(copy.deepcopy(self.params))
        return out


@dataclass
class PipelineConfig:
    """A pipeline as data (the YAML of a preset).

    ``levels`` (optional) maps severity level 0..L to per-op field overrides ``{op id: {field: value}}`` (a
    level may also set ``prob``); a pipeline with levels needs a severity.
    """

    name: str = "custom"
    ops: list[OpConfig] = field(default_factory=list)
    quantize: bool = True
    levels: dict[int, dict[str, dict[str, Any]]] | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "pipeline") -> PipelineConfig:
        if not isinstance(data, Mapping):
            raise DegradationsError(f"{source}: expected a mapping with an 'ops' list, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise DegradationsError(f"{source}: unknown key {unknown[0]!r} (keys: {', '.join(_TOP_KEYS)})")
        name = str(data.get("name", source))
        ops = data.get("ops")
        if not isinstance(ops, list):
            raise DegradationsError(f"{source}: 'ops' must be a list of ops, e.g. [{{op: jpeg, quality: [60, 100]}}]")
        levels = data.get("levels")
        if levels is not None:
            if not isinstance(levels, Mapping):
                raise DegradationsError(f"{source}: 'levels' must map level numbers to overrides")
            try:
                levels = {int(k): v for k, v in levels.items()}
            except (TypeError, ValueError):
                raise DegradationsError(f"{source}: level keys must be integers 0..L") from None
        quantize = data.get("quantize", True)
        if not isinstance(quantize, bool):
            raise DegradationsError(f"{source}: 'quantize' must be true or false, got {quantize!r}")
        return cls(
            name=name,
            ops=[OpConfig.from_dict(d, f"{name}: ops[{i}]") for i, d in enumerate(ops)],
            quantize=quantize,
            levels=levels,
            description=str(data.get("description", "")),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"pipeline file {path} does not exist; pass a YAML file with an 'ops' list")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise DegradationsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        return cls.from_dict(data, source=path.stem)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["quantize"] = self.quantize
        out["ops"] = [o.to_dict() for o in self.ops]
        if self.levels is not None:
            out["levels"] = copy.deepcopy(self.levels)
        return out

    @property
    def max_level(self) -> int | None:
        return max(self.levels) if self.levels else None

    def at_severity(self, severity: Severity | None) -> PipelineConfig:
        """The concrete pipeline (no levels) at a severity; None keeps the ops as written."""
        if severity is None:
            if self.levels:
                raise DegradationsError(
                    f"pipeline {self.name!r} has severity levels 0..{self.max_level}: give a severity "
                    f"(a level, a fraction like 0.5, or 'none')"
                )
            return copy.deepcopy(self)
        if severity == "none":
            return PipelineConfig(name=self.name, ops=[], quantize=self.quantize, description=self.description)
        if not self.levels:
            raise DegradationsError(
                f"pipeline {self.name!r} has no severity levels: drop the severity, or use a preset with "
                f"levels (e.g. severity-scale)"
            )
        over = level_overrides(self.levels, check_severity(severity, self.max_level))
        ops = []
        for o in self.ops:
            fields = dict(over.get(o.key, {}))
            prob = fields.pop("prob", o.prob)
            ops.append(OpConfig(op=o.op, prob=prob, params={**copy.deepcopy(o.params), **fields}, id=o.id))
        return PipelineConfig(name=self.name, ops=ops, quantize=self.quantize, description=self.description)
