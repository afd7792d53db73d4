"""The tolerance file of `cfbench regress`: how much worse a metric may get before the gate fails.

    default: {kind: bootstrap}            # the new mean must not leave the baseline's bootstrap interval
    metrics:
      psnr: {kind: absolute, value: 0.1}  # may drop by at most 0.1 dB
      lpips[vgg]: {kind: relative, value: 0.02}  # may rise by at most 2 % of the baseline value

Kinds: ``absolute`` (``value`` >= 0, in the metric's unit), ``relative`` (``value`` >= 0, a fraction of
|baseline|), ``bootstrap`` (no value: fails when the new mean is outside the baseline's interval on the worse side).
Only a change in the worse direction (from the metric's higher/lower-is-better) can fail. Every error names the
field, e.g. ``tol.yaml: metrics.psnr.value must be a number >= 0, got 'abc'``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cfbench.errors import BadInputError
from cfbench.yamlfile import read_yaml

ABSOLUTE, RELATIVE, BOOTSTRAP = "absolute", "relative", "bootstrap"
KINDS = (ABSOLUTE, RELATIVE, BOOTSTRAP)


@dataclass(frozen=True)
class Tolerance:
    kind: str = BOOTSTRAP
    value: float = 0.0

    def describe(self) -> str:
        if self.kind == ABSOLUTE:
            return f"abs {self.value:g}"
        if self.kind == RELATIVE:
            return f"rel {self.value * 100:g}%"
        return "bootstrap CI"


@dataclass(frozen=True)
class Tolerances:
    default: Tolerance = Tolerance()
    metrics: dict[str, Tolerance] = field(default_factory=dict)

    def for_metric(self, metric: str) -> Tolerance:
        return self.metrics.get(metric, self.default)

    def check_metrics(self, known: Iterable[str], source: str = "tolerances") -> None:
        """BadInputError naming `metrics.<name>` when an override is for a metric the baseline does not have."""
        known = list(known)
        for name in self.metrics:
            if name not in known:
                raise BadInputError(
                    f"{source}: metrics.{name} is not a metric of the baseline (it has {', '.join(known)})"
                )


def _parse_one(data: Any, where: str, source: str) -> Tolerance:
    if not isinstance(data, Mapping):
        raise BadInputError(f"{source}: {where} must be a mapping like {{kind: absolute, value: 0.1}}, got {data!r}")
    unknown = sorted(set(map(str, data)) - {"kind", "value"})
    if unknown:
        raise BadInputError(f"{source}: {where}.{unknown[0]} is not a tolerance field (use kind and value)")
    kind = data.get("kind")
    if kind not in KINDS:
        raise BadInputError(f"{source}: {where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    value = data.get("value")
    if kind == BOOTSTRAP:
        if value is not None:
            raise BadInputError(f"{source}: {where}.value is not used by kind bootstrap; remove it")
        return Tolerance(BOOTSTRAP)
    if value is None:
        raise BadInputError(f"{source}: {where}.value is required for kind {kind}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise BadInputError(f"{source}: {where}.value must be a number >= 0, got {value!r}")
    return Tolerance(kind, float(value))


def parse_tolerances(data: Any, source: str = "tolerances") -> Tolerances:
    """Tolerances from the parsed YAML (None or empty: bootstrap for every metric)."""
    if data is None:
        return Tolerances()
    if not isinstance(data, Mapping):
        raise BadInputError(f"{source} must be a YAML mapping with the keys default and metrics")
    unknown = sorted(set(map(str, data)) - {"default", "metrics"})
    if unknown:
        raise BadInputError(f"{source}: {unknown[0]} is not a tolerance field (use default and metrics)")
    default = _parse_one(data["default"], "default", source) if data.get("default") is not None else Tolerance()
    metrics_data = data.get("metrics") or {}
    if not isinstance(metrics_data, Mapping):
        raise BadInputError(f"{source}: metrics must be a mapping of metric name to tolerance, got {metrics_data!r}")
    metrics = {str(k): _parse_one(v, f"metrics.{k}", source) for k, v in metrics_data.items()}
    return Tolerances(default, metrics)


def load_tolerances(path: str | os.PathLike | None) -> Tolerances:
    """The tolerance YAML file at `path` (None: the default, bootstrap for every metric)."""
    if path is None:
        return Tolerances()
    return parse_tolerances(read_yaml(path, "tolerance file"), str(path))
