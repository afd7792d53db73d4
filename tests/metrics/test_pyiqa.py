"""`pyiqa:NAME` metrics: facts from pyiqa's table, values equal to pyiqa's own, weights refused offline."""

import importlib.metadata
import json
import math
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from cfbench import weights
from cfbench.cli import main
from cfbench.errors import BadInputError, HashMismatchError, MissingWeightsError
from cfbench.eval.provenance import metric_record
from cfbench.metrics import get_metric, pyiqa_table
from cfbench.metrics.folders import BuiltMetric
from cfbench.metrics.pyiqa_metric import serve_or_refuse, weights_status
from cfbench.metrics.pyiqa_table import parse_range, pyiqa_configs

pytest.importorskip("pyiqa")  # the table is read without importing it; the values need it

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "metrics"
WEIGHT_FREE_SAMPLE = ("fsim", "vif", "gmsd", "ms_ssim", "nlpd", "piqe")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("0, 1", (0.0, 1.0)),
        ("~0, ~100", (-math.inf, math.inf)),
        ("0, ~", (0.0, math.inf)),
        (None, (-math.inf, math.inf)),
    ],
)
def test_score_range_keeps_only_exact_bounds(text, want):
    assert parse_range(text) == want


def test_facts_come_from_pyiqa_table():
    configs = pyiqa_configs()
    piqe, fsim, musiq = get_metric("pyiqa:piqe"), get_metric("pyiqa:fsim"), get_metric("musiq")
    assert configs["piqe"]["lower_better"] is True and not piqe.higher_is_better and not piqe.needs_gt
    assert piqe.value_range == (0.0, 100.0) and piqe.backend == "pyiqa"
    assert fsim.higher_is_better and fsim.needs_gt and fsim.value_range == (0.0, 1.0)
    assert musiq.name == "pyiqa:musiq" and musiq.higher_is_better and musiq.weights == ("pyiqa_musiq_koniq",)
    assert get_metric("dists").needs_gt and not get_metric("dists").higher_is_better


def test_without_pyiqa_a_pyiqa_name_is_bad_input_with_the_install_hint(monkeypatch):
    pyiqa_configs.cache_clear()
    monkeypatch.setattr(pyiqa_table.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(BadInputError, match=r"pyiqa:vsi: .*pip install 'cfbench\[pyiqa\]'"):
            get_metric("pyiqa:vsi")
    finally:
        monkeypatch.undo()
        pyiqa_configs.cache_clear()


def test_unknown_and_per_folder_names_are_refused_with_a_hint():
    with pytest.raises(KeyError, match="did you mean pyiqa:musiq"):
        get_metric("pyiqa:musiqq")
    with pytest.raises(ValueError, match="scores a folder"):
        get_metric("pyiqa:fid")


def test_musiq_offline_exits_2_fast_naming_file_url_and_path(tmp_path, capsys, monkeypatch):
    start = time.perf_counter()
    code = main(["metrics", str(FIXTURES / "lq"), "--metrics", "pyiqa:musiq", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and time.perf_counter() - start < 10
    hub = Path(torch.hub.get_dir()) / "pyiqa" / "musiq_koniq_ckpt-e95806b9.pth"  # where pyiqa looks
    assert str(hub) in err and "huggingface.co/chaofengc/IQA-PyTorch-Weights" in err
    assert "Traceback" not in err and "cfbench weights import pyiqa_musiq_koniq" in err


def test_metrics_list_shows_pyiqa_metrics_and_weights_status(capsys):
    assert main(["metrics", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["pyiqa:piqe"]["weights_status"] == "-" and rows["pyiqa:piqe"]["better"] == "lower"
    assert rows["pyiqa:musiq"]["weights_status"] == "missing: pyiqa_musiq_koniq"
    assert rows["pyiqa:brisque"]["weights_status"] == "checked when built"
    assert "pyiqa:fid" not in rows


@pytest.fixture(scope="module")
def pair():
    gen = torch.Generator().manual_seed(0)
    gt = torch.nn.functional.interpolate(torch.rand(2, 3, 48, 48, generator=gen), size=176, mode="bilinear")
    return (gt + 0.08 * torch.randn(gt.shape, generator=gen)).clamp(0, 1), gt


@pytest.mark.slow  # `import pyiqa` alone takes ~6 s on 2 cores
def test_values_equal_pyiqa_create_metric(pair):
    import pyiqa

    pred, gt = pair
    for name in WEIGHT_FREE_SAMPLE:
        ours = get_metric(f"pyiqa:{name}").build("cpu")
        theirs = pyiqa.create_metric(name, device=torch.device("cpu"))
        want = theirs(pred, gt) if theirs.metric_mode == "FR" else theirs(pred)
        got = ours(pred, gt if ours.spec.needs_gt else None)
        assert got.dtype == torch.float64 and got.shape == (2,)
        torch.testing.assert_close(got, want.reshape(2).double(), rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_a_download_is_refused_with_the_path_pyiqa_looks_in():
    with pytest.raises(MissingWeightsError) as info:
        get_metric("pyiqa:brisque").build("cpu")
    message = str(info.value)
    path = Path(torch.hub.get_dir()) / "pyiqa" / "brisque_svm_weights.pth"
    assert "\n" not in message and str(path) in message and "brisque_svm_weights.pth" in message
    assert not path.exists()


@pytest.mark.slow
def test_metrics_command_writes_pyiqa_columns(tmp_path):
    out = tmp_path / "scores.csv"
    names = ",".join(f"pyiqa:{n}" for n in ("gmsd", "piqe"))
    args = ["metrics", str(FIXTURES / "lq"), str(FIXTURES / "gt"), "--metrics", names, "--out", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "pyiqa:gmsd", "pyiqa:piqe"] and table.notna().all().all()


@pytest.mark.slow
def test_eval_stores_a_pyiqa_column_with_its_direction_and_version(tmp_path):
    from tests.eval.sweeps import face_folder

    root = face_folder(tmp_path, 2)
    run = tmp_path / "run"
    args = ["eval", "--dataset", f"folder:{root}", "--w", "0.5", "--severity", "2"]
    args += ["--checkpoint", "codeformer_tiny", "--metrics", "psnr,pyiqa:piqe", "--device", "cpu"]
    assert main([*args, "--run-dir", str(run)]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["directions"]["pyiqa:piqe"] is False
    record = manifest["provenance"]["metrics"]["pyiqa:piqe"]
    assert record["package"]["pyiqa"] and record["backend"] == "pyiqa"
    assert pd.read_parquet(run / "results.parquet")["pyiqa:piqe"].between(0, 100).all()


def test_manifest_record_names_the_pyiqa_version():
    spec = get_metric("pyiqa:gmsd")
    record = metric_record(BuiltMetric(spec, None), {})
    assert record["package"] == {"pyiqa": importlib.metadata.version("pyiqa")} and record["weights_sha256"] == {}


def test_weights_import_puts_pyiqa_files_where_pyiqa_looks(tmp_path):
    source = tmp_path / "download.pt"
    source.write_bytes(b"not really MANIQA")
    dest = weights.import_file("pyiqa_maniqa_koniq", source)
    assert dest == Path(torch.hub.get_dir()) / "pyiqa" / "ckpt_koniq10k.pt" and dest.read_bytes() == source.read_bytes()
    assert weights_status(get_metric("maniqa")) == "present"
    with pytest.raises(HashMismatchError, match="e95806b9"):  # the hash prefix in pyiqa's file name is checked
        weights.import_file("pyiqa_musiq_koniq", source)


def test_a_registered_file_in_our_cache_is_served_where_a_library_asks_for_it(tmp_path):
    source = tmp_path / "arcface_resnet18.pth"
    source.write_bytes(b"registered, no pinned hash")
    weights.import_file("arcface_resnet18", source)  # into $CFBENCH_HOME/weights
    wanted = tmp_path / "hub" / "checkpoints" / "arcface_resnet18.pth"  # where a library would download it
    serve_or_refuse("https://example.invalid/arcface_resnet18.pth", wanted)
    assert wanted.read_bytes() == source.read_bytes()
    with pytest.raises(MissingWeightsError, match="example.invalid/other.pth and put it at .*other.pth"):
        serve_or_refuse("https://example.invalid/other.pth", tmp_path / "other.pth")
