"""`Pipeline`: an ordered list of ops with field ranges and probabilities; sampling is separate from applying.

``params = pipeline.sample(seed)`` returns a plain JSON record (every drawn value, which ops were skipped);
``apply_params(img, params)`` (also ``pipeline.apply``) is a deterministic function of the image and the
record, so any degraded image can be replayed from its record alone. Images are float32 RGB NCHW tensors in
[0, 1].

Each op draws from its own generator, ``PCG64(SeedSequence(seed, spawn_key=(hash32(op id),)))``: changing,
adding or removing one op does not change what the others draw. The probability gate is always drawn first.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from degradations.errors import DegradationsError, MissingFileError
from degradations.ops import OPS, Op
from degradations.registry import UnknownNameError
from degradations.seeds import stable_hash32
from degradations.severity import Severity, check_severity, level_overrides, severity_label

BACKENDS = ("cpu", "torch")
RECORD_VERSION = 1
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


# --- applying records --------------------------------------------------------------------------------------


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
