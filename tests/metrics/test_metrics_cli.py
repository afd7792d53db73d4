"""`cfbench metrics PRED [GT]` and `cfbench metrics list` through the CLI entry point."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cfbench.cli import main
from cfbench.imageio import read_image
from cfbench.metrics.psnr_ssim import PSNR

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "metrics"


def test_list_prints_every_metric_with_its_direction(capsys):
    assert main(["metrics", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"psnr", "ssim", "psnr[y]", "lpips[vgg]", "lpips[alex]", "niqe", "fid"} <= set(rows)
    assert rows["psnr"]["better"] == "higher" and rows["niqe"]["better"] == "lower"
    assert rows["fid"]["kind"] == "distribution" and rows["lpips[vgg]"]["weights"] == ["vgg16", "lpips_vgg_lin"]


def test_folder_pair_writes_one_row_per_image_and_skips_metrics_without_weights(tmp_path, capsys):
    out = tmp_path / "scores.csv"
    args = ["metrics", str(FIXTURES / "lq"), str(FIXTURES / "gt"), "--metrics", "psnr,psnr[y],lpips", "--out", str(out)]
    assert main([*args, "--device", "cpu", "--json"]) == 2  # a named metric that cannot run fails the command
    err = capsys.readouterr().err
    assert "lpips[vgg]" in err and "vgg16-397923af.pth" in err and not out.exists()
    code = main([*args, "--device", "cpu", "--json", "--skip-missing"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "vgg16-397923af.pth" in summary["skipped"]["lpips[vgg]"]  # skipped, named, the others ran
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "psnr", "psnr[y]"]
    assert list(table["file"]) == sorted(p.name for p in (FIXTURES / "lq").glob("*.png"))
    name = table["file"][0]
    pred, gt = read_image(FIXTURES / "lq" / name)[None], read_image(FIXTURES / "gt" / name)[None]
    assert table["psnr"][0] == pytest.approx(float(PSNR()(pred, gt)[0]), abs=1e-9)
    assert summary["mean"]["psnr"] == pytest.approx(table["psnr"].mean())


def test_no_reference_only_without_gt(tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(FIXTURES / "lq" / "ffhq_00003.png", pred)
    assert main(["metrics", str(pred), "--json", "--device", "cpu"]) == 0
    means = json.loads(capsys.readouterr().out)["mean"]
    assert list(means) == ["niqe"]
    assert main(["metrics", str(pred), "--metrics", "psnr"]) == 2
    assert "full-reference" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "psnrr"], "did you mean 'psnr'"),
        (["--metrics", "psnr", "--device", "tpu"], "unknown device"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, capsys):
    assert main(["metrics", str(FIXTURES / "lq"), str(FIXTURES / "gt"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_unmatched_files_exit_2(tmp_path, capsys):
    gt = tmp_path / "gt"
    gt.mkdir()
    shutil.copy(FIXTURES / "gt" / "ffhq_00003.png", gt)
    assert main(["metrics", str(FIXTURES / "lq"), str(gt), "--metrics", "psnr"]) == 2
    assert "have no GT" in capsys.readouterr().err
