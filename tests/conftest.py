"""Shared fixtures: paths to the team's reference files and small, fast model configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = DATA / "reference"
GOLDEN_FACE = REFERENCE / "ffhq512_00000000.png"

# A CodeFormer with the official structure at 64x64 (3 levels, 16x16 tokens, fusion at 32 and 64): fast on CPU.
TINY_CODEFORMER = dict(
    img_size=64,
    nf=32,
    ch_mult=(1, 1, 2),
    codebook_size=64,
    emb_dim=32,
    dim_embd=64,
    n_head=4,
    n_layers=2,
    connect_list=("32", "64"),
)


def reference_file(name: str) -> Path:
    """A committed reference fixture (tests/data/reference, copied from the team's shared/reference)."""
    return REFERENCE / name


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_codeformer():
    from cfbench.models import build_model

    torch.manual_seed(0)
    model = build_model("codeformer", **TINY_CODEFORMER)
    # the official init leaves position_emb at zero; give it values so tests see it
    with torch.no_grad():
        model.position_emb.normal_(0, 0.02)
    return model.eval()


@pytest.fixture
def tiny_batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 64, 64, generator=g) * 2 - 1


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty $CFBENCH_HOME and $TORCH_HOME, so no test sees the user's caches."""
    monkeypatch.setenv("CFBENCH_HOME", str(tmp_path_factory.mktemp("cfbench_home")))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))


def golden_input() -> torch.Tensor:
    """The GOLDEN.md input: uint8 / 255 in float64, then (x - 0.5) / 0.5, cast to float32, (1, 3, 512, 512)."""
    from PIL import Image

    img = np.asarray(Image.open(GOLDEN_FACE).convert("RGB"))
    x = ((img / 255.0 - 0.5) / 0.5).astype(np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()
