"""`cfbench baseline` / `cfbench regress` end to end on one real face with the bundled small checkpoint.

One baseline (module-scoped) serves every test; each sweep is 1 face x 1 w x 1 severity with psnr and ssim."""

import json
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import torch

from cfbench.models.checkpoint import load_checkpoint, save_checkpoint
from cfbench.regress.baseline import read_baseline
from cfbench.regress.gate import run_regress
from cfbench.regress.tolerance import parse_tolerances
from cfbench.restoration import resolve_checkpoint
from tests.regress.helpers import face_folder, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CFBENCH_HOME", str(tmp_path_factory.mktemp("home")))
        yield


@pytest.fixture(scope="module")
def baseline(home, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baseline")
    faces = face_folder(tmp / "faces", n=1)
    out = tmp / "baseline.json"
    args = ["baseline", "-c", "codeformer_tiny", "--dataset", f"folder:{faces}", "--w", "0.5", "--severity", "2"]
    res = run_cli([*args, "--metrics", "psnr,ssim", "--device", "cpu", "--out", out])
    assert res.code == 0, res.error or res.output
    return out


@pytest.fixture(scope="module")
def same_run(baseline, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("same")
    res = run_cli(
        ["regress", "-b", baseline, "-c", "codeformer_tiny", "--run-dir", tmp / "run"]
        + ["--report-md", tmp / "r.md", "--junit", tmp / "j.xml"]
    )
    return res, tmp


@pytest.fixture(scope="module")
def perturbed(home, tmp_path_factory):
    """codeformer_tiny with noise on the generator's last conv (the decoder's RGB output layer)."""
    path, variant = resolve_checkpoint("codeformer_tiny")
    model = load_checkpoint(path, name=variant)
    last = model.generator.blocks[-1]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        last.weight.add_(torch.randn(last.weight.shape, generator=g) * last.weight.std() * 2)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "noisy.safetensors")


def test_baseline_file(baseline):
    data = json.loads(baseline.read_text())
    assert data["kind"] == "cfbench-baseline"
    assert [(r["severity"], r["w"], r["metric"]) for r in data["rows"]] == [("2", 0.5, "psnr"), ("2", 0.5, "ssim")]
    assert len(data["dataset"]["content_hash"]) == 64 and data["seeds"] == {"degradation": 0, "bootstrap": 0}
    assert data["metrics"]["psnr"]["backend"] and data["metrics"]["psnr"]["higher_is_better"] is True
    assert data["config"]["metrics"] == "psnr,ssim" and "run_dir" not in data["config"]
    assert data["checkpoint"]["label"] == "codeformer_tiny" and len(data["checkpoint"]["sha256"]) == 64


def test_same_checkpoint_passes(same_run):
    res, tmp = same_run
    assert res.code == 0, res.error
    assert "no regression" in res.output
    assert "all 2 checks passed" in (tmp / "r.md").read_text()
    suite = ET.parse(tmp / "j.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")


def test_two_runs_give_identical_numbers(baseline, same_run, tmp_path):
    _, tmp = same_run
    base = read_baseline(baseline)
    result = run_regress(base, "codeformer_tiny", parse_tolerances(None), log=lambda _: None, run_dir=tmp_path / "r")
    assert [c.value for c in result.cells] == [r.value for r in base.rows]
    cols = ["image_id", "w", "psnr", "ssim"]
    first = pd.read_parquet(tmp / "run" / "results.parquet")[cols]
    second = pd.read_parquet(tmp_path / "r" / "results.parquet")[cols]
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_perturbed_decoder_fails_and_names_the_metrics(baseline, perturbed, tmp_path):
    junit, md = tmp_path / "j.xml", tmp_path / "r.md"
    res = run_cli(["regress", "-b", baseline, "-c", perturbed, "--junit", junit, "--report-md", md])
    assert res.code == 1, res.error or res.output
    assert "2 of 2 checks regressed (metrics: psnr, ssim)" in res.error
    assert "FAIL" in res.output and "psnr dropped" in res.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")
    assert sorted(c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None) == ["psnr", "ssim"]
    assert "❌ 2 of 2 checks regressed" in md.read_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["dataset"].update(content_hash="0" * 64), "dataset content hash differs"),
        (lambda d: d["metrics"]["psnr"]["weights_sha256"].update(inception="1" * 64), "inception sha256 differs"),
        (lambda d: d["metrics"]["ssim"].update(backend="skimage"), "ssim backend differs"),
    ],
)
def test_incompatible_baseline_exits_2(baseline, tmp_path, edit, message):
    data = json.loads(baseline.read_text())
    edit(data)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    res = run_cli(["regress", "-b", edited, "-c", "codeformer_tiny"])
    assert res.code == 2
    assert message in res.error and "\n" not in res.error


def test_tolerance_errors_exit_2_and_name_the_field(baseline, tmp_path):
    tol = tmp_path / "tol.yaml"
    tol.write_text("metrics:\n  psnr: {kind: absolute, value: lots}\n")
    res = run_cli(["regress", "-b", baseline, "-c", "codeformer_tiny", "--tolerances", tol])
    assert res.code == 2 and "metrics.psnr.value" in res.error
    tol.write_text("metrics:\n  lpips: {kind: absolute, value: 1}\n")
    res = run_cli(["regress", "-b", baseline, "-c", "codeformer_tiny", "--tolerances", tol])
    assert res.code == 2 and "metrics.lpips is not a metric of the baseline" in res.error
