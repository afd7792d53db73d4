"""Benchmark helpers: FLOP counts agree with the reference notes (codeformer.md section 7), the CLI runs."""

import json

import pytest

from cfbench import bench
from cfbench.cli import main
from cfbench.models import build_model


@pytest.mark.slow
def test_official_flops_match_the_reference_notes():
    flops = bench.flops_by_part(build_model("codeformer").eval())
    assert flops["encoder"] == pytest.approx(212.4, abs=0.1)
    assert flops["encoder"] + flops["transformer"] == pytest.approx(223.6, abs=0.1)
    # the official code turns indices into features with a one-hot matmul (256 x 1024 x 256 x 2 = 0.13 GFLOP);
    # we index the codebook instead, so the full passes count ~0.17 GFLOP less
    assert flops["encoder"] + flops["transformer"] + flops["generator"] == pytest.approx(591.7 - 0.17, abs=0.05)
    assert flops["full_forward_w>0"] == pytest.approx(809.8 - 0.17, abs=0.05)


@pytest.mark.slow
def test_bench_cli_json(capsys):
    rc = main(
        [
            "bench",
            "model",
            "--variant",
            "codeformer_mini",
            "--device",
            "cpu",
            "--batch",
            "1",
            "--repeats",
            "1",
            "--no-sweep",
            "--json",
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    (timing,) = report["timings"]
    assert timing["batch"] == 1 and timing["encode_ms"] > 0 and timing["decode_ms"] > 0
    assert report["sweep"] is None


@pytest.mark.parametrize("args,message", [(["--batch", "0"], "positive integers"), (["--precision", "fp8"], "fp8")])
def test_bench_bad_options(capsys, args, message):
    assert main(["bench", "model", "--device", "cpu", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_bench_eval_runs_both_pipelines_on_the_same_work(tmp_path):
    from cfbench.eval.config import load_sweep_config
    from cfbench.eval.naive import compare_with_naive

    cfg = load_sweep_config(
        None, limit=1, w="0.5", severity="2", checkpoints=("codeformer_tiny",), metrics="psnr", device="cpu"
    )
    out = compare_with_naive(cfg, "cpu", workdir=tmp_path)
    naive, ours = out["naive"], out["ours"]
    (image_id, w), values = next(iter(naive["values"].items()))
    assert len(naive["values"]) == len(ours["rows"]) == 1
    assert values["psnr"] == pytest.approx(float(ours["rows"]["psnr"].iloc[0]), abs=1e-3)  # PNG round trip = quantize
    assert out["ratio"] == pytest.approx(naive["seconds"] / ours["seconds"])
    assert ours["wall_over_model"] > 1 and naive["parts"]["model"] > 0
    assert not list(tmp_path.iterdir())  # the temporary run and PNG folders are gone


def test_bench_eval_takes_one_severity(capsys):
    assert main(["bench", "eval", "--severity", "0,2", "--device", "cpu"]) == 2
    assert "one severity" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_check_dry_run_writes_its_json_and_table(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    out = tmp_path / "check.json"
    # 2 faces in parts of 1 and a time box of 0 s: the run stops after the first part and extrapolates
    args = ["--dry-run", "--faces", "2", "--sweep-seconds", "0", "--out", str(out)]
    subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True)
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["device"] == "cpu" and "skipped" in report["golden"]
    assert [(t["precision"], t["batch"]) for t in report["model"]] == [("fp32", 1), ("bf16", 1)]
    sweep = report["sweep"]
    assert (sweep["faces"], sweep["faces_done"], sweep["ws"]) == (2, 1, 2)
    assert sweep["extrapolated"] and not sweep["finished"]
    assert sweep["full_sweep_seconds"] > sweep["measured_seconds"] - 1e-6
    stages = {"load", "degrade", "encode", "decode", "lpips[vgg]", "fid[gt]", "lmd[fan]", "write", "total"}
    assert stages <= set(sweep["timings"]["seconds"])
    assert out.with_suffix(".md").read_text().startswith("# cfbench GPU check")
