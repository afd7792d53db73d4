"""Deployable exports of CodeFormer: `onnx` writes and checks an ONNX file (`cfbench export onnx`), `runtime` runs
one with onnxruntime behind the same restorer interface as the PyTorch model (docs/export.md).

Nothing is imported here, so that `cfbench.restoration` can use `runtime` without importing the exporter."""
