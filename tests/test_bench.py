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
