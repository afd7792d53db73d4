"""Comparison, compatibility and reports on hand-made baselines (no evaluation: fast)."""

import json
import xml.etree.ElementTree as ET

import pytest

from cfbench.errors import BadInputError
from cfbench.regress.baseline import Baseline, parse_baseline, read_baseline, write_baseline
from cfbench.regress.compare import RegressionFound, check_tolerances, compare, raise_on_failures
from cfbench.regress.compat import IncompatibleBaselineError, check_compatible
from cfbench.regress.report import junit_xml, markdown, rich_table
from cfbench.regress.summary import Cell
from cfbench.regress.tolerance import parse_tolerances


def make_baseline(**metrics_extra):
    metrics = {
        "psnr": {"spec": "psnr", "backend": "basicsr", "weights_sha256": {}, "higher_is_better": True},
        "lpips[vgg]": {
            "spec": "lpips[vgg]",
            "backend": "lpips",
            "weights_sha256": {"lpips_vgg": "aa" * 32},
            "higher_is_better": False,
        },
        **metrics_extra,
    }
    rows = [
        Cell("2", 0.5, "psnr", 25.0, 24.0, 26.0, 3),
        Cell("2", 0.5, "lpips[vgg]", 0.30, 0.25, 0.35, 3),
    ]
    return Baseline(
        checkpoint={"label": "old", "source": "old.pth", "sha256": "00"},
        config={"dataset": "demo", "w": "0.5", "severity": "2", "metrics": "psnr,lpips[vgg]"},
        seeds={"degradation": 0, "bootstrap": 0},
        bootstrap={"n_boot": 1000, "seed": 0, "confidence": 0.95},
        dataset={"name": "demo", "content_hash": "cafe" * 16, "n": 3},
        metrics=metrics,
        rows=rows,
        cfbench="0.0",
    )


def new_cells(psnr, lpips):
    return [Cell("2", 0.5, "psnr", psnr, None, None, 3), Cell("2", 0.5, "lpips[vgg]", lpips, None, None, 3)]


@pytest.mark.parametrize(
    ("tol", "psnr", "lpips", "failed"),
    [
        ({}, 24.5, 0.34, []),  # inside the intervals
        ({}, 23.9, 0.20, ["psnr"]),  # psnr below, lpips better (only the worse side fails)
        ({}, 27.0, 0.36, ["lpips[vgg]"]),  # lpips above its interval
        ({"default": {"kind": "absolute", "value": 0.5}}, 24.6, 0.81, ["lpips[vgg]"]),
        ({"default": {"kind": "relative", "value": 0.1}}, 22.4, 0.32, ["psnr"]),  # 10 % of 25 = 2.5
        ({"metrics": {"psnr": {"kind": "absolute", "value": 0}}}, 24.99, 0.30, ["psnr"]),
        ({}, float("nan"), 0.30, ["psnr"]),
    ],
)
def test_directions_and_tolerance_kinds(tol, psnr, lpips, failed):
    base = make_baseline()
    checks = compare(base, new_cells(psnr, lpips), parse_tolerances(tol))
    assert [c.metric for c in checks if not c.passed] == failed
    if failed:
        with pytest.raises(RegressionFound) as info:
            raise_on_failures(checks)
        assert info.value.exit_code == 1
        assert all(m in str(info.value) for m in failed)
    else:
        raise_on_failures(checks)


def test_a_missing_new_value_fails():
    checks = compare(make_baseline(), new_cells(25.0, 0.3)[:1], parse_tolerances(None))
    assert [c.passed for c in checks] == [True, False]


def test_bootstrap_needs_an_interval():
    base = make_baseline(fid={"spec": "fid", "backend": "x", "weights_sha256": {}, "higher_is_better": False})
    base.rows.append(Cell("2", 0.5, "fid", 40.0, None, None, 3))
    with pytest.raises(BadInputError, match=r"tol.yaml: default is kind bootstrap.*metrics.fid"):
        check_tolerances(base, parse_tolerances(None), "tol.yaml")
    check_tolerances(base, parse_tolerances({"metrics": {"fid": {"kind": "absolute", "value": 1}}}), "tol.yaml")


def provenance(base):
    return {
        "dataset": {"name": "demo", "content_hash": base.dataset["content_hash"]},
        "metrics": {
            k: {"backend": v["backend"], "weights_sha256": dict(v["weights_sha256"])} for k, v in base.metrics.items()
        },
    }


def test_compatibility_names_what_differs():
    base = make_baseline()
    check_compatible(base, provenance(base), {})
    prov = provenance(base)
    prov["metrics"]["psnr"]["backend"] = "skimage"
    prov["metrics"]["lpips[vgg]"]["weights_sha256"]["lpips_vgg"] = "bb" * 32
    with pytest.raises(IncompatibleBaselineError) as info:
        check_compatible(base, prov, {})
    msg = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in msg
    assert "psnr backend differs" in msg and "lpips_vgg sha256 differs" in msg
    prov = provenance(base)
    del prov["metrics"]["lpips[vgg]"]
    with pytest.raises(IncompatibleBaselineError, match=r"lpips\[vgg\] is not available here \(weights missing\)"):
        check_compatible(base, prov, {"lpips[vgg]": "weights missing"})


def test_baseline_file_round_trip_and_errors(tmp_path):
    base = make_baseline()
    path = write_baseline(base, tmp_path / "b.json")
    again = read_baseline(path)
    assert again.rows == base.rows and again.metrics == base.metrics
    data = json.loads(path.read_text())
    del data["dataset"]["content_hash"]
    with pytest.raises(BadInputError, match=r"dataset.content_hash is missing"):
        parse_baseline(data, "b.json")
    data = json.loads(path.read_text())
    data["rows"][1]["value"] = "high"
    with pytest.raises(BadInputError, match=r"rows\[1\].value has the wrong type"):
        parse_baseline(data, "b.json")
    with pytest.raises(BadInputError, match="not a cfbench baseline"):
        parse_baseline({"kind": "x"}, "b.json")
    with pytest.raises(BadInputError, match="not found"):
        read_baseline(tmp_path / "nope.json")


def test_reports():
    base = make_baseline()
    checks = compare(base, new_cells(23.0, 0.36), parse_tolerances(None))
    root = ET.fromstring(junit_xml(checks))
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "2"
    assert [f.get("message") for f in suite.iter("failure")][0].startswith("psnr dropped")
    md = markdown(checks, "new", "b.json", "old")
    assert "2 of 2 checks regressed" in md and "lpips\\[vgg\\]" not in md and "| ❌ **fail** |" in md
    assert rich_table(checks).row_count == 2
