"""`cfbench export onnx`: write CodeFormer as an ONNX file with w as an input, checked against PyTorch
(`cfbench.export.onnx`, docs/export.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from cfbench.cli.common import console

export_app = typer.Typer(help="Export a checkpoint for deployment (ONNX), checked against the PyTorch model.")


@export_app.command("onnx")
def onnx_command(
    checkpoint: str = typer.Option(..., "--checkpoint", "-c", help="Registered weights name or checkpoint file."),
    out: Path = typer.Option(..., "--out", "-o", help="The .onnx file to write."),
    opset: int = typer.Option(17, help="ONNX opset."),
    precision: str = typer.Option("fp32", help="fp32, or fp16 (weights and compute; inputs and outputs float32)."),
    check_faces: int = typer.Option(4, help="Demo faces the written file is checked on (at w 0, 0.5, 1)."),
) -> None:
    """Export CodeFormer to ONNX: inputs image (N,3,S,S) in [-1,1] and w, outputs restored and codes."""
    from cfbench.export.onnx import export_onnx

    result = export_onnx(checkpoint, out, opset=opset, precision=precision, check_faces=check_faces)
    c = result.check
    console.print(
        f"wrote {result.path} (opset {result.opset}, {result.precision}, from sha256 {result.source_sha256[:12]}); "
        f"onnxruntime vs PyTorch on {c.faces} demo faces at w {', '.join(f'{w:g}' for w in c.ws)}: max abs error "
        f"{c.max_abs_error:.2e} (tolerance {c.tolerance:.2e}, [0, 1] units), codes agree {c.codes_agree:.1%}",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
