"""The checkpoint regression gate (`cfbench baseline` / `cfbench regress`, docs/ci.md).

- `baseline`: the baseline file (per severity, w and metric the mean and its bootstrap interval, plus what the
  numbers depend on: dataset content hash, metric backends and weights hashes, seeds, the resolved sweep config).
- `compat`: whether a new evaluation measures the same thing as a baseline (else exit 2).
- `tolerance`: the tolerance file (absolute, relative, or outside the bootstrap interval; per-metric overrides).
- `compare`: baseline vs new values per (severity, w, metric), using the metric's direction.
- `report`: the terminal table, the pull-request markdown and the JUnit XML.
- `gate`: running the evaluations behind both commands.
"""

from cfbench.regress.baseline import Baseline, BaselineRow, read_baseline, write_baseline
from cfbench.regress.compare import Check, RegressionFound, compare
from cfbench.regress.compat import IncompatibleBaselineError, check_compatible
from cfbench.regress.tolerance import Tolerance, Tolerances, load_tolerances, parse_tolerances

__all__ = [
    "Baseline",
    "BaselineRow",
    "Check",
    "IncompatibleBaselineError",
    "RegressionFound",
    "Tolerance",
    "Tolerances",
    "check_compatible",
    "compare",
    "load_tolerances",
    "parse_tolerances",
    "read_baseline",
    "write_baseline",
]
