"""Config and options (issue 20, point 7; reliability probe CF1-CF5, OP2, OP7, OP10, OP19): a malformed sweep YAML or
a value of the wrong type is a one-line error (exit 2) naming the key; booleans are only true/false; `--metrics ''`
is an error; w values must be finite, in [0, 1] and distinct as the floats the store keys rows by."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfbench.cli import main
from cfbench.errors import BadInputError
from cfbench.eval.config import load_sweep_config
from cfbench.eval.spec import parse_w_spec

FACES = Path(__file__).resolve().parents[1] / "data" / "metrics" / "lq"


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("w: [\n", r"sweep\.yaml is not valid YAML"),  # CF1
        ("checkpoints: 5\n", r"sweep\.yaml: checkpoints must be a weights name or file"),  # CF2
        ("checkpoints: [codeformer, 7]\n", r"sweep\.yaml: checkpoints must be"),
        ("device: [1]\n", r"sweep\.yaml: device must be text, got list"),  # CF3
        ("adain: 'no'\n", r"sweep\.yaml: adain must be true or false, got 'no'"),  # CF4
        ("adain: maybe\n", r"sweep\.yaml: adain must be true or false"),
        ("save_images: 1\n", r"sweep\.yaml: save_images must be true or false"),
        ("limit: true\n", r"sweep\.yaml: limit must be a non-negative integer"),  # CF5
        ("part_size: 2.5\n", r"sweep\.yaml: part_size must be a non-negative integer"),
        ("batch_size: 0\n", r"sweep\.yaml: batch_size must be a positive integer or .auto., got 0"),
        ("seed: -5\n", r"sweep\.yaml: seed must be a non-negative integer, got -5"),
        ("dataset: {a: 1}\n", r"sweep\.yaml: dataset must be text"),
        ("w: .nan\n", r"bad --w 'nan'"),
        ("w: [0, 0.5, 0.5]\n", r"w = 0\.5 is given twice"),
        ("- w\n", r"must be a YAML mapping"),
        ("colour: 1\n", r"unknown key"),
    ],
)
def test_sweep_yaml_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(BadInputError, match=message) as err:
        load_sweep_config(_yaml(tmp_path, text))
    assert "\n" not in str(err.value)


def test_yaml_lists_and_numbers_are_read_as_typed(tmp_path):
    cfg = load_sweep_config(_yaml(tmp_path, "w: [0, 0.5, 1]\nseverity: 2\nmetrics: [psnr, ssim]\nadain: false\n"))
    assert (cfg.w, cfg.severity, cfg.metrics, cfg.adain) == ("0,0.5,1", "2", "psnr,ssim", False)


def test_a_bad_flag_is_named_as_the_flag(tmp_path):
    """OP10: `--seed -5` blamed the bundled YAML; the error names the flag."""
    with pytest.raises(BadInputError, match=r"^--seed must be a non-negative integer, got -5$"):
        load_sweep_config(seed=-5)
    with pytest.raises(BadInputError, match=r"^--checkpoint names 'codeformer_tiny' twice"):  # OP19
        load_sweep_config(checkpoints=("codeformer_tiny", "codeformer_tiny"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0,1e-400", r"w = 0 and w = 1E-400 are the same float64 \(0\.0\)"),  # OP2: failed late, after a part
        ("0.1,0.10000000000000001", r"are the same float64 \(0\.1\)"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("-0.1", "outside"),
        ("1.5", "outside"),
        ("0,,1", "empty value"),
    ],
)
def test_w_values_are_checked_up_front(spec, message):
    with pytest.raises(BadInputError, match=message):
        parse_w_spec(spec)
    with pytest.raises(BadInputError, match=message):
        load_sweep_config(w=spec)  # before any run dir or model


def test_empty_metrics_is_an_error_in_eval_and_metrics(tmp_path, capsys):
    """OP7: `--metrics ''` silently ran the default set."""
    run = tmp_path / "run"
    assert main(["eval", "--metrics", "", "--limit", "1", "--w", "0.5", "--run-dir", str(run)]) == 2
    assert "--metrics '' names no metric" in capsys.readouterr().err and not run.exists()
    assert main(["metrics", str(FACES), "--metrics", " , "]) == 2
    assert "names no metric" in capsys.readouterr().err


def test_malformed_yaml_exits_2_through_the_cli(tmp_path, capsys):
    assert main(["eval", "--config", str(_yaml(tmp_path, "adain: 'no'\n")), "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("adain must be true or false, got 'no'") and "\n" not in err
