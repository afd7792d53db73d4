"""Faces/s of a CodeFormer ONNX export (onnxruntime) against the PyTorch model it came from, in the same run
(a script, not a test).

    python benchmarks/bench_onnx.py [--checkpoint codeformer_tiny] [--onnx t.onnx] [--faces 4] [--batch 4]
        [--ws 0,0.5,1] [--repeats 3] [--device cpu|cuda] [--threads N] [--json out.json]

single w: `restore_batch` (PyTorch) and `OnnxCodeFormer.restore` on the same faces at w = 0.5, `--batch` faces per
call. sweep: every w of `--ws` for each face as the eval sweep runs it: PyTorch encodes once and decodes per w
(`CodeFormerRestorer`), the monolithic export runs the whole graph per w (`OnnxRestorer`); faces x w per second.
Each timing is the median of `--repeats` after one warm-up call; the max abs difference of the outputs is printed.
Providers: on `--device cpu` onnxruntime CPU; on cuda the CUDA provider, and TensorRT as well when onnxruntime has
it (its first call builds the engine: the warm-up). The export is made with `cfbench export onnx` when `--onnx` does
not exist. Both runtimes get `--threads` intra-op threads (default: torch's).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cfbench.eval.onnx_restorer import OnnxRestorer
from cfbench.eval.restorer import CodeFormerRestorer
from cfbench.export.onnx import demo_faces, export_onnx
from cfbench.export.runtime import OnnxCodeFormer, make_session
from cfbench.restoration import load_restorer, restore_batch


def timed(fn: Callable[[], torch.Tensor], repeats: int, device: torch.device) -> tuple[float, torch.Tensor]:
    """Median seconds of `fn` over `repeats` calls after one warm-up, and its last output."""
    out = fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def onnx_models(path: Path, device: torch.device, threads: int) -> dict[str, OnnxCodeFormer]:
    """onnxruntime sessions of `path` per provider available for `device`."""
    import onnxruntime as ort

    base = OnnxCodeFormer(path, device)
    base.session = make_session(path, base.session.get_providers(), threads)
    found = {f"onnxruntime {base.provider}": base}
    if device.type == "cuda" and "TensorrtExecutionProvider" in ort.get_available_providers():
        trt = OnnxCodeFormer(path, device)
        trt.session = make_session(path, ["TensorrtExecutionProvider", "CUDAExecutionProvider"], threads)
        found["onnxruntime TensorrtExecutionProvider"] = trt
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="codeformer_tiny")
    parser.add_argument("--onnx", type=Path, default=None)
    parser.add_argument("--faces", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--ws", default="0,0.5,1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    ws = [float(w) for w in args.ws.split(",")]
    path = args.onnx or Path(tempfile.mkdtemp(prefix="bench-onnx-")) / "model.onnx"
    if not path.exists():
        export_onnx(args.checkpoint, path, check_faces=1)
    net = load_restorer(args.checkpoint, str(device))
    faces = demo_faces(net.config.img_size, args.faces).to(device)
    torch_r = CodeFormerRestorer(net, "torch")

    def torch_single() -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([restore_batch(net, c, 0.5) for c in faces.split(args.batch)])

    def torch_sweep() -> torch.Tensor:
        with torch.inference_mode():
            return torch_r.decode(torch_r.encode(faces), ws, args.batch * len(ws))

    rows = []
    t_single, ref_single = timed(torch_single, args.repeats, device)
    t_sweep, ref_sweep = timed(torch_sweep, args.repeats, device)
    rows.append({"runtime": f"PyTorch {torch.__version__} ({device})", "single": t_single, "sweep": t_sweep})
    for name, model in onnx_models(path, device, threads).items():
        onnx_r = OnnxRestorer(model, "onnx")
        t1, out1 = timed(
            lambda m=model: torch.cat([m.restore(c, 0.5)[0] for c in faces.split(args.batch)]), args.repeats, device
        )
        t2, out2 = timed(lambda r=onnx_r: r.decode(r.encode(faces), ws, args.batch * len(ws)), args.repeats, device)
        err = max(float((out1 - ref_single).abs().max()), float((out2 - ref_sweep).abs().max()))
        rows.append({"runtime": name, "single": t1, "sweep": t2, "max_abs_diff": err})
    n, k = len(faces), len(ws)
    print(
        f"{args.checkpoint}, {n} faces {net.config.img_size}px, batch {args.batch}, {threads} thread(s), "
        f"{platform.machine()} {platform.processor() or ''}".strip()
    )
    print(f"| runtime | faces/s (w 0.5) | ratio | faces x w/s (sweep, {k} w) | ratio | max abs diff |")
    print("|---|--:|--:|--:|--:|--:|")
    for r in rows:
        r["faces_per_s"], r["faces_w_per_s"] = n / r["single"], n * k / r["sweep"]
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"
        print(
            f"| {r['runtime']} | {r['faces_per_s']:.3f} | {r['faces_per_s'] / rows[0]['faces_per_s']:.2f}x | "
            f"{r['faces_w_per_s']:.3f} | {r['faces_w_per_s'] / rows[0]['faces_w_per_s']:.2f}x | {diff} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"threads": threads, "faces": n, "ws": ws, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
