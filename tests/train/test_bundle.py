"""The bundled demo checkpoint: its export from a three-stage run, and the committed file itself."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from cfbench.models import load_checkpoint
from cfbench.state_dict import load_state_dict_file
from cfbench.train.bundle import CARD_KEY, EVAL_PRESETS, chroma_correlation, export, half_rounded, image_scores
from cfbench.train.config import STAGE_NAMES, _merge
from cfbench.train.loop import Trainer
from cfbench.weights import weights_path
from tests.train.helpers import TINY_YAML

HELD_OUT = ["celebahq_015248.png", "ffhq_00003.png"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two iterations of each tiny stage (held-out faces excluded), each stage starting from the previous one."""
    from cfbench.train.config import config_from_dict

    root = tmp_path_factory.mktemp("bundle")
    raw = _merge(yaml.safe_load(TINY_YAML.read_text()), {"batch": 1, "data": {"exclude": HELD_OUT}})
    raw["stage2"]["init"] = raw["stage2"]["vqgan"] = raw["stage3"]["vqgan"] = str(root / "stage1/stage1.safetensors")
    raw["stage3"]["init"] = str(root / "stage2/stage2.safetensors")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    for stage in STAGE_NAMES:
        Trainer(config_from_dict(raw, stage), root / stage, echo=lambda s: None).train(max_steps=2)
    return root, config


def test_export_writes_float16_weights_card_and_log(tiny_run, tmp_path):
    root, config = tiny_run
    out = tmp_path / "tiny.safetensors"
    card = export(root, config, out)
    state, meta = load_state_dict_file(out)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    # the file loads as exactly the weights that were evaluated: the stage-III EMA weights rounded to float16
    expected = half_rounded(load_checkpoint(root / "stage3" / "stage3.safetensors")).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in load_checkpoint(out).state_dict().items())
    on_disk = yaml.safe_load((tmp_path / "tiny.card.yaml").read_text())
    assert on_disk == card and {k: v for k, v in card.items() if k != "file_mb"} == json.loads(meta[CARD_KEY])
    assert card["data"]["heldout"] == HELD_OUT and card["data"]["train_images"] == 6
    assert [s["steps"] for s in card["stages"].values()] == [2, 2, 2]
    assert card["stages"]["stage2"]["frozen"] == ["quantize", "generator"]
    assert all(s["perceptual"] == "none" for s in card["stages"].values())
    for preset in EVAL_PRESETS:
        row = card["heldout_eval"][preset]
        assert set(row) == {"lq", "w=0", "w=0.5", "w=1"} and all(0 < v["psnr"] < 60 for v in row.values())
        assert all(set(v) == {"psnr", "ssim", "chroma_corr"} for v in row.values())  # 64 px: below NIQE's minimum
        assert all(-1 <= v["chroma_corr"] <= 1 for v in row.values())
    assert set(card["heldout_eval"]["stage1_reconstruction_of_hq"]) == {"psnr", "ssim", "chroma_corr"}
    log = (tmp_path / "tiny.train_log.csv").read_text().splitlines()
    assert log[0].startswith("stage,step,lr,loss") and len(log) == 1 + 6
    assert [line.split(",")[0] for line in log[1:]] == ["stage1"] * 2 + ["stage2"] * 2 + ["stage3"] * 2


def test_card_metrics_remeasures_the_exported_card_and_checks_the_targets(tiny_run, tmp_path):
    from cfbench.train.card_metrics import measure
    from cfbench.train.card_targets import targets

    root, config = tiny_run
    out = tmp_path / "tiny.safetensors"
    card = export(root, config, out)
    got = measure(out, config)
    assert got["adain"] is True
    assert {p: got[p] for p in EVAL_PRESETS} == {p: card["heldout_eval"][p] for p in EVAL_PRESETS}
    assert got["targets"] == card["verdicts"]["targets"] and set(got["targets"]) == set(EVAL_PRESETS)
    assert got["w_tradeoff"] == card["verdicts"]["w_tradeoff"]
    row = {"lq": {"psnr": 24.5, "chroma_corr": 0.94}, "w=1": {"psnr": 24.5, "chroma_corr": 0.899}}
    assert targets({"p": row}) == {"p": {"psnr_w1_ge_lq": True, "chroma_w1_ge_target": False}}
    row["w=1"] = {"psnr": 24.49, "chroma_corr": 0.9}
    assert targets({"p": row}) == {"p": {"psnr_w1_ge_lq": False, "chroma_w1_ge_target": True}}


def test_heldout_numbers_of_a_512_model_carry_the_tradeoff_metrics():
    from cfbench.data.demo import demo_dir
    from cfbench.models import build_model
    from cfbench.train.bundle import heldout_numbers

    torch.manual_seed(0)
    got = heldout_numbers(build_model("codeformer_tiny"), [demo_dir() / "gt" / "celebahq_015248.png"], seed=0)
    assert set(got) == set(EVAL_PRESETS)
    for row in got.values():
        assert set(row) == {"lq", "w=0", "w=0.5", "w=1"}
        keys = {"psnr", "ssim", "chroma_corr", "identity_cos[dlib]", "lmd[dlib]", "niqe"}
        assert all(set(v) == keys for v in row.values())
        # dlib finds the face in the LQ; an untrained model's outputs have none (NaN), and their NIQE is a number
        assert 0 < row["lq"]["identity_cos[dlib]"] <= 1 and row["lq"]["lmd[dlib]"] >= 0
        assert all(math.isfinite(v["niqe"]) for v in row.values())


def test_w_tradeoff_reports_where_each_metric_is_best_and_whether_that_is_codeformers_shape():
    from cfbench.train.card_targets import w_tradeoff

    def row(ident: list[float], lmd: list[float], niqe: list[float]) -> dict:
        cols = list(zip(ident, lmd, niqe, strict=True))
        ws = {
            f"w={w:g}": {"identity_cos[dlib]": i, "lmd[dlib]": m, "niqe": n}
            for w, (i, m, n) in zip((0, 0.5, 1), cols, strict=True)
        }
        return {"lq": {"identity_cos[dlib]": 0.99, "lmd[dlib]": 0.1, "niqe": 9.0}, **ws}

    codeformer = row([0.90, 0.93, 0.95], [3.0, 2.5, 2.0], [4.0, 4.5, 5.0])
    reversed_quality = row([0.90, 0.93, 0.95], [3.0, 2.5, 2.0], [5.0, 4.5, 4.0])
    got = w_tradeoff({"a": codeformer, "b": reversed_quality})
    assert got["a"] == {"best_w": {"identity_cos[dlib]": 1.0, "lmd[dlib]": 1.0, "niqe": 0.0}, "codeformer_shape": True}
    assert got["b"]["best_w"]["niqe"] == 1.0 and got["b"]["codeformer_shape"] is False
    # the LQ row is not a w and never the best one
    assert w_tradeoff({"c": {"lq": {"niqe": 0.1}, "w=0": {"niqe": 3.0}}})["c"]["best_w"] == {"niqe": 0.0}
    assert w_tradeoff({"d": {"lq": {"psnr": 20.0}, "w=1": {"psnr": 21.0}}})["d"] == {
        "best_w": {},
        "codeformer_shape": False,
    }


def test_export_names_the_missing_stage(tiny_run, tmp_path):
    from cfbench.errors import BadInputError

    _, config = tiny_run
    with pytest.raises(BadInputError, match="stage3.safetensors is missing"):
        export(tmp_path, config, tmp_path / "x.safetensors")


def test_bundled_checkpoint_is_the_card_it_ships_with():
    from cfbench.data.demo import demo_lq_paths
    from cfbench.imageio import read_image
    from cfbench.restoration import restore_batch

    path = weights_path("codeformer_tiny")
    assert path.stat().st_size <= 10_000_000
    card = yaml.safe_load(path.with_name("codeformer_tiny.card.yaml").read_text())
    _, meta = load_state_dict_file(path)
    assert {k: v for k, v in card.items() if k != "file_mb"} == json.loads(meta[CARD_KEY])
    assert abs(card["file_mb"] - path.stat().st_size / 1e6) < 0.01
    assert all(s["perceptual"] == "none" for s in card["stages"].values())
    assert [s["steps"] for s in card["stages"].values()] == [1400, 250, 450]
    # the demo's GT faces are held out (the default eval scores faces the model never saw); the side faces (aflw_*)
    # come from the shared side folder, which the model never trained on
    demo_gt = {p.stem for p in path.parents[1].joinpath("cfbench", "data", "demo", "gt").glob("*.png")}
    assert {s for s in demo_gt if not s.startswith("aflw_")} <= {n.rsplit(".", 1)[0] for n in card["data"]["heldout"]}
    log = path.with_name("codeformer_tiny.train_log.csv").read_text().splitlines()
    assert len(log) == 1 + sum(s["steps"] for s in card["stages"].values())
    net = load_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    lq = read_image(demo_lq_paths()[0])[None]
    with torch.inference_mode():
        out = restore_batch(net, lq, 0.5, adain=True)
    assert out.shape == (1, 3, 512, 512) and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_chroma_correlation_and_image_scores_by_hand():
    rng = torch.Generator().manual_seed(0)
    gt = torch.rand(1, 3, 16, 16, generator=rng)
    assert chroma_correlation(gt, gt).item() == pytest.approx(1.0)
    # one tint everywhere, whatever the brightness: uncorrelated with the GT's colours (exactly 0 for a grey image)
    grey = gt.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    assert chroma_correlation(grey, gt).item() == 0
    inverted = 1 - gt  # chroma negated
    assert chroma_correlation(inverted, gt).item() == pytest.approx(-1.0)
    scores = image_scores(gt, gt)
    assert scores["chroma_corr"] == 1.0 and scores["ssim"] == 1.0
    dimmed = gt * 0.5  # chroma scaled: still perfectly correlated, PSNR by hand
    mse = (dimmed.mul(255).round().div(255) - gt).pow(2).mean().item()  # image_scores rounds the image to 8 bits
    assert image_scores(dimmed, gt)["psnr"] == pytest.approx(10 * math.log10(1 / mse), abs=0.01)
    assert image_scores(dimmed, gt)["chroma_corr"] == pytest.approx(1.0, abs=1e-3)
