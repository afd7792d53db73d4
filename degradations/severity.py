"""Severity specs: integer levels (0 = lightest real degradation .. 4 = hardest), fractions in [0, 1] that
interpolate between the levels (f -> level f * 4), and ``none`` (no degradation).

A token with a decimal point is a fraction, a bare integer is a level: ``1`` is level 1, ``1.0`` is the
hardest level reached by interpolation (the same parameters as level 4, but a different label and seed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from degradations.errors import DegradationsError

Severity = int | float | str  # a level, a fraction, or "none"
MAX_LEVEL = 4
_EXAMPLE = "e.g. '0,1,2,3,4', 'none' or '0.5'"
_INT = re.compile(r"^\d+$")
_FLOAT = re.compile(r"^(\d+\.\d*|\.\d+)$")


def check_severity(value: Any, max_level: int = MAX_LEVEL) -> Severity:
    """Validate one severity: an int level in 0..max_level, a float in [0, 1], or 'none' (also as text)."""
    if isinstance(value, str):
        parsed = parse_severity(value, max_level)
        if len(parsed) != 1:
            raise DegradationsError(f"expected one severity, got {value!r}; {_EXAMPLE}")
        return parsed[0]
    if isinstance(value, bool):
        raise DegradationsError(f"severity must be a level, a fraction or 'none', got {value!r}; {_EXAMPLE}")
    if isinstance(value, int):
        if not 0 <= value <= max_level:
            raise DegradationsError(f"severity level {value} is outside 0..{max_level}; {_EXAMPLE}")
        return value
    if isinstance(value, float):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise DegradationsError(f"severity fraction {value} is outside [0, 1]; {_EXAMPLE}")
        return value
    raise DegradationsError(f"severity must be a level, a fraction or 'none', got {value!r}; {_EXAMPLE}")


def parse_severity(spec: str, max_level: int = MAX_LEVEL) -> list[Severity]:
    """Parse a comma-separated severity spec such as ``"0,1,2,3,4"``, ``"none"`` or ``"0.5"`` into a list."""
    if not isinstance(spec, str) or not spec.strip():
        raise DegradationsError(f"empty severity spec {spec!r}; {_EXAMPLE}")
    out: list[Severity] = []
    for raw in spec.split(","):
        token = raw.strip().lower()
        if token == "none":
            out.append("none")
        elif _INT.match(token):
            out.append(check_severity(int(token), max_level))
        elif _FLOAT.match(token):
            out.append(check_severity(float(token), max_level))
        else:
            raise DegradationsError(
                f"bad severity {raw.strip()!r} in {spec!r}: use levels 0..{max_level}, fractions in [0, 1] "
                f"or 'none' separated by commas; {_EXAMPLE}"
            )
    return out


def severity_label(severity: Severity | None) -> str:
    """Canonical text of a severity (seeds and records use it): None -> 'preset', 2 -> '2', 0.5 -> '0.5'."""
    if severity is None:
        return "preset"
    if severity == "none":
        return "none"
    if isinstance(severity, bool) or not isinstance(severity, (int, float)):
        raise DegradationsError(f"severity must be a level, a fraction or 'none', got {severity!r}; {_EXAMPLE}")
    return str(severity) if isinstance(severity, int) else repr(float(severity))


def _lerp(a: Any, b: Any, t: float) -> Any:
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool):
        return a + (b - a) * t if t else a
    if (
        isinstance(a, (list, tuple))
        and isinstance(b, (list, tuple))
        and len(a) == len(b)
        and all(isinstance(v, num) for v in [*a, *b])
    ):
        return [x + (y - x) * t if t else x for x, y in zip(a, b, strict=True)]
    # Non-numeric values (choices) are taken from the nearer level.
    return a if t < 0.5 else b


def level_overrides(
    levels: Mapping[int, Mapping[str, Mapping[str, Any]]], severity: int | float
) -> dict[str, dict[str, Any]]:
    """Per-op field overrides (op id -> field -> value) for a level, or a fraction interpolated linearly."""
    top = max(levels)
    if isinstance(severity, int):
        if severity not in levels:
            raise DegradationsError(f"severity level {severity} is not defined (levels: 0..{top})")
        return {op: dict(fields) for op, fields in levels[severity].items()}
    pos = float(severity) * top
    lo = min(int(math.floor(pos)), top)
    hi = min(lo + 1, top)
    t = pos - lo
    out: dict[str, dict[str, Any]] = {}
    for op, fields in levels[lo].items():
        out[op] = {k: _lerp(v, levels[hi][op][k], t) for k, v in fields.items()}
    return out
