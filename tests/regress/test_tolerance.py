"""The tolerance file: kinds, defaults, overrides, and errors that name the field."""

import pytest

from cfbench.errors import BadInputError
from cfbench.regress.tolerance import ABSOLUTE, BOOTSTRAP, RELATIVE, Tolerance, load_tolerances, parse_tolerances


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "tol.yaml"
    path.write_text(
        "default: {kind: relative, value: 0.01}\n"
        "metrics:\n  psnr: {kind: absolute, value: 0.1}\n  ssim: {kind: bootstrap}\n"
    )
    tols = load_tolerances(path)
    assert tols.default == Tolerance(RELATIVE, 0.01)
    assert tols.for_metric("psnr") == Tolerance(ABSOLUTE, 0.1)
    assert tols.for_metric("ssim") == Tolerance(BOOTSTRAP)
    assert tols.for_metric("lpips[vgg]") == Tolerance(RELATIVE, 0.01)
    assert load_tolerances(None).default.kind == BOOTSTRAP
    assert parse_tolerances({}).default.kind == BOOTSTRAP


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"default": {"kind": "percent", "value": 1}}, "default.kind"),
        ({"default": {"kind": "absolute"}}, "default.value"),
        ({"metrics": {"psnr": {"kind": "absolute", "value": "abc"}}}, "metrics.psnr.value"),
        ({"metrics": {"psnr": {"kind": "relative", "value": -0.1}}}, "metrics.psnr.value"),
        ({"metrics": {"ssim": {"kind": "bootstrap", "value": 1}}}, "metrics.ssim.value"),
        ({"metrics": {"ssim": {"kind": "absolute", "value": 1, "margin": 2}}}, "metrics.ssim.margin"),
        ({"metrics": {"ssim": 0.1}}, "metrics.ssim"),
        ({"metrics": [1, 2]}, "metrics"),
        ({"defaults": {"kind": "bootstrap"}}, "defaults"),
    ],
)
def test_errors_name_the_field(data, field):
    with pytest.raises(BadInputError, match=rf"tol.yaml: {field.replace('[', '[[]')}\b"):
        parse_tolerances(data, "tol.yaml")


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: [unclosed\n")
    with pytest.raises(BadInputError, match="not valid YAML"):
        load_tolerances(bad)
    with pytest.raises(BadInputError, match="unreadable"):
        load_tolerances(tmp_path / "missing.yaml")
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(BadInputError, match="must be a YAML mapping"):
        load_tolerances(bad)


def test_unknown_metric_is_named():
    tols = parse_tolerances({"metrics": {"psnrr": {"kind": "absolute", "value": 1}}}, "tol.yaml")
    with pytest.raises(BadInputError, match=r"tol.yaml: metrics.psnrr is not a metric of the baseline"):
        tols.check_metrics(["psnr", "ssim"], "tol.yaml")
