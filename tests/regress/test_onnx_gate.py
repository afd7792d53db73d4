"""The issue-21 workflow end to end: export the bundled codeformer_tiny to ONNX, gate it against the PyTorch
model's baseline (passes within tests/data/regress/export_tolerances.yaml), and gate an export whose w input does
nothing (fails on w_sensitivity)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cfbench.export.onnx import ExportGraph, export_onnx, write_graph
from cfbench.restoration import load_restorer
from tests.regress.helpers import run_cli

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[1] / "data" / "regress"


class _WIgnored(ExportGraph):
    """The sczhou/CodeFormer#252 failure: fusion frozen off, w kept as an input that changes nothing."""

    def forward(self, image, w):
        state = self.net.encode(image)
        out = self.net.decode(state, w.reshape(-1), adain=True, fuse=False).clamp(-1, 1)
        return out + 0 * w.sum(), state.indices


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CFBENCH_HOME", str(tmp_path_factory.mktemp("home")))
        tmp = tmp_path_factory.mktemp("gate")
        exported = export_onnx("codeformer_tiny", tmp / "t.onnx", check_faces=1).path
        write_graph(_WIgnored(load_restorer("codeformer_tiny")), 512, tmp / "w_ignored.onnx", 17, {})
        base = tmp / "B.json"
        args = ["baseline", "-c", "codeformer_tiny", "--dataset", "demo", "--limit", "1", "--w", "0,1"]
        res = run_cli([*args, "--severity", "2", "--metrics", "psnr,ssim", "--device", "cpu", "--out", base])
        assert res.code == 0, res.error or res.output
        yield tmp, exported, base


def _regress(base: Path, checkpoint: Path):
    return run_cli(["regress", "-b", base, "-c", checkpoint, "--tolerances", DATA / "export_tolerances.yaml"])


def test_the_baseline_records_w_sensitivity(gate):
    _, _, base = gate
    sens = json.loads(base.read_text())["w_sensitivity"]
    assert (sens["w_low"], sens["w_high"], sens["faces"]) == (0.0, 1.0, 1) and sens["mean_abs_diff"] > 2


def test_the_export_passes_the_pytorch_baseline(gate):
    _, exported, base = gate
    res = _regress(base, exported)
    assert res.code == 0, res.error or res.output
    assert "no regression: 5 checks passed" in res.output


def test_an_export_that_ignores_w_fails_the_gate(gate):
    tmp, _, base = gate
    res = _regress(base, tmp / "w_ignored.onnx")
    assert res.code == 1
    assert "w_ignored's output does not depend on w" in res.output and "w_sensitivity" in res.error
