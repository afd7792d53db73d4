"""The gate's w-sensitivity check (`cfbench.regress.wsens`): floor, share of the baseline, parsing."""

from __future__ import annotations

import pytest

from cfbench.errors import BadInputError
from cfbench.regress.wsens import FLOOR, RATIO, WSensitivity, parse_w_sensitivity, w_sensitivity_check


def sens(value: float) -> WSensitivity:
    return WSensitivity(0.0, 1.0, "2", 4, value)


def test_a_w_dependent_output_passes():
    check = w_sensitivity_check("m", sens(10.0), sens(11.0))
    assert check.passed and check.metric == "w_sensitivity" and check.baseline == 11.0 and check.new == 10.0


def test_an_output_that_ignores_w_fails_with_a_message():
    check = w_sensitivity_check("m.onnx", sens(0.0), sens(11.0))
    assert not check.passed
    assert "m.onnx's output does not depend on w" in check.message and "baseline's 11" in check.message


@pytest.mark.parametrize(("new", "passed"), [(11.0 * RATIO - 0.01, False), (11.0 * RATIO + 0.01, True)])
def test_far_less_than_the_baseline_fails(new, passed):
    assert w_sensitivity_check("m", sens(new), sens(11.0)).passed is passed


def test_without_a_baseline_value_only_the_floor_applies():
    assert w_sensitivity_check("m", sens(FLOOR + 0.01), None).passed
    assert not w_sensitivity_check("m", sens(FLOOR - 0.01), None).passed


def test_not_measured_means_no_check():
    assert w_sensitivity_check("m", None, sens(11.0)) is None


def test_parse_round_trip_and_errors():
    assert parse_w_sensitivity(sens(3.5).to_dict(), "b.json") == sens(3.5)
    assert parse_w_sensitivity(None, "b.json") is None
    with pytest.raises(BadInputError, match="b.json: w_sensitivity must be an object with w_low"):
        parse_w_sensitivity({"w_low": 0}, "b.json")
    with pytest.raises(BadInputError, match="non-numeric"):
        parse_w_sensitivity({**sens(1).to_dict(), "mean_abs_diff": "x"}, "b.json")


def test_measured_with_the_default_auto_batch_size(tmp_path):
    """The measurement decodes at the sweep's resolved batch size: `--batch-size auto` (the default) is text in the
    config and broke it."""
    from cfbench.eval.config import load_sweep_config
    from cfbench.eval.runner import FidelityWeightSweep
    from cfbench.regress.wsens import measure_w_sensitivity

    config = load_sweep_config(
        None,
        dataset="demo",
        limit=1,
        w="0,1",
        severity="2",
        checkpoints=("codeformer_tiny",),
        metrics="psnr",
        device="cpu",
        run_dir=str(tmp_path / "run"),
    )
    assert config.batch_size == "auto"
    measured = measure_w_sensitivity(FidelityWeightSweep(config, log=lambda _: None))
    assert (measured.w_low, measured.w_high, measured.faces) == (0.0, 1.0, 1)
    assert measured.mean_abs_diff > FLOOR  # the bundled model's output depends on w
