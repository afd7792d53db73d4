"""The gate's w-sensitivity check: does the checkpoint's output depend on the fidelity weight w at all?

Measured as the mean absolute difference, in 8-bit levels (0 ... 255), between the restorations at the lowest and
the highest w of the run, on the first `FACES` faces of its first severity (restored once more for this; outputs
rounded to 8 bits like the sweep's). `cfbench baseline` records it; `cfbench regress` fails (a `Check` named
`w_sensitivity`) when the new value is below `FLOOR` levels (w changes nothing: an export traced at w = 0, a port
that drops its w input) or below `RATIO` times the baseline's. A run with a single w has no such check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from cfbench.data import with_severity
from cfbench.errors import BadInputError
from cfbench.eval.provenance import checkpoint_label
from cfbench.eval.restorer import load_sweep_restorer
from cfbench.eval.runner import FidelityWeightSweep, quantize
from cfbench.regress.compare import Check
from cfbench.regress.tolerance import RELATIVE, Tolerance

METRIC = "w_sensitivity"
FACES = 4
FLOOR = 0.5  # 8-bit levels: below this the output does not depend on w
RATIO = 0.25  # the new value must keep at least this share of the baseline's


@dataclass(frozen=True)
class WSensitivity:
    """Mean |restored(w_high) - restored(w_low)| in 8-bit levels over `faces` faces of `severity`."""

    w_low: float
    w_high: float
    severity: str
    faces: int
    mean_abs_diff: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_w_sensitivity(data: Any, source: str) -> WSensitivity | None:
    """The baseline's `w_sensitivity` entry (None when absent: a baseline made before the check, or with one w)."""
    if data is None:
        return None
    fields = ("w_low", "w_high", "severity", "faces", "mean_abs_diff")
    if not isinstance(data, Mapping) or any(k not in data for k in fields):
        raise BadInputError(f"{source}: w_sensitivity must be an object with {', '.join(fields)}")
    try:
        return WSensitivity(
            float(data["w_low"]),
            float(data["w_high"]),
            str(data["severity"]),
            int(data["faces"]),
            float(data["mean_abs_diff"]),
        )
    except (TypeError, ValueError):
        raise BadInputError(f"{source}: w_sensitivity has a non-numeric field ({dict(data)})") from None


def measure_w_sensitivity(sweep: FidelityWeightSweep) -> WSensitivity | None:
    """The w-sensitivity of the sweep's one checkpoint on its data (None when the run has a single w)."""
    lo, hi = min(sweep.ws), max(sweep.ws)
    if lo == hi:
        return None
    config, severity = sweep.config, sweep.severities[0]
    ckpt = sweep.checkpoints[0]
    restorer = load_sweep_restorer(ckpt, checkpoint_label(ckpt), sweep.device, config.lookup, config.adain)
    data = with_severity(sweep.dataset, severity, seed=config.seed)
    lq = torch.stack([data.load(i).lq for i in sweep.indices[:FACES]]).to(sweep.device)
    with torch.inference_mode():
        # the sweep's batch size, as `--batch-size auto` resolved it when the sweep ran
        out = quantize(restorer.decode(restorer.encode(lq), [lo, hi], max(1, sweep.batch_size)))
    n = len(lq)
    diff = float((out[n:] - out[:n]).abs().mean()) * 255
    return WSensitivity(lo, hi, str(severity), n, diff)


def w_sensitivity_check(label: str, new: WSensitivity | None, baseline: WSensitivity | None) -> Check | None:
    """The gate's check of `new` against `FLOOR` and `RATIO` x `baseline` (None when not measured)."""
    if new is None:
        return None
    base = baseline.mean_abs_diff if baseline is not None else None
    limit = max(FLOOR, RATIO * base) if base is not None else FLOOR
    passed = new.mean_abs_diff >= limit
    message = ""
    if not passed:
        than = f"the baseline's {base:.3g}" if base is not None else "any w-dependent model"
        message = (
            f"{label}'s output does not depend on w: restorations at w {new.w_low:g} and {new.w_high:g} differ by "
            f"{new.mean_abs_diff:.3g} 8-bit levels on average (at least {limit:.3g} needed; {than}); is its w "
            "input ignored (an export traced at w = 0, a port that drops w)?"
        )
    tol = Tolerance(RELATIVE, 1 - RATIO)
    return Check(new.severity, new.w_high, METRIC, True, base, None, None, new.mean_abs_diff, tol, passed, message)
