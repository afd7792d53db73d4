"""Whether a new evaluation measures what the baseline measured: same dataset content, same metric backends, same
metric weights. Anything else makes the comparison meaningless, so `cfbench regress` refuses with exit 2."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cfbench.errors import BadInputError
from cfbench.regress.baseline import Baseline


class IncompatibleBaselineError(BadInputError):
    """The baseline was made on other data, or with other metric backends or weights (exit 2)."""


def _short(h: Any) -> str:
    return str(h)[:12] if h else "(none)"


def problems(baseline: Baseline, provenance: Mapping[str, Any], skipped: Mapping[str, str]) -> list[str]:
    """What differs between the baseline and the provenance of a new sweep (`FidelityWeightSweep.provenance()`)."""
    out: list[str] = []
    want, have = baseline.dataset.get("content_hash"), provenance["dataset"].get("content_hash")
    if want != have:
        out.append(
            f"dataset content hash differs (baseline {_short(want)} of {baseline.dataset.get('name')!r}, "
            f"here {_short(have)} of {provenance['dataset'].get('name')!r})"
        )
    new_metrics = provenance.get("metrics", {})
    for name, entry in baseline.metrics.items():
        new = new_metrics.get(name)
        if new is None:
            out.append(f"metric {name} is not available here ({skipped.get(name, 'not built')})")
            continue
        if new.get("backend") != entry.get("backend"):
            out.append(
                f"metric {name} backend differs (baseline {entry.get('backend')!r}, here {new.get('backend')!r})"
            )
        old_w, new_w = entry.get("weights_sha256", {}), new.get("weights_sha256", {})
        for file in sorted(set(old_w) | set(new_w)):
            if old_w.get(file) != new_w.get(file):
                out.append(
                    f"metric {name} weights {file} sha256 differs (baseline {_short(old_w.get(file))}, "
                    f"here {_short(new_w.get(file))})"
                )
    return out


def check_compatible(baseline: Baseline, provenance: Mapping[str, Any], skipped: Mapping[str, str]) -> None:
    """IncompatibleBaselineError with a one-line message listing every difference."""
    found = problems(baseline, provenance, skipped)
    if found:
        raise IncompatibleBaselineError("incompatible baseline: " + "; ".join(found))
