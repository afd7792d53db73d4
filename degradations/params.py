"""Field specs of the degradation ops: how a config value is written, checked and drawn.

A config value is what a preset or a user writes (a fixed number, a ``[min, max]`` range, a choice); it is
*resolved* once (checked, defaults filled in) and then *drawn* from for each image with an explicit
``numpy.random.Generator``. Every draw consumes the generator the same way whether the range is degenerate or
not, so fixing one field never shifts the values drawn for the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from degradations.errors import DegradationsError


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Num:
    """A real field. Config: a number (fixed) or ``[min, max]`` (uniform draw). Resolved: ``(min, max)``.

    ``lo``/``hi`` bound the allowed values (inclusive unless ``lo_open``); ``fixed_only`` forbids ranges (used
    for probabilities such as ``gray_prob``); ``example`` goes into error messages.
    """

    default: float | tuple[float, float]
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    fixed_only: bool = False
    example: str = "[1, 3]"

    def resolve(self, value: Any, where: str) -> tuple[float, float]:
        if _is_number(value):
            lo = hi = float(value)
        elif (
            not self.fixed_only
            and isinstance(value, (list, tuple))
            and len(value) == 2
            and all(_is_number(v) for v in value)
        ):
            lo, hi = float(value[0]), float(value[1])
            if lo > hi:
                raise DegradationsError(
                    f"{where}: range min {value[0]} > max {value[1]}; write [min, max], e.g. {self.example}"
                )
        else:
            form = "a number" if self.fixed_only else f"a number or a [min, max] range such as {self.example}"
            raise DegradationsError(f"{where}: expected {form}, got {value!r}")
        for v in (lo, hi):
            below = v <= self.lo if self.lo_open else v < self.lo
            if below or v > self.hi:
                left = "(" if self.lo_open else "["
                raise DegradationsError(f"{where}: {v:g} is outside the allowed {left}{self.lo:g}, {self.hi:g}]")
        return lo, hi

    @staticmethod
    def draw(rng: np.random.Generator, resolved: tuple[float, float]) -> float:
        """One uniform draw in [min, max) (exactly min when min == max)."""
        return float(rng.uniform(resolved[0], resolved[1]))


@dataclass(frozen=True)
class Int:
    """A fixed integer field (kernel sizes); ``odd`` requires an odd value."""

    default: int
    lo: int = 1
    hi: int = 10_000
    odd: bool = False

    def resolve(self, value: Any, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise DegradationsError(f"{where}: expected an integer, got {value!r}")
        if not self.lo <= value <= self.hi:
            raise DegradationsError(f"{where}: {value} is outside the allowed [{self.lo}, {self.hi}]")
        if self.odd and value % 2 == 0:
            raise DegradationsError(f"{where}: must be odd so the kernel has a centre, got {value} (e.g. {value + 1})")
        return value


@dataclass(frozen=True)
class Choice:
    """A categorical field. Config: one option name, or ``{option: weight}`` (weights >= 0, normalised).

    Resolved: a dict option -> probability in the order of ``options``.
    """

    options: tuple[str, ...]
    default: str | Mapping[str, float]

    def resolve(self, value: Any, where: str) -> dict[str, float]:
        known = ", ".join(self.options)
        if isinstance(value, str):
            value = {value: 1.0}
        if not isinstance(value, Mapping) or not value:
            raise DegradationsError(f"{where}: expected one of {known} or a mapping {{option: weight}}, got {value!r}")
        for key, weight in value.items():
            if key not in self.options:
                raise DegradationsError(f"{where}: unknown option {key!r}; use one of {known}")
            if not _is_number(weight) or weight < 0:
                raise DegradationsError(f"{where}: weight of {key!r} must be a number >= 0, got {weight!r}")
        total = float(sum(value.values()))
        if total <= 0:
            raise DegradationsError(f"{where}: the weights sum to 0; give at least one option a positive weight")
        return {o: float(value[o]) / total for o in self.options if o in value}

    @staticmethod
    def draw(rng: np.random.Generator, resolved: Mapping[str, float]) -> str:
        """One categorical draw (always consumes one uniform number)."""
        u = rng.random()
        acc = 0.0
        names = list(resolved)
        for name in names:
            acc += resolved[name]
            if u < acc:
                return name
        return names[-1]  # u within rounding of 1


@dataclass(frozen=True)
class Size:
    """A target size: ``input`` (the size the pipeline was given), an int (square) or ``[height, width]``."""

    default: str | int | tuple[int, int] = "input"

    def resolve(self, value: Any, where: str) -> str | list[int]:
        if value == "input":
            return "input"
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return [value, value]
        if (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            return [int(value[0]), int(value[1])]
        raise DegradationsError(f"{where}: expected 'input', a positive int or [height, width], got {value!r}")


Spec = Num | Int | Choice | Size
