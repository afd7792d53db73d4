"""`cfbench eval` end to end on real faces with the bundled small checkpoint: values, resume after a kill, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from cfbench.cli import main
from cfbench.data import get_dataset, with_severity
from cfbench.errors import BadInputError
from cfbench.eval.config import load_sweep_config
from cfbench.eval.runner import FidelityWeightSweep, quantize
from cfbench.eval.store.schema import NON_METRIC_COLUMNS
from cfbench.metrics.psnr_ssim import PSNR
from cfbench.restoration import load_restorer, restore_batch
from tests.eval.sweeps import face_folder, sweep_config


@pytest.fixture
def three_faces(tmp_path):
    """A folder dataset with 3 of the real GT faces."""
    return face_folder(tmp_path, 3)


@pytest.mark.slow
def test_results_equal_a_direct_computation_and_the_table_their_means(three_faces, tmp_path):
    cfg = sweep_config(three_faces, tmp_path / "run", limit=2)
    result = FidelityWeightSweep(cfg, log=lambda _: None).run()
    rows = pd.read_parquet(result.run_dir / "results.parquet")
    assert len(rows) == 2 * 2 and set(rows["w"]) == {0.0, 1.0}
    assert set(rows.columns) == {*NON_METRIC_COLUMNS, "psnr", "ssim"}
    data = with_severity(get_dataset(cfg.dataset), "2", seed=cfg.seed)
    net = load_restorer("codeformer_tiny", "cpu")
    psnr = PSNR()
    for i in range(2):
        sample = data.load(i)
        for w in (0.0, 1.0):
            with torch.inference_mode():
                out = quantize(restore_batch(net, sample.lq[None], w))
            want = float(psnr(out, sample.gt[None])[0])
            got = rows[(rows.image_id == sample.id) & (rows.w == w)]["psnr"].item()
            assert abs(got - want) < 2e-3, (sample.id, w, got, want)  # batch composition changes float rounding
    groups = pd.read_parquet(result.run_dir / "groups.parquet")
    for w, grp in rows.groupby("w"):
        assert groups[groups.w == w]["psnr"].item() == pytest.approx(grp["psnr"].mean(), rel=1e-12)
    table = (result.run_dir / "table.md").read_text()
    assert "psnr" in table and "ssim" in table
    codes = np.load(result.run_dir / "codes.npz")
    assert codes["codes"].shape[-1] == 256
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["provenance"]["checkpoints"]["codeformer_tiny"]["sha256"]


def cli_args(root):
    """`cfbench eval` on the folder dataset at severity 2, w 0 and 1, one face per stored part."""
    return [
        "eval",
        "--dataset",
        f"folder:{root}",
        "--w",
        "0,1",
        "--severity",
        "2",
        "--checkpoint",
        "codeformer_tiny",
        "--metrics",
        "psnr,ssim",
        "--device",
        "cpu",
        "--part-size",
        "1",
    ]


def _run_cli(args, env):
    code = "import sys; from cfbench.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_results(three_faces, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = cli_args(three_faces)
    killed = tmp_path / "killed"
    proc = _run_cli([*args, "--run-dir", str(killed)], env)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((killed / "parts").glob("*.npz"))) < 1:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.parquet").exists()
    done_before = len(list((killed / "parts").glob("*.npz")))
    assert 1 <= done_before < 3
    resumed = _run_cli([*args, "--run-dir", str(killed)], env)
    assert resumed.wait(timeout=300) == 0, resumed.communicate()[1].decode()[-2000:]
    whole = _run_cli([*args, "--run-dir", str(tmp_path / "whole"), "--json"], env)
    stdout, stderr = whole.communicate(timeout=300)
    assert whole.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout)  # stdout holds only the JSON summary; progress and tables go to stderr
    assert [g["w"] for g in summary["groups"]] == [0.0, 1.0] and all(g["n_images"] == 3 for g in summary["groups"])
    a = pd.read_parquet(killed / "results.parquet").drop(columns=["model_ms_per_face"])
    b = pd.read_parquet(tmp_path / "whole" / "results.parquet").drop(columns=["model_ms_per_face"])
    assert len(a) == 3 * 2 and not a.duplicated(["image_id", "w"]).any()
    pd.testing.assert_frame_equal(a, b)


def test_a_run_dir_with_another_config_is_refused(three_faces, tmp_path):
    run = tmp_path / "run"
    FidelityWeightSweep(sweep_config(three_faces, run, limit=1, w="0"), log=lambda _: None).run()
    with pytest.raises(BadInputError, match=r'another config \(w: "0" -> "1"\)'):
        FidelityWeightSweep(sweep_config(three_faces, run, limit=1, w="1"), log=lambda _: None).run()
    FidelityWeightSweep(sweep_config(three_faces, run, limit=1, w="0", batch_size=1), log=lambda _: None).run()


@pytest.mark.slow
def test_store_nn_codes_stores_the_nearest_codes_of_lq_and_gt_and_is_recorded(three_faces, tmp_path):
    cfg = sweep_config(three_faces, tmp_path / "run", limit=1, w="0", metrics="psnr", store_nn_codes=True)
    FidelityWeightSweep(cfg, log=lambda _: None).run()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["store_nn_codes"] is True
    assert manifest["outputs"]["codes"]["code_sets"] == ["hq_codes", "hq_nn_codes", "nn_codes"]
    z = np.load(tmp_path / "run" / "codes.npz")
    sample = with_severity(get_dataset(cfg.dataset), "2", seed=cfg.seed).load(0)
    net = load_restorer("codeformer_tiny", "cpu")
    with torch.inference_mode():
        lq = net.encode(sample.lq[None] * 2 - 1)
        hq = net.encode(sample.gt[None] * 2 - 1)
        want = {
            "codes": lq.indices,
            "nn_codes": net.quantize.nearest(lq.lq_feat),
            "hq_codes": hq.indices,
            "hq_nn_codes": net.quantize.nearest(hq.lq_feat),
        }
    for name, idx in want.items():
        np.testing.assert_array_equal(z[name][0], idx[0].numpy(), err_msg=name)
    # off by default, and then left out of the stored config, so earlier run dirs still resume
    assert "store_nn_codes" not in sweep_config(three_faces, tmp_path / "r2").to_dict()
    with pytest.raises(BadInputError, match="lookup 'transformer'"):
        FidelityWeightSweep(sweep_config(three_faces, tmp_path / "r3", store_nn_codes=True, lookup="nearest"))


def test_cli_errors_are_one_line_with_exit_2(three_faces, tmp_path, capsys):
    assert main(["eval", "--dataset", f"folder:{tmp_path / 'nowhere'}", "--run-dir", str(tmp_path / "r")]) == 2
    assert main(["eval", "--dataset", f"folder:{three_faces}", "--w", "0:1:0", "--run-dir", str(tmp_path / "r")]) == 2
    assert main(["eval", "--dataset", "celeba-tset", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "celeba-test" in err[2]  # the close match is suggested


def test_unreadable_face_names_the_file(three_faces, tmp_path):
    (three_faces / "gt" / "broken.png").write_bytes(b"not a png")
    cfg = sweep_config(three_faces, tmp_path / "run")
    with pytest.raises(BadInputError, match="broken.png"):
        FidelityWeightSweep(cfg, log=lambda _: None).run()


def test_sweep_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("dataset: demo\nw: 0.5\nseverity: 2\ncheckpoints: codeformer_tiny\n")
    cfg = load_sweep_config(path, batch_size=3)
    assert (cfg.w, cfg.severity, cfg.checkpoints, cfg.batch_size) == ("0.5", "2", ("codeformer_tiny",), 3)
    path.write_text("datset: demo\n")
    with pytest.raises(BadInputError, match="unknown key"):
        load_sweep_config(path)
    with pytest.raises(BadInputError, match="sweep config not found: nope.*--protocol NAME"):
        load_sweep_config("nope")


@pytest.mark.slow
def test_two_gloo_processes_give_the_same_results_as_one(three_faces, tmp_path):
    args = [*cli_args(three_faces), "--limit", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533"]
    two = subprocess.run(
        [*torchrun, "-m", "cfbench", *args, "--run-dir", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    one = _run_cli([*args, "--run-dir", str(tmp_path / "one")], env)
    assert one.wait(timeout=600) == 0
    a = pd.read_parquet(tmp_path / "two" / "results.parquet").drop(columns=["model_ms_per_face"])
    b = pd.read_parquet(tmp_path / "one" / "results.parquet").drop(columns=["model_ms_per_face"])
    pd.testing.assert_frame_equal(a, b)
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["provenance"]["world_size"] == 2


def test_gt_head_pose_is_computed_once_per_dataset(three_faces, tmp_path, monkeypatch):
    pytest.importorskip("dlib")
    first = FidelityWeightSweep(sweep_config(three_faces, tmp_path / "a", limit=1, w="0"), log=lambda _: None)
    if first.poses.backend is None:
        pytest.skip(first.poses.note)
    first.run()
    rows = pd.read_parquet(tmp_path / "a" / "results.parquet")
    assert np.isfinite(rows[["gt_yaw", "gt_pitch", "gt_roll"]].to_numpy()).all()
    second = FidelityWeightSweep(sweep_config(three_faces, tmp_path / "b", limit=1, w="1"), log=lambda _: None)

    def no_analysis(*_a, **_k):
        raise AssertionError("the GT pose should come from the cache")

    monkeypatch.setattr(second.poses.backend, "analyze", no_analysis)  # the backend is shared: restore it after
    second.run()
    again = pd.read_parquet(tmp_path / "b" / "results.parquet")
    assert again["gt_yaw"].tolist() == rows["gt_yaw"].tolist()


def test_gt_landmarks_are_computed_once_per_dataset(three_faces, tmp_path, monkeypatch):
    """A second sweep over the same GT faces (other w, other run dir) reads the GT landmarks of lmd[dlib] from the
    cache: the dlib backend analyses no image (the GT pose is cached too)."""
    pytest.importorskip("dlib")
    first = FidelityWeightSweep(
        sweep_config(three_faces, tmp_path / "a", limit=1, w="0", metrics="lmd[dlib]"), log=lambda _: None
    )
    if "lmd[dlib]" in first.skipped:
        pytest.skip(first.skipped["lmd[dlib]"])
    first.run()
    assert first.metrics[0].metric.gt_memo.computed == 1
    logs = []
    second = FidelityWeightSweep(
        sweep_config(three_faces, tmp_path / "b", limit=1, w="0", metrics="lmd[dlib]"), log=logs.append
    )

    def no_analysis(*_a, **_k):
        raise AssertionError("the GT landmarks should come from the cache")

    monkeypatch.setattr(second.metrics[0].metric.backend, "analyze", no_analysis)  # shared backend: restored after
    second.run()
    assert "lmd[dlib]: gt_landmarks from the cache" in logs
    a = pd.read_parquet(tmp_path / "a" / "results.parquet")["lmd[dlib]"]
    b = pd.read_parquet(tmp_path / "b" / "results.parquet")["lmd[dlib]"]
    assert np.isfinite(a).all() and a.tolist() == b.tolist()
