"""The gate validates what it trusts (issue 20, point 5; reliability probe RG3, RG5-RG10): a baseline file is
schema-checked before any evaluation (exit 2 naming the key), and a metric missing from the new run fails."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from cfbench.errors import BadInputError
from cfbench.regress.baseline import parse_baseline, read_baseline
from cfbench.regress.compare import compare, failures
from cfbench.regress.summary import Cell
from cfbench.regress.tolerance import parse_tolerances
from tests.regress.helpers import run_cli

COMMITTED = Path(__file__).resolve().parents[1] / "data" / "regress" / "codeformer_tiny_demo.json"


@pytest.fixture
def data() -> dict:
    return json.loads(COMMITTED.read_text())


def _set(path: str, value):
    def edit(d):
        *head, last = path.split(".")
        for key in head:
            d = d[int(key)] if key.isdigit() else d[key]
        d[int(last) if last.isdigit() else last] = value

    return edit


NAN, INF = float("nan"), float("inf")
CASES = {
    # RG5: NaN made every comparison pass ("4 checks passed")
    "nan-value": (_set("rows.0.value", NAN), r"rows\[0\]\.value is nan"),
    "nan-ci": (_set("rows.1.ci_low", NAN), r"rows\[1\]\.ci_low is nan"),
    "inf-ci": (_set("rows.0.ci_high", INF), r"rows\[0\]\.ci_high is inf"),
    "string-w": (_set("rows.0.w", "0.5"), r"rows\[0\]\.w has the wrong type"),
    "bool-n": (_set("rows.0.n_images", True), r"rows\[0\]\.n_images has the wrong type"),
    "zero-n": (_set("rows.0.n_images", 0), r"rows\[0\]\.n_images is 0"),
    # RG6: an inverted interval gave "4 of 4 checks regressed" (exit 1)
    "inverted-ci": (lambda d: d["rows"][0].update(ci_low=30.0, ci_high=10.0), r"rows\[0\]\.value .* outside"),
    "half-ci": (_set("rows.0.ci_low", None), r"rows\[0\]\.ci_low and ci_high must both"),
    # RG9: a flipped direction inverted the gate
    "flipped": (_set("metrics.psnr.higher_is_better", False), r"metrics\.psnr\.higher_is_better is false.*higher"),
    "unknown-spec": (_set("metrics.psnr.spec", "psnrr"), r"metrics\.psnr\.spec"),
    "no-spec": (lambda d: d["metrics"]["psnr"].pop("spec"), r"metrics\.psnr\.spec is missing"),
    # RG3: the ssim rows removed left ssim ungated ("2 checks passed")
    "rows-removed": (lambda d: d.update(rows=[r for r in d["rows"] if r["metric"] != "ssim"]), r"rows lack 1 .*ssim"),
    # RG7: a row outside the configured w grid
    "w-off-grid": (_set("rows.0.w", 0.3), r"rows\[0\] \(severity 2, w 0\.3, psnr\) is not in the configured grid"),
    # RG10: a repeated row
    "repeated": (lambda d: d["rows"].append(copy.deepcopy(d["rows"][0])), r"rows\[2\] repeats"),
    "config-metrics": (_set("config.metrics", "psnr"), r"config\.metrics \(psnr\) and the metrics entries differ"),
    "no-config-w": (lambda d: d["config"].pop("w"), r"config\.w is missing"),
    # RG8: `limit: -3` ran and failed late; the config is checked like a sweep YAML
    "bad-limit": (_set("config.limit", -3), r"config\.limit must be a non-negative integer"),
    "quoted-bool": (_set("config.adain", "no"), r"config\.adain must be true or false"),
    "unknown-key": (_set("config.colour", 1), r"config\.colour is not a sweep option"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_baseline_is_refused_naming_the_key(data, case):
    edit, message = CASES[case]
    edit(data)
    with pytest.raises(BadInputError, match=message) as err:
        parse_baseline(data, "b.json")
    assert str(err.value).startswith("b.json: ") and "\n" not in str(err.value)


def test_committed_baseline_passes_the_checks():
    base = read_baseline(COMMITTED)
    assert [(r.metric, r.w) for r in base.rows] == [("psnr", 0.5), ("ssim", 0.5)]


def test_nan_baseline_exits_2_before_any_evaluation(data, tmp_path):
    """RG5 through the CLI: `json.dump` writes NaN; `cfbench regress` must refuse it with exit 2."""
    for row in data["rows"]:
        row.update(value=NAN, ci_low=NAN, ci_high=NAN)
    path = tmp_path / "all_nan.json"
    path.write_text(json.dumps(data))
    res = run_cli(["regress", "-b", path, "-c", "codeformer_tiny", "--device", "cpu"])
    assert res.code == 2 and "rows[0].value is nan" in res.error and "\n" not in res.error


def test_a_metric_missing_from_the_new_run_fails(data):
    """A metric in the baseline but absent from the run's cells is a failed check, never a pass."""
    base = parse_baseline(data, "b.json")
    only_psnr = [
        Cell(r.severity, r.w, r.metric, r.value, None, None, r.n_images) for r in base.rows if r.metric == "psnr"
    ]
    checks = compare(base, only_psnr, parse_tolerances(None))
    assert [(c.metric, c.message) for c in failures(checks)] == [("ssim", "no value in the new run")]
