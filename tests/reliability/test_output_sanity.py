"""Outputs are sanity-checked (issue 20, point 6; reliability probe OP18): a restorer that produces NaN/Inf or
constant images is an error (exit 2) naming the checkpoint in every command: the API, `restore` (aligned faces and
whole photos share `restore_batch`), `eval` and `baseline`/`regress` (the sweep's `CodeFormerRestorer`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cfbench.cli import main
from cfbench.errors import CheckpointError
from cfbench.eval.restorer import CodeFormerRestorer
from cfbench.models.checkpoint import load_checkpoint, save_checkpoint
from cfbench.restoration import check_restored, resolve_checkpoint, restore, restore_batch
from tests.regress.helpers import face_folder

FACES = Path(__file__).resolve().parents[1] / "data" / "metrics" / "gt"


def _fill(model: torch.nn.Module, value: float) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory) -> Path:
    """The bundled codeformer_tiny with every weight set to NaN (a valid safetensors file)."""
    path, variant = resolve_checkpoint("codeformer_tiny")
    model = _fill(load_checkpoint(path, name=variant), float("nan"))
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "nan_weights.safetensors")


def test_check_restored_names_the_checkpoint():
    good = torch.rand(2, 3, 8, 8)
    assert check_restored(good, "ok") is good
    nan = good.clone()
    nan[1, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"checkpoint x\.pth restored 1 of 2 face\(s\) to NaN or infinite"):
        check_restored(nan, "x.pth")
    with pytest.raises(CheckpointError, match=r"restored 1 of 2 face\(s\) to a constant image \(every value 0\)"):
        check_restored(torch.cat([good[:1], torch.zeros(1, 3, 8, 8)]), "x.pth")


def test_nan_and_constant_models_fail_in_the_api_and_the_sweep_restorer(tiny_codeformer, tiny_batch):
    images = (tiny_batch[:2] + 1) / 2
    _fill(tiny_codeformer, float("nan"))
    with pytest.raises(CheckpointError, match=r"checkpoint tiny restored 2 of 2 face\(s\) to NaN"):
        restore_batch(tiny_codeformer, images, 0.5, checkpoint="tiny")
    with pytest.raises(CheckpointError, match="NaN"):
        restore(images, 0.5, model=tiny_codeformer, device="cpu")
    sweep_restorer = CodeFormerRestorer(tiny_codeformer, "tiny")
    with pytest.raises(CheckpointError, match="checkpoint tiny restored 4 of 4"):
        sweep_restorer.decode(sweep_restorer.encode(images), [0.0, 1.0], batch_size=4)
    _fill(tiny_codeformer, 0.0)  # every layer zero: the decoder writes one flat colour
    with pytest.raises(CheckpointError, match="constant image"):
        restore_batch(tiny_codeformer, images, 0.5, checkpoint="tiny")


@pytest.mark.slow
def test_restore_command_refuses_a_nan_model_and_writes_nothing(nan_checkpoint, tmp_path, capsys):
    """OP18: `restore` exited 0 and wrote an all-black image."""
    face = sorted(FACES.glob("*.png"))[0]
    out = tmp_path / "out"
    code = main(["restore", str(face), "--checkpoint", str(nan_checkpoint), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and f"checkpoint {nan_checkpoint} restored 1 of 1 face(s) to NaN" in err
    assert not any(out.glob("*.png"))


@pytest.mark.slow
def test_eval_refuses_a_nan_model(nan_checkpoint, tmp_path, capsys):
    """`eval` (and `baseline`/`regress`, which run the same sweep) name the checkpoint before any metric."""
    faces = face_folder(tmp_path / "faces", n=1)
    grid = ["--dataset", f"folder:{faces}", "--w", "0.5", "--severity", "2", "--metrics", "psnr", "--device", "cpu"]
    code = main(["eval", *grid, "--checkpoint", str(nan_checkpoint), "--run-dir", str(tmp_path / "run")])
    assert code == 2 and "checkpoint nan_weights restored 1 of 1 face(s) to NaN" in capsys.readouterr().err
