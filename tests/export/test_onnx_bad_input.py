"""ONNX files that cannot be a CodeFormer export: one-line BadInputError (exit 2) from loading, `cfbench restore`
and `cfbench eval`."""

from __future__ import annotations

import re

import pytest

from cfbench.cli import main
from cfbench.errors import EXIT_BAD_INPUT, BadInputError
from cfbench.export.runtime import OnnxCodeFormer

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
helper, TensorProto = onnx.helper, onnx.TensorProto

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


def _write(path, nodes, inputs, outputs, opsets=(("", 17),)):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _codes():
    """codes = ArgMax over the flattened image: an int64 (N, 1) output."""
    return [helper.make_node("Flatten", ["image"], ["flat"]), helper.make_node("ArgMax", ["flat"], ["codes"])]


def _io(size_out=64, restored_node=None):
    image = helper.make_tensor_value_info("image", FLOAT, ["N", 3, 64, 64])
    w = helper.make_tensor_value_info("w", FLOAT, None)
    restored = helper.make_tensor_value_info("restored", FLOAT, ["N", 3, size_out, size_out])
    codes = helper.make_tensor_value_info("codes", INT64, ["N", 1])
    return [image, w], [restored, codes]


def wrong_inputs(path):
    x = helper.make_tensor_value_info("x", FLOAT, ["N", 3, 64, 64])
    y = helper.make_tensor_value_info("y", FLOAT, ["N", 3, 64, 64])
    return _write(path, [helper.make_node("Identity", ["x"], ["y"])], [x], [y])


def wrong_output_size(path):
    pool = helper.make_node("AveragePool", ["image"], ["restored"], kernel_shape=[2, 2], strides=[2, 2])
    inputs, outputs = _io(size_out=32)
    return _write(path, [pool, *_codes()], inputs, outputs)


def missing_operator(path):
    op = helper.make_node("NoSuchRestorer", ["image", "w"], ["restored"], domain="com.example")
    inputs, outputs = _io()
    return _write(path, [op, *_codes()], inputs, outputs, opsets=(("", 17), ("com.example", 1)))


def truncated(path):
    wrong_output_size(path)  # any valid file, cut in half
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


CASES = {
    "wrong inputs": (wrong_inputs, r"is not a CodeFormer export: it has inputs \['x'\] and outputs \['y'\]"),
    "wrong output size": (
        wrong_output_size,
        r"output restored has shape \('N', 3, 32, 32\), expected \(N, 3, 64, 64\)",
    ),
    "truncated": (truncated, "is not a readable ONNX model .*is it truncated"),
    "missing operator": (missing_operator, r"onnxruntime [\d.]+ cannot run .*NoSuchRestorer"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_loading_refuses_with_one_line(tmp_path, case):
    make, message = CASES[case]
    path = make(tmp_path / "m.onnx")
    with pytest.raises(BadInputError, match=message) as err:
        OnnxCodeFormer(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("command", ["restore", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_cli_exits_2_with_one_line(tmp_path, capsys, case, command):
    make, message = CASES[case]
    path = make(tmp_path / "m.onnx")
    args = {
        "restore": ["restore", "--checkpoint", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"],
        "eval": ["eval", "--checkpoint", str(path), "--limit", "1", "--w", "0.5", "--metrics", "psnr"]
        + ["--device", "cpu", "--run-dir", str(tmp_path / "run")],
    }[command]
    assert main(args) == EXIT_BAD_INPUT
    errors = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(message, errors[0])
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_a_missing_onnx_file(tmp_path):
    with pytest.raises(BadInputError, match="ONNX file not found"):
        OnnxCodeFormer(tmp_path / "none.onnx")
