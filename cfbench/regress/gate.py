"""The evaluations behind `cfbench baseline` and `cfbench regress` (rank 0 of `cfbench.eval.runner`)."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfbench import __version__
from cfbench.errors import BadInputError
from cfbench.eval.config import SweepConfig
from cfbench.eval.runner import FidelityWeightSweep
from cfbench.metrics import PerImageMetric
from cfbench.regress.baseline import Baseline
from cfbench.regress.compare import Check, check_tolerances, compare
from cfbench.regress.compat import check_compatible
from cfbench.regress.summary import BOOT_SEED, CONFIDENCE, N_BOOT, Cell, summarize_run
from cfbench.regress.tolerance import Tolerances
from cfbench.regress.wsens import measure_w_sensitivity, parse_w_sensitivity, w_sensitivity_check

Log = Callable[[str], None]


@contextlib.contextmanager
def _run_dir(config: SweepConfig) -> Iterator[SweepConfig]:
    """`config` with a temporary run dir (removed afterwards) unless it names one."""
    if config.run_dir:
        yield config
        return
    with tempfile.TemporaryDirectory(prefix="cfbench-regress-") as tmp:
        yield dataclasses.replace(config, run_dir=str(Path(tmp) / "run"))


def _single_checkpoint(config: SweepConfig) -> str:
    if len(config.checkpoints) != 1:
        raise BadInputError(f"a baseline is made from one checkpoint, got {list(config.checkpoints)}")
    return config.checkpoints[0]


def _metric_entries(sweep: FidelityWeightSweep, provenance: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for m in sweep.metrics:
        entry = dict(provenance["metrics"][m.column])
        entry["higher_is_better"] = bool(m.spec.higher_is_better)
        entry["kind"] = "per-image" if isinstance(m.metric, PerImageMetric) else "distribution"
        out[m.column] = entry
    return out


def make_baseline(
    config: SweepConfig, log: Log = print, *, n_boot: int = N_BOOT, confidence: float = CONFIDENCE
) -> Baseline:
    """Evaluate the one checkpoint of `config` and summarize it as a baseline."""
    _single_checkpoint(config)
    config = dataclasses.replace(config, skip_missing=False)  # a baseline never leaves a requested metric out
    with _run_dir(config) as cfg:
        sweep = FidelityWeightSweep(cfg, log=log)
        if not sweep.metrics:
            raise BadInputError(f"no metric can run on {cfg.dataset!r} here (skipped: {sweep.skipped})")
        result = sweep.run()
        provenance = sweep.provenance()
        metrics = _metric_entries(sweep, provenance)
        rows = summarize_run(result.run_dir, list(metrics), n_boot=n_boot, seed=BOOT_SEED, confidence=confidence)
        sensitivity = measure_w_sensitivity(sweep)
    ((label, ckpt),) = provenance["checkpoints"].items()
    stored = {k: v for k, v in config.to_dict().items() if k != "run_dir"}
    stored["metrics"] = ",".join(m["spec"] for m in metrics.values())  # the resolved list
    dataset = provenance["dataset"]
    return Baseline(
        checkpoint={"label": label, "source": ckpt["source"], "sha256": ckpt["sha256"]},
        config=stored,
        seeds={"degradation": config.seed, "bootstrap": BOOT_SEED},
        bootstrap={"n_boot": n_boot, "seed": BOOT_SEED, "confidence": confidence},
        dataset={"name": dataset.get("name"), "content_hash": dataset["content_hash"], "n": dataset.get("n")},
        metrics=metrics,
        rows=rows,
        cfbench=__version__,
        device=str(provenance.get("device", "cpu")),
        w_sensitivity=sensitivity.to_dict() if sensitivity else None,
    )


def regress_config(baseline: Baseline, checkpoint: str, **machine: Any) -> SweepConfig:
    """The baseline's sweep config for `checkpoint`; `machine` may set run_dir, device, batch_size (None: keep),
    and dataset / data_root (to find the same data elsewhere: its content hash is still checked)."""
    data = dict(baseline.config)  # checked by parse_baseline
    data.update({k: v for k, v in machine.items() if v is not None})
    data["checkpoints"] = (str(checkpoint),)
    data["run_dir"] = machine.get("run_dir")
    data["save_images"] = False
    data["skip_missing"] = False  # the gate measures every metric of the baseline or fails
    return SweepConfig(**data)


@dataclass
class RegressResult:
    checks: list[Check]
    cells: list[Cell]
    checkpoint: dict[str, Any]
    device: str
    seconds: float


def run_regress(
    baseline: Baseline,
    checkpoint: str,
    tolerances: Tolerances,
    log: Log = print,
    *,
    tolerance_source: str = "tolerances",
    **machine: Any,
) -> RegressResult:
    """Evaluate `checkpoint` exactly as the baseline was evaluated and compare. Raises IncompatibleBaselineError
    (before any restoration) when data, metric backends or weights differ."""
    check_tolerances(baseline, tolerances, tolerance_source)
    base_sensitivity = parse_w_sensitivity(baseline.w_sensitivity, "baseline")
    config = regress_config(baseline, checkpoint, **machine)
    start = time.perf_counter()
    with _run_dir(config) as cfg:
        sweep = FidelityWeightSweep(cfg, log=log)
        provenance = sweep.provenance()
        check_compatible(baseline, provenance, sweep.skipped)
        result = sweep.run()
        bs = baseline.bootstrap
        cells = summarize_run(
            result.run_dir,
            list(baseline.metrics),
            n_boot=int(bs.get("n_boot", N_BOOT)),
            seed=int(bs.get("seed", BOOT_SEED)),
            confidence=float(bs.get("confidence", CONFIDENCE)),
        )
        sensitivity = measure_w_sensitivity(sweep)
    ((label, ckpt),) = provenance["checkpoints"].items()
    checks = compare(baseline, cells, tolerances)
    sensitivity_check = w_sensitivity_check(label, sensitivity, base_sensitivity)
    if sensitivity_check is not None:
        checks.append(sensitivity_check)
    return RegressResult(
        checks=checks,
        cells=cells,
        checkpoint={"label": label, "source": ckpt["source"], "sha256": ckpt["sha256"]},
        device=str(provenance.get("device")),
        seconds=time.perf_counter() - start,
    )
