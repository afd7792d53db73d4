"""Data parallelism (gloo, 2 CPU processes), the worker-seeded loader, and the batch shares behind both."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from cfbench.train.loop import Trainer
from tests.train.helpers import TINY_YAML, tiny

QUIET = {"echo": lambda s: None}
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grads(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in trainer.net.named_parameters() if p.grad is not None}


def _one_step(trainer: Trainer) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    # compare gradients, not weights: Adam's first step is about lr * sign(g), which magnifies float noise
    trainer.opt_g.step = lambda: None
    logs = trainer.train_step()
    return _grads(trainer), logs


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    trainer = Trainer(tiny("stage2", batch=2), f"{out}/rank{rank}", **QUIET)
    grads, logs = _one_step(trainer)
    torch.save({"grads": grads, "logs": logs}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_batch_shares_of_the_processes_concatenate_to_the_whole_batch(tmp_path):
    trainer = Trainer(tiny("stage2"), tmp_path, **QUIET)
    whole = trainer.batches.batch(5, 4, "large")
    shares = [trainer.batches.batch(5, 4, "large", rank, 2) for rank in range(2)]
    for key in ("hq", "lq", "key"):
        assert torch.equal(torch.cat([s[key] for s in shares]), whole[key]), key
    assert not torch.equal(shares[0]["lq"], shares[1]["lq"])


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step")
def test_gloo_two_process_step_equals_the_single_process_step_on_the_combined_batch(tmp_path):
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single_grads, single_logs = _one_step(Trainer(tiny("stage2", batch=2), tmp_path / "single", **QUIET))
    assert ranks[0]["grads"].keys() == single_grads.keys() and len(single_grads) > 0
    for k, g in single_grads.items():
        assert torch.equal(ranks[0]["grads"][k], ranks[1]["grads"][k]), k  # the processes stay identical
        assert torch.allclose(ranks[0]["grads"][k], g, rtol=1e-4, atol=1e-6), k
    for k, v in single_logs.items():  # the logged values are the means over the whole batch
        assert ranks[0]["logs"][k] == pytest.approx(v, rel=1e-5), k
    assert not (tmp_path / "rank1" / "log.csv").exists()  # nothing written by a step; only rank 0 ever writes


def test_batch_not_divisible_by_the_processes_is_refused(tmp_path, monkeypatch):
    from cfbench.errors import BadInputError
    from cfbench.train import distributed

    monkeypatch.setattr(distributed, "from_env", lambda device: distributed.Group(0, 2))
    with pytest.raises(BadInputError, match=r"'batch' \(3\) must be a multiple of processes x run.accum \(2\)"):
        Trainer(tiny("stage2", batch=3), tmp_path, **QUIET)


def test_loader_with_workers_yields_the_batches_of_the_loop(tmp_path):
    trainer = Trainer(tiny("stage3", batch=2, run={"workers": 2}), tmp_path, **QUIET)
    loaded = list(trainer.loader(3, 6))
    assert len(loaded) == 4
    for it, batch in zip(range(3, 7), loaded, strict=True):
        expected = trainer.make_batch(it)
        assert batch.keys() == expected.keys()
        assert all(torch.equal(batch[k], expected[k]) for k in batch), it


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_cfbench_train_under_torchrun_writes_once_from_rank_0(tmp_path):
    cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "cfbench", "train", "stage1"]
    cmd += ["--config", str(TINY_YAML), "--max-steps", "2", "--out", str(tmp_path / "ddp"), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["steps"] == 2  # one summary: rank 0's
    log = (tmp_path / "ddp" / "log.csv").read_text().splitlines()
    assert len(log) == 3
    single = Trainer(tiny("stage1", batch=2), tmp_path / "single", **QUIET)
    single.train(max_steps=2)
    loss = float(log[2].split(",")[2])
    assert loss == pytest.approx(single.rows[1]["loss"], rel=1e-3)
