"""Our own CI gate: the bundled codeformer_tiny against the committed baseline on the first demo face.

Re-create the baseline (after an intended change of the model or the metrics) with
    cfbench baseline --checkpoint codeformer_tiny --dataset demo --limit 1 --w 0.5 --severity 2 \
        --metrics psnr,ssim --device cpu --out tests/data/regress/codeformer_tiny_demo.json
"""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.regress.helpers import run_cli

DATA = Path(__file__).resolve().parents[1] / "data" / "regress"


@pytest.mark.slow
def test_bundled_checkpoint_passes_the_committed_baseline(tmp_path):
    junit = tmp_path / "junit.xml"
    res = run_cli(
        ["regress", "--baseline", DATA / "codeformer_tiny_demo.json", "--checkpoint", "codeformer_tiny"]
        + ["--tolerances", DATA / "tolerances.yaml", "--junit", junit, "--report-md", tmp_path / "r.md"]
    )
    assert res.code == 0, res.error or res.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")
