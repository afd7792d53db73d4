"""A small CodeFormer (tests/conftest.py's 64x64 config) as a checkpoint file, exported once per module."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TINY_CODEFORMER


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from cfbench.models import build_model
    from cfbench.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model("codeformer", **TINY_CODEFORMER)
    with torch.no_grad():
        model.position_emb.normal_(0, 0.02)
        for block in model.fuse_convs_dict.values():  # give w a visible effect (the fusion starts near zero)
            for p in block.parameters():
                p.mul_(4)
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def tiny_export(tiny_checkpoint, tmp_path_factory):
    from cfbench.export.onnx import export_onnx

    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx", check_faces=2)
