"""`cfbench export onnx` on a 64x64 CodeFormer: the graph agrees with PyTorch (dynamic batch, w scalar or per
image), carries its provenance, and is refused when it does not agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cfbench.errors import EXIT_FAILED_CHECK, BadInputError
from cfbench.export.onnx import ExportCheckError, ExportGraph, demo_faces, export_onnx, write_graph
from cfbench.export.runtime import META_CONFIG, META_SOURCE_SHA256, OnnxCodeFormer
from cfbench.restoration import load_restorer, restore_batch
from cfbench.weights import sha256_file

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_export_agrees_with_pytorch_and_states_its_check(tiny_export):
    check = tiny_export.check
    assert check.ws == (0.0, 0.5, 1.0) and check.faces == 2
    assert check.max_abs_error < 1e-3 < check.tolerance and check.codes_agree == 1.0
    meta = OnnxCodeFormer(tiny_export.path).metadata
    assert json.loads(meta["cfbench.check"])["max_abs_error"] == pytest.approx(check.max_abs_error)


def test_metadata_holds_the_config_and_the_source_hash(tiny_checkpoint, tiny_export):
    session = OnnxCodeFormer(tiny_export.path)
    assert session.metadata[META_SOURCE_SHA256] == sha256_file(tiny_checkpoint) == tiny_export.source_sha256
    config = json.loads(session.metadata[META_CONFIG])
    assert config["arch"] == "codeformer" and config["img_size"] == 64 and session.img_size == 64


def test_dynamic_batch_and_w_scalar_or_per_image(tiny_checkpoint, tiny_export):
    session = OnnxCodeFormer(tiny_export.path)
    net = load_restorer(tiny_checkpoint)
    faces = demo_faces(64, 3)
    ws = torch.tensor([0.0, 0.5, 1.0])
    mixed, codes = session.restore(faces, ws)  # one w per face, batch of 3
    for i, w in enumerate(ws.tolist()):
        alone, _ = session.restore(faces[i : i + 1], w)  # batch of 1, w a scalar
        torch.testing.assert_close(mixed[i : i + 1], alone, atol=1e-5, rtol=0)
        with torch.inference_mode():
            ref = restore_batch(net, faces[i : i + 1], w)
        assert float((alone - ref).abs().max()) < 1e-3
    assert codes.shape == (3, 16 * 16) and codes.dtype == torch.int64
    scalar, _ = session.run(faces.numpy() * 2 - 1, np.array(0.5, np.float32))  # a 0-d w broadcasts
    per_face, _ = session.run(faces.numpy() * 2 - 1, np.full(3, 0.5, np.float32))
    np.testing.assert_allclose(scalar, per_face, atol=1e-6)


def test_w_changes_the_output(tiny_export):
    session = OnnxCodeFormer(tiny_export.path)
    faces = demo_faces(64, 1)
    low, high = session.restore(faces, 0.0)[0], session.restore(faces, 1.0)[0]
    assert float((low - high).abs().mean()) > 1e-3


@pytest.mark.slow
def test_fp16_export_passes_its_check(tiny_checkpoint, tmp_path):
    result = export_onnx(tiny_checkpoint, tmp_path / "half.onnx", precision="fp16", check_faces=1)
    assert result.check.passed and result.check.tolerance == pytest.approx(4 / 255)
    assert OnnxCodeFormer(result.path).metadata["cfbench.precision"] == "fp16"


class _Shifted(ExportGraph):
    """An export that is off by 0.05 (in [-1, 1]) everywhere: 6 levels of 8 bits."""

    def forward(self, image, w):
        out, codes = super().forward(image, w)
        return out + 0.05, codes


def test_a_disagreeing_export_is_refused_and_not_written(tiny_checkpoint, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportCheckError, match=r"refused: .* differs from the PyTorch model by up to 0\.025") as err:
        export_onnx(tiny_checkpoint, out, check_faces=1, graph=_Shifted(load_restorer(tiny_checkpoint)))
    assert err.value.exit_code == EXIT_FAILED_CHECK
    assert list(tmp_path.iterdir()) == []


class _IgnoresW(ExportGraph):
    def forward(self, image, w):
        state = self.net.encode(image)
        return self.net.decode(state, 0.0, adain=True).clamp(-1, 1), state.indices


def test_a_graph_without_its_w_input_is_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(BadInputError, match="does not use its w input"):
        write_graph(_IgnoresW(load_restorer(tiny_checkpoint)), 64, tmp_path / "x.onnx", 17, {})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"precision": "int8"}, "--precision must be one of fp32, fp16"), ({"opset": 3}, "--opset 3 is outside")],
)
def test_bad_options(tiny_checkpoint, tmp_path, kwargs, message):
    with pytest.raises(BadInputError, match=message):
        export_onnx(tiny_checkpoint, tmp_path / "x.onnx", **kwargs)


def test_the_graph_keeps_w_and_the_dynamic_batch(tiny_export):
    model = onnx.load(str(tiny_export.path))
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert set(inputs) == {"image", "w"} and not inputs["w"].HasField("shape")
    assert inputs["image"].shape.dim[0].dim_param == "N"


def test_the_cli_writes_and_reports(tiny_checkpoint, tmp_path, capsys):
    from cfbench.cli import main

    out = tmp_path / "cli.onnx"
    assert main(["export", "onnx", "-c", str(tiny_checkpoint), "-o", str(out), "--check-faces", "1"]) == 0
    text = " ".join(capsys.readouterr().err.split())
    assert out.is_file() and f"wrote {out}" in text and "max abs error" in text and "codes agree 100.0%" in text
