"""The sweep engine: precision, stage timings, workers ahead and behind, --batch-size auto, the CUDA OOM retry."""

import json
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from cfbench.errors import BadInputError
from cfbench.eval import pipeline, runner
from cfbench.eval.config import SweepConfig, load_sweep_config
from cfbench.eval.pipeline import (
    AUTO_WORKERS,
    CPU_BATCH,
    Ahead,
    Behind,
    halve_on_oom,
    largest_fitting,
    loader_threads,
    probe_batch_size,
)
from cfbench.eval.runner import FidelityWeightSweep
from cfbench.eval.timing import StageTimes, summary_line, timings_record
from cfbench.precision import autocast
from tests.eval.sweeps import sweep_config

DEMO_GT = Path(__file__).resolve().parents[2] / "cfbench" / "data" / "demo" / "gt"
STAGES = {"load", "degrade", "encode", "decode", "psnr", "ssim", "write", "total"}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """A folder dataset with 2 of the bundled demo faces."""
    root = tmp_path_factory.mktemp("faces")
    (root / "gt").mkdir()
    for p in sorted(DEMO_GT.glob("*.png"))[:2]:
        shutil.copy(p, root / "gt" / p.name)
    return root


def config(root, run_dir, **kw):
    return sweep_config(root, run_dir, **{"part_size": 1, **kw})


def results(run_dir) -> pd.DataFrame:
    return pd.read_parquet(Path(run_dir) / "results.parquet").drop(columns="model_ms_per_face")


@pytest.fixture(scope="module")
def serial_run(faces, tmp_path_factory):
    """The reference: 0 workers, batch size 2 (2 faces x 2 w), psnr and ssim."""
    run_dir = tmp_path_factory.mktemp("serial") / "run"
    FidelityWeightSweep(config(faces, run_dir), log=lambda _: None).run()
    return run_dir


def test_precision_and_workers_enter_the_config_as_the_hash_needs():
    assert "precision" not in SweepConfig().to_dict()  # fp32: the run dir names of earlier runs stay
    assert SweepConfig(precision="bf16").result_hash() != SweepConfig().result_hash()
    assert SweepConfig(workers=2).result_hash() == SweepConfig().result_hash()
    assert load_sweep_config(None, batch_size="auto").batch_size == "auto"
    assert load_sweep_config(None, batch_size="8").batch_size == 8
    with pytest.raises(BadInputError, match="precision 'fp64'.*fp32, bf16, fp16"):
        load_sweep_config(None, precision="fp64")
    with pytest.raises(BadInputError, match="--batch-size must be a positive integer or 'auto', got 'big'"):
        load_sweep_config(None, batch_size="big")
    assert SweepConfig().workers == "auto" and load_sweep_config(None, workers="0").workers == 0
    with pytest.raises(BadInputError, match="--workers must be a non-negative integer or 'auto', got '-1'"):
        load_sweep_config(None, workers="-1")


def test_auto_workers_are_loader_threads_on_a_gpu_and_none_on_the_cpu(monkeypatch):
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 16)
    assert loader_threads("auto", "cpu") == 0 and loader_threads("auto", "cuda:0") == AUTO_WORKERS
    assert loader_threads(3, "cpu") == 3 and loader_threads(0, "cuda") == 0
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 4)
    assert loader_threads("auto", "cuda") == 4


def test_fp16_autocast_is_allowed_on_the_cpu():
    conv = torch.nn.Conv2d(3, 4, 3)
    with torch.inference_mode(), autocast("cpu", "fp16"):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.float16
    with autocast("cpu", "fp32"):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.float32


def test_ahead_yields_in_item_order_whatever_finishes_first():
    def slow_first(i):
        time.sleep(0.02 if i % 3 == 0 else 0.0)
        return i, threading.current_thread().name

    ahead = Ahead(2)
    try:
        out = list(ahead.map(slow_first, range(10)))
    finally:
        ahead.close()
    assert [i for i, _ in out] == list(range(10))
    assert all(name.startswith("cfbench-load") for _, name in out)
    assert list(Ahead(0).map(lambda i: i * 2, range(4))) == [0, 2, 4, 6]


def test_behind_runs_in_order_and_raises_the_jobs_error():
    done = []
    behind = Behind(True, limit=2)
    for i in range(5):
        behind.submit(lambda i=i: (time.sleep(0.01 * (i % 2)), done.append(i)))
    behind.drain()
    assert done == [0, 1, 2, 3, 4]
    behind.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        behind.drain()
    behind.close()


def test_oom_halves_the_batch_and_keeps_what_worked():
    tried = []

    def step(batch):
        tried.append(batch)
        if batch > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return f"ran {batch}"

    logs = []
    assert halve_on_oom(step, 8, logs.append) == ("ran 2", 2)
    assert tried == [8, 4, 2] and "retrying with 4" in logs[0]
    with pytest.raises(torch.cuda.OutOfMemoryError):
        halve_on_oom(lambda b: step(b + 10), 2, logs.append)


def test_auto_batch_is_the_largest_power_of_two_that_fits_and_fixed_on_the_cpu():
    def fits(batch):
        if batch > 12:
            raise torch.cuda.OutOfMemoryError("too big")

    assert largest_fitting(fits) == 8
    assert largest_fitting(fits, limit=4) == 4
    assert probe_batch_size(lambda x: x, lambda s, b: s, "cpu") == CPU_BATCH


def test_timings_record_and_summary():
    times = StageTimes()
    with times("decode"):
        time.sleep(0.01)
    times.add("load", 0.001)
    times.add("total", 2.0)
    record = timings_record(times.seconds, work=10, peak_memory_mib=None)
    assert record["slowest_stage"] == "decode" and record["faces_x_w_per_second"] == 5.0
    assert summary_line(record).startswith("5.00 faces x w/s in 2.0 s; slowest stage: decode")


@pytest.mark.slow
def test_two_workers_give_the_same_results_row_for_row(faces, serial_run, tmp_path):
    result = FidelityWeightSweep(config(faces, tmp_path / "run", workers=2), log=lambda _: None).run()
    pd.testing.assert_frame_equal(results(result.run_dir), results(serial_run))
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert STAGES <= set(manifest["timings"]["seconds"]) and manifest["timings"]["peak_memory_mib"] is None
    assert manifest["config"]["workers"] == 2 and result.timings["faces_x_w_per_second"] > 0
    assert manifest["timings"]["workers"] == 2 and manifest["timings"]["batch_size"] == 2


@pytest.mark.slow
def test_an_injected_cuda_oom_halves_the_batch_without_losing_or_repeating_rows(
    faces, serial_run, tmp_path, monkeypatch
):
    load = runner.load_sweep_restorer
    raised = []

    class Fragile:
        """The tiny model, raising CUDA's out-of-memory error for decodes of more than 2 faces."""

        def __init__(self, net):
            self.net, self.label = net, net.label

        def decode(self, state, ws, batch_size):
            if batch_size > 2:
                raised.append(batch_size)
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
            return self.net.decode(state, ws, batch_size)

        def __getattr__(self, name):
            return getattr(self.net, name)

    monkeypatch.setattr(runner, "load_sweep_restorer", lambda *a, **k: Fragile(load(*a, **k)))
    logs = []
    cfg = config(faces, tmp_path / "run", batch_size=8, part_size=2)
    sweep = FidelityWeightSweep(cfg, log=logs.append)
    sweep.run()
    assert raised == [8, 4] and sweep.batch_size == 2
    assert any("retrying with 2" in line for line in logs)
    pd.testing.assert_frame_equal(results(tmp_path / "run"), results(serial_run))


@pytest.mark.slow
def test_bf16_table_means_stay_close_to_fp32(faces, serial_run, tmp_path):
    result = FidelityWeightSweep(config(faces, tmp_path / "run", precision="bf16"), log=lambda _: None).run()
    fp32 = pd.read_parquet(serial_run / "groups.parquet").set_index("w")
    bf16 = pd.read_parquet(result.run_dir / "groups.parquet").set_index("w")
    psnr, ssim = (fp32["psnr"] - bf16["psnr"]).abs().max(), (fp32["ssim"] - bf16["ssim"]).abs().max()
    print(f"bf16 vs fp32 table means on 2 demo faces x w {{0, 1}}: |dPSNR| <= {psnr:.4f} dB, |dSSIM| <= {ssim:.5f}")
    assert psnr < 0.3 and ssim < 0.01
    assert psnr > 0  # bf16 did run: the restored faces differ
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["config"]["precision"] == "bf16"


def test_on_cuda_the_default_set_takes_the_torch_backends_whose_weights_are_present(monkeypatch):
    from cfbench import weights
    from cfbench.eval.requirements import device_defaults
    from cfbench.metrics import METRICS

    specs = [METRICS.get(n) for n in ("psnr", "identity_cos[dlib]", "lmd[dlib]")]
    assert device_defaults(specs, "cpu") == specs
    monkeypatch.setattr(weights, "locate", lambda name: None if name == "fan_wflw" else Path("/present"))
    names = [s.name for s in device_defaults(specs, "cuda")]
    assert names == ["psnr", "identity_cos[arcface]", "lmd[dlib]"]  # no FAN weights: dlib stays


def test_a_gpu_run_with_dlib_metrics_says_they_are_the_bottleneck():
    from cfbench.eval.pipeline import bottleneck_note, cpu_bound

    assert cpu_bound("dlib", "cuda") and not cpu_bound("dlib", "cpu") and not cpu_bound("arcface", "cuda")
    assert "lmd[dlib] run on the CPU behind the GPU and bound" in bottleneck_note(["lmd[dlib]"], "cuda:0")
    assert bottleneck_note(["lmd[dlib]"], "cpu") is None and bottleneck_note([], "cuda") is None
