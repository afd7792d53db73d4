"""An ONNX export behind the sweep's `Restorer` interface gives what the PyTorch restorer gives, and the run's
provenance names the file, its hash and metadata."""

from __future__ import annotations

import pytest
import torch

from cfbench.errors import BadInputError
from cfbench.eval.onnx_restorer import OnnxRestorer
from cfbench.eval.provenance import checkpoint_records
from cfbench.eval.restorer import CodeFormerRestorer, load_sweep_restorer
from cfbench.export.onnx import demo_faces
from cfbench.restoration import restore
from cfbench.weights import sha256_file

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_decode_and_codes_match_the_pytorch_restorer(tiny_checkpoint, tiny_export):
    onnx_r = load_sweep_restorer(str(tiny_export.path), "t", "cpu")
    torch_r = load_sweep_restorer(str(tiny_checkpoint), "t", "cpu")
    assert isinstance(onnx_r, OnnxRestorer) and isinstance(torch_r, CodeFormerRestorer)
    assert onnx_r.encode_once is False
    lq, ws = demo_faces(64, 2), [0.0, 0.5, 1.0]
    with torch.inference_mode():
        state, ref_state = onnx_r.encode(lq), torch_r.encode(lq)
        ours, ref = onnx_r.decode(state, ws, batch_size=4), torch_r.decode(ref_state, ws, batch_size=4)
    assert ours.shape == ref.shape == (6, 3, 64, 64)
    assert float((ours - ref).abs().max()) < 1e-3
    torch.testing.assert_close(onnx_r.codes(state), torch_r.codes(ref_state))
    assert torch.equal(onnx_r.codes(onnx_r.encode(lq)), torch_r.codes(ref_state))  # without a decode first


def test_onnx_refuses_options_it_cannot_honour(tiny_export):
    with pytest.raises(BadInputError, match="always runs with AdaIN and the transformer lookup"):
        load_sweep_restorer(str(tiny_export.path), "t", "cpu", lookup="nearest")
    r = load_sweep_restorer(str(tiny_export.path), "t", "cpu")
    with pytest.raises(BadInputError, match="--store-nn-codes needs the model's codebook"):
        r.nn_codes(r.encode(demo_faces(64, 1)), None)


def test_the_restore_api_takes_an_onnx_file(tiny_checkpoint, tiny_export):
    faces = demo_faces(64, 2)
    ours = restore(faces, 0.7, model=str(tiny_export.path), device="cpu")
    ref = restore(faces, 0.7, model=str(tiny_checkpoint), device="cpu")
    assert float((ours - ref).abs().max()) < 1e-3


def test_provenance_records_the_file_hash_and_metadata(tiny_checkpoint, tiny_export):
    (record,) = checkpoint_records([str(tiny_export.path)]).values()
    assert record["sha256"] == sha256_file(tiny_export.path) and record["format"] == "onnx"
    assert record["encode_once"] is False
    assert record["onnx_metadata"]["cfbench.source_sha256"] == sha256_file(tiny_checkpoint)
    (plain,) = checkpoint_records([str(tiny_checkpoint)]).values()
    assert "format" not in plain


def test_restore_cli_runs_aligned_faces_and_refuses_whole_photos(tiny_export, tmp_path, capsys):
    from cfbench.cli import main
    from cfbench.data.demo import demo_lq_paths
    from cfbench.imageio import read_image

    photo = demo_lq_paths()[0]  # 512x512: a whole photo for a 64x64 model
    args = ["restore", str(photo), "--checkpoint", str(tiny_export.path), "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a"), "--resize"]) == 0
    assert read_image(tmp_path / "a" / photo.name).shape == (3, 64, 64)
    assert main([*args, "--out", str(tmp_path / "b")]) == 2
    assert "whole photos (not 64x64), which need the PyTorch checkpoint" in capsys.readouterr().err
