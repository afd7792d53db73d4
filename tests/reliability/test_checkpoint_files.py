"""Checkpoint and training-state files that are not what they claim (reliability probe OP14, TR1, TR2): one line
naming the file and what is wrong, never a traceback, never code from the file run."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from cfbench.errors import CheckpointError
from cfbench.models.checkpoint import infer_arch
from cfbench.train.checkpointing import load_state
from tests.conftest import reference_file


def test_a_codeformer_file_missing_position_emb_is_still_a_codeformer():
    """OP14: the architecture was guessed from `position_emb` alone, so an official file without it (and two more
    keys) was reported as a VQGAN with 183 unexpected keys instead of a CodeFormer with 3 missing ones."""
    keys = json.loads(reference_file("manifest_codeformer.json").read_text())["keys"]
    state = {k: torch.zeros(0) for k in keys if k not in ("position_emb", "feat_emb.weight", "idx_pred_layer.1.weight")}
    assert infer_arch(state) == "codeformer"
    vqgan = json.loads(reference_file("manifest_vqgan.json").read_text())["keys"]
    assert infer_arch({k: torch.zeros(0) for k in vqgan}) == "vqgan"


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_resume_from_a_state_that_needs_pickled_code_is_refused_without_running_it(tmp_path, monkeypatch):
    """TR1: a last.pt carrying pickled code gave an UnpicklingError traceback (nothing ran)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "last.pt"
    with open(path, "wb") as f:
        pickle.dump({"config": "{}", "evil": _RunsCode()}, f)
    with pytest.raises(CheckpointError) as err:
        load_state(path)
    msg = str(err.value)
    assert str(path) in msg and "fresh --out" in msg and "\n" not in msg
    assert not (tmp_path / "pwned").exists()


def test_resume_from_a_truncated_state_is_one_line(tmp_path):
    """TR2: a truncated last.pt gave a PytorchStreamReader traceback."""
    path = tmp_path / "last.pt"
    torch.save({"config": "{}", "weights": torch.zeros(4096)}, path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r"last\.pt is not a readable PyTorch checkpoint.*fresh --out"):
        load_state(path)


def test_resume_from_a_file_that_is_not_a_training_state(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"params_ema": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not a cfbench training state"):
        load_state(path)
