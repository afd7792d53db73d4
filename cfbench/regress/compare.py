"""Baseline vs new values per (severity, w, metric): a change can fail only in the metric's worse direction, and
only beyond its tolerance (see `cfbench.regress.tolerance`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cfbench.errors import EXIT_FAILED_CHECK, BadInputError, CfbenchError
from cfbench.regress.baseline import Baseline
from cfbench.regress.summary import Cell
from cfbench.regress.tolerance import ABSOLUTE, BOOTSTRAP, RELATIVE, Tolerance, Tolerances

EPS = 1e-9  # float noise allowed on top of every tolerance


class RegressionFound(CfbenchError):
    """At least one (severity, w, metric) got worse beyond its tolerance (exit 1)."""

    exit_code = EXIT_FAILED_CHECK


@dataclass(frozen=True)
class Check:
    severity: str
    w: float
    metric: str
    higher_is_better: bool
    baseline: float | None
    ci_low: float | None
    ci_high: float | None
    new: float | None
    tolerance: Tolerance
    passed: bool
    message: str

    @property
    def change(self) -> float | None:
        return None if self.baseline is None or self.new is None else self.new - self.baseline

    @property
    def name(self) -> str:
        return f"{self.metric} (severity {self.severity}, w {self.w:g})"


def check_tolerances(baseline: Baseline, tolerances: Tolerances, source: str = "tolerances") -> None:
    """BadInputError, naming the field, when the tolerances do not fit the baseline (unknown metric, or bootstrap
    for a metric without an interval)."""
    tolerances.check_metrics(baseline.metrics, source)
    for row in baseline.rows:
        tol = tolerances.for_metric(row.metric)
        if tol.kind == BOOTSTRAP and row.value is not None and (row.ci_low is None or row.ci_high is None):
            field = f"metrics.{row.metric}" if row.metric in tolerances.metrics else "default"
            raise BadInputError(
                f"{source}: {field} is kind bootstrap, but {row.metric} has no bootstrap interval (a distribution "
                f"metric); give metrics.{row.metric} an absolute or relative tolerance"
            )


def _judge(row: Cell, new: float | None, higher: bool, tol: Tolerance) -> tuple[bool, str]:
    if new is None or not math.isfinite(new):
        return False, "no value in the new run"
    base = row.value
    if base is None:
        return False, "the baseline has no value to compare with"
    worse = (base - new) if higher else (new - base)
    word = "dropped" if higher else "rose"
    if tol.kind == ABSOLUTE:
        limit = tol.value
    elif tol.kind == RELATIVE:
        limit = tol.value * abs(base)
    else:
        bound = row.ci_low if higher else row.ci_high
        outside = new < bound - EPS if higher else new > bound + EPS
        if outside:
            side = "below" if higher else "above"
            return False, (
                f"{row.metric} {word} from {base:.4g} to {new:.4g}, {side} the baseline interval "
                f"[{row.ci_low:.4g}, {row.ci_high:.4g}]"
            )
        return True, ""
    if worse > limit + EPS:
        return False, f"{row.metric} {word} by {worse:.4g} (from {base:.4g} to {new:.4g}), more than {tol.describe()}"
    return True, ""


def compare(baseline: Baseline, new_cells: Sequence[Cell], tolerances: Tolerances) -> list[Check]:
    """One check per baseline row, in baseline order."""
    new: Mapping[tuple[str, float, str], Cell] = {c.key: c for c in new_cells}
    directions = baseline.directions()
    checks = []
    for row in baseline.rows:
        cell = new.get(row.key)
        value = cell.value if cell is not None else None
        tol = tolerances.for_metric(row.metric)
        passed, message = _judge(row, value, directions[row.metric], tol)
        checks.append(
            Check(
                row.severity,
                row.w,
                row.metric,
                directions[row.metric],
                row.value,
                row.ci_low,
                row.ci_high,
                value,
                tol,
                passed,
                message,
            )
        )
    return checks


def failures(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]


def raise_on_failures(checks: Sequence[Check]) -> None:
    """RegressionFound (exit 1) naming every failing (metric, severity, w)."""
    failed = failures(checks)
    if failed:
        names = ", ".join(c.name for c in failed)
        metrics = sorted({c.metric for c in failed})
        raise RegressionFound(
            f"{len(failed)} of {len(checks)} checks regressed (metrics: {', '.join(metrics)}): {names}"
        )
