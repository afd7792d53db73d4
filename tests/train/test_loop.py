"""The loop: bit-exact resume on CPU, checkpoints that load like official ones, corrupt images, the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from cfbench.cli.train import register
from cfbench.errors import BadInputError
from cfbench.models import load_checkpoint
from cfbench.state_dict import load_state_dict_file
from cfbench.train.dataset import load_faces
from cfbench.train.loop import Trainer, amp_dtype
from tests.train.helpers import TINY_YAML, tiny

QUIET = {"echo": lambda s: None}


def _states(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"g.{k}": v for k, v in trainer.net.state_dict().items()}
    out.update({f"ema.{k}": v for k, v in trainer.ema.state_dict().items()})
    out.update({f"d.{k}": v for k, v in trainer.disc.state_dict().items()} if trainer.disc is not None else {})
    return out


def test_resume_is_bit_exact_on_cpu(tmp_path):
    # stage 1 with the GAN from iteration 2 and dead-code restarts every 3: G, D (BatchNorm stats), EMA, Adam,
    # schedulers and the codebook usage counts all go through resume
    cfg = dict(
        losses={"gan": {"weight": 0.8, "start": 2}},
        scheduler={"type": "cosine", "period": 4, "eta_min": 1e-5},
        codebook_restart=3,
    )
    straight = Trainer(tiny("stage1", **cfg), tmp_path / "a", **QUIET)
    straight.train(max_steps=4)
    first = Trainer(tiny("stage1", **cfg), tmp_path / "b", **QUIET)
    first.train(max_steps=2)
    resumed = Trainer(tiny("stage1", **cfg), tmp_path / "b", **QUIET)
    resumed.train(max_steps=4, resume=True)
    a, b = _states(straight), _states(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert [r["loss"] for r in straight.rows] == [r["loss"] for r in resumed.rows]
    assert [r.get("restarted") for r in resumed.rows] == [None, None, resumed.rows[2]["restarted"], None]
    assert resumed.rows[2]["restarted"] > 0  # a 64-code book meets 16 latents per step: some codes are unused
    # the exported weights are the EMA (params_ema) and load with load_checkpoint
    model = load_checkpoint(tmp_path / "b" / "stage1.safetensors")
    assert all(torch.equal(v, resumed.ema.state_dict()[k]) for k, v in model.state_dict().items())
    state, _ = load_state_dict_file(tmp_path / "b" / "ckpt" / "last.pt")  # BasicSR layout: params_ema first
    assert all(torch.equal(v, resumed.ema.state_dict()[k]) for k, v in state.items())
    card = yaml.safe_load((tmp_path / "b" / "stage1.card.yaml").read_text())
    assert card["steps"] == 4 and card["perceptual"] == "none" and "perceptual" not in card["losses_used"]
    assert card["losses_used"]["gan"]["weight"] == 0.8 and "loss" in card["final_losses"]
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert len(log) == 5 and log[0].startswith("step,lr,loss")


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step")
def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    # stage 2 has no batch statistics: two micro-batches of 1 give the gradient of the batch of 2
    # (compared on the gradients: Adam's first step is about lr * sign(g), which magnifies float noise)
    grads = []
    for accum in (1, 2):
        trainer = Trainer(tiny("stage2", batch=2, run={"accum": accum}), tmp_path / str(accum), **QUIET)
        trainer.opt_g.step = lambda: None
        trainer.train_step()
        grads.append({k: p.grad for k, p in trainer.net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for k, g in grads[0].items():
        assert torch.allclose(g, grads[1][k], rtol=1e-4, atol=1e-6), k


def test_amp_off_on_cpu_by_default():
    assert amp_dtype("auto", torch.device("cpu")) is None
    assert amp_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert amp_dtype("off", torch.device("cuda")) is None


def test_corrupt_image_is_skipped_with_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"ok{i}.png"), rng.integers(0, 256, (80, 80, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="broken.png"):
        faces, skipped = load_faces(tmp_path, 64)
    assert len(faces) == 2 and skipped == ["broken.png"] and faces.images.shape == (2, 64, 64, 3)


def test_cli_train_smoke_and_resume(tmp_path):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", "stage2", "--config", str(TINY_YAML), "--out", str(out), "--json"]
    res = runner.invoke(app, [*args, "--max-steps", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["steps"] == 1 and (out / "stage2.safetensors").is_file() and (out / "stage2.card.yaml").is_file()
    res = runner.invoke(app, [*args, "--max-steps", "2", "--resume"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["steps"] == 2
    res = runner.invoke(app, ["train", "--help"])
    assert res.exit_code == 0 and "stage1" in res.output and "stage3" in res.output


def test_exclude_holds_faces_out_and_rejects_unknown_names(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    faces, _ = load_faces(tmp_path, 64, exclude=["f1.png"])
    assert faces.names == ("f0.png", "f2.png")
    with pytest.raises(BadInputError, match="data.exclude.*typo.png"):
        load_faces(tmp_path, 64, exclude=["typo.png"])


def test_stage1_crops_are_patches_of_the_faces(tmp_path):
    trainer = Trainer(tiny("stage1", data={"crop": 32}), tmp_path, **QUIET)
    batch = trainer.batches.batch(1, 3, None)
    assert batch["hq"].shape == (3, 3, 32, 32) and (batch["key"] == -1).all()
    full = torch.from_numpy(trainer.faces.images).permute(0, 3, 1, 2).float() / 127.5 - 1
    for patch in batch["hq"]:
        windows = full.unfold(2, 32, 1).unfold(3, 32, 1)  # (N, 3, H-31, W-31, 32, 32)
        mirrored = windows.flip(-1)
        hit = [(w - patch[:, None, None]).abs().amax(dim=(1, 4, 5)).min() < 1e-6 for w in (windows, mirrored)]
        assert any(hit)
    trainer.train(max_steps=1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"stage": "stage2", "data": {"crop": 32}}, "data.crop"),
        ({"stage": "stage1", "data": {"crop": 30}}, "data.crop"),
    ],
)
def test_crop_errors_name_the_field(overrides, field, tmp_path):
    stage = overrides.pop("stage")
    with pytest.raises(BadInputError, match=field):
        Trainer(tiny(stage, **overrides), tmp_path, **QUIET)


def test_code_targets_are_cached_per_face_and_flip(tmp_path):
    trainer = Trainer(tiny("stage2"), tmp_path, **QUIET)
    batch = trainer.batches.batch(1, 2, "large")
    first = trainer.code_targets(batch["hq"], batch["key"])
    assert torch.equal(first, trainer.fixed.targets(batch["hq"]))
    assert set(trainer._codes) == set(batch["key"].tolist())
    assert torch.equal(trainer.code_targets(batch["hq"], batch["key"]), first)


@pytest.mark.parametrize(("stage", "key"), [("stage1", "pixel"), ("stage2", "ce"), ("stage3", "pixel")])
def test_loss_falls_over_30_steps_on_a_fixed_batch(tmp_path, stage, key):
    section = {"losses": {"gan": 0}, "lr_g": 1e-3}  # in the stage's section, which tiny.yaml's would override
    if stage == "stage3":
        section["w_schedule"] = {"w1_until": 100}  # the image-loss path throughout
    trainer = Trainer(tiny(stage, batch=2, **{stage: section}), tmp_path, **QUIET)
    batch = trainer.make_batch(1)
    values = [trainer.train_step(batch)[key] for _ in range(30)]
    first, last = np.mean(values[:3]), np.mean(values[-3:])
    assert last < 0.8 * first, (stage, values)


def test_hf_dataset_as_training_data_skips_a_corrupt_row_and_honours_exclude(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="the optional `datasets` package (cfbench[data]) is absent")
    from PIL import Image

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rng = np.random.default_rng(0)
    cells = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]
    cells.append({"bytes": b"not an image", "path": None})
    features = datasets.Features({"face": datasets.Image(), "id": datasets.Value("string")})
    data = {"face": cells, "id": ["a", "b", "c", "broken"]}
    datasets.Dataset.from_dict(data, features=features).save_to_disk(tmp_path / "hf")
    spec = f"hf:{tmp_path / 'hf'}"
    with pytest.warns(UserWarning, match="skipping training image broken"):
        faces, skipped = load_faces(spec, 64, exclude=["b"])
    assert faces.names == ("a", "c") and skipped == ["broken"]
    # the dataset's GT (decoded and brought to 512 like every eval face), then down to the model's size
    from cfbench.data.registry import get_dataset

    gt = get_dataset(spec).load("c").gt.permute(1, 2, 0).mul(255).round().byte().numpy()
    assert np.array_equal(faces.images[1], cv2.resize(gt, (64, 64), interpolation=cv2.INTER_AREA))
    with pytest.raises(BadInputError, match="'data.exclude' names 'typo'"):
        load_faces(spec, 64, exclude=["typo"])
    trainer = Trainer(tiny("stage1", data={"folder": spec, "exclude": ["b"]}), tmp_path / "run", **QUIET)
    assert trainer.faces.names == ("a", "c") and np.isfinite(trainer.train_step()["loss"])
