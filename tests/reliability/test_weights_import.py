"""Weights import checks the file is what it says (issue 20, point 8; reliability probe WT1): a registered name
without a pinned sha256 is loaded strictly as what it must be before its hash is recorded, and `weights verify`
fails on a file that does not load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cfbench import weights
from cfbench.cli import main
from cfbench.errors import CheckpointError
from cfbench.weights_check import check_content, content_check, model_variant_check, unpinned

VGG_CHANNELS = (64, 128, 256, 512, 512)


def test_every_unpinned_name_has_a_content_check():
    names = [n for n in weights.WEIGHTS.names() if unpinned(n)]
    assert {"codeformer", "codeformer_stage2", "vqgan_code1024", "arcface_resnet18", "fan_wflw"} <= set(names)
    assert [n for n in names if content_check(n) is None] == []
    assert content_check("vgg16") is None and content_check("codeformer_tiny") is None  # pinned or bundled


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello", r"neither a PyTorch \(\.pth\) nor a safetensors checkpoint"),  # WT1: a 5-byte text file
        ({"params_ema": {"foo.weight": torch.zeros(2)}}, r"does not fit the registered model 'codeformer': missing"),
    ],
    ids=["text", "wrong-keys"],
)
def test_import_refuses_a_file_that_is_not_the_model(tmp_path, capsys, content, message):
    """WT1: `weights import codeformer <text>` pinned the text file for good (exit 0)."""
    source = tmp_path / "some.pth"
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        torch.save(content, source)
    assert main(["weights", "import", "codeformer", str(source)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(source) in err and "it is not 'codeformer' (codeformer.pth)" in err and "\n" not in err
    assert re.search(message, err)
    dest = weights.weights_path("codeformer")
    assert not dest.exists() and not dest.with_name(dest.name + ".sha256").exists()


def _lpips_heads(path: Path, channels=VGG_CHANNELS) -> Path:
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(channels)}, path)
    return path


def test_a_fitting_file_imports_and_verifies(tmp_path, capsys):
    good = _lpips_heads(tmp_path / "heads.pth")
    assert main(["weights", "import", "lpips_vgg_lin", str(good)]) == 0
    assert weights.expected_hash("lpips_vgg_lin") == weights.sha256_file(good)  # recorded after the check
    assert main(["weights", "verify", "lpips_vgg_lin"]) == 0
    wrong = _lpips_heads(tmp_path / "alex_heads.pth", (64, 192, 384, 256, 256))
    assert main(["weights", "import", "lpips_alex_lin", str(good)]) == 2  # vgg heads are not the alex heads
    assert "does not fit the LPIPS heads (alex)" in capsys.readouterr().err
    assert main(["weights", "import", "lpips_alex_lin", str(wrong)]) == 0


def test_verify_fails_on_a_file_pinned_before_the_check(capsys):
    """A text file recorded as `codeformer` by an earlier cfbench: its hash matches, its content does not."""
    dest = weights.weights_path("codeformer")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(b"hello")
    dest.with_name(dest.name + ".sha256").write_text(f"{weights.sha256_file(dest)}  codeformer.pth\n")
    assert main(["weights", "verify", "codeformer"]) == 1
    err = capsys.readouterr().err  # the rich console writes to stderr
    assert "codeformer: MISMATCH" in err and "then import the right file" in err


def test_fetch_deletes_a_download_that_is_not_the_model(monkeypatch):
    monkeypatch.setattr(weights, "_download", lambda url, part, progress, timeout: part.write_bytes(b"<html>"))
    with pytest.raises(CheckpointError, match="it is not 'codeformer'"):
        weights.fetch("codeformer", check=check_content)
    assert not weights.weights_path("codeformer").exists() and not weights.partial_path("codeformer").exists()


def test_model_check_refuses_nan_weights(tmp_path):
    """The registered model's keys and shapes, and finite values (a NaN model writes black faces)."""
    state, _ = weights_state("codeformer_tiny")
    good = tmp_path / "good.safetensors"
    save_file(state, str(good))
    model_variant_check("codeformer_tiny")(good)
    bad = tmp_path / "nan.safetensors"
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}, str(bad))
    with pytest.raises(CheckpointError, match="holds NaN or infinite weights"):
        model_variant_check("codeformer_tiny")(bad)


def weights_state(name: str):
    from cfbench.state_dict import load_state_dict_file

    return load_state_dict_file(weights.require(name))


def test_statistics_and_pyiqa_checks(tmp_path):
    """fid[ffhq70k]'s clean-fid statistics must be (2048,) / (2048, 2048) finite arrays; a pyiqa network file a
    non-empty state dict of finite tensors."""
    import numpy as np

    good = tmp_path / "ffhq_clean_trainval70k_512.npz"
    np.savez(good, mu=np.zeros(2048), sigma=np.eye(2048))
    check_content("fid_stats_ffhq70k_clean", good)
    small = tmp_path / "small.npz"
    np.savez(small, mu=np.zeros(8), sigma=np.eye(8))
    with pytest.raises(CheckpointError, match=r"8-d features.*it is not 'fid_stats_ffhq70k_clean'"):
        check_content("fid_stats_ffhq70k_clean", small)
    net = tmp_path / "ckpt_koniq10k.pt"
    torch.save({"head.weight": torch.ones(2, 2)}, net)
    check_content("pyiqa_maniqa_koniq", net)
    torch.save({"head.weight": torch.full((2, 2), float("nan"))}, net)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        check_content("pyiqa_maniqa_koniq", net)
