"""The prepared GPU check of the eval engine (issue 17): run it once on a CUDA machine, in under 8 minutes on an H100.

    python benchmarks/gpu_check.py --out gpu_check.json            # on a GPU; also writes gpu_check.md
    python benchmarks/gpu_check.py --dry-run --out /tmp/check.json  # the same code on the CPU, tiny model, < 3 min

Sections, each in the JSON and the markdown table:
- golden: the official-size CodeFormer with the GOLDEN.md weight fill (tests/data/reference) on the device in fp32
  and bf16, for w = 0, 0.5, 1: max abs error of the pooled output and the share of code tokens equal to the golden
  ones (skipped by --dry-run: the official model takes ~45 s per face on a 2-core CPU).
- model: encode / decode faces per second at batch 8, 16, 32 in fp32 and bf16, and with torch.compile at batch 16
  (`cfbench.bench.time_encode_decode`, median of 3; the dry run: the tiny model at batch 1, once, no compile).
- sweep: `FidelityWeightSweep` on a synthetic CelebA-Test-sized set (3000 GT faces: the bundled faces under new
  names, LQ synthesized by the celeba-test preset) x 11 w, with the official-size model and seeded weights for every
  metric network (LPIPS-VGG, Inception, ArcFace, FAN; nothing is downloaded), every paper metric with its GPU
  backend, --batch-size auto, bf16, 8 workers. Time-boxed (--sweep-seconds, default 240, counted from the start,
  at least 3 parts): the run stops after the part that crosses the box, and the full sweep is extrapolated from the
  steady rate of the later parts (and said so). Records the stage timings and the peak GPU memory. Out of memory or
  a torch.compile failure in the model timings is recorded in the table instead of stopping the check.

Needs only torch, torchvision, numpy, opencv, pandas, pyarrow, scipy, scikit-image and cfbench (no registry access).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.golden_fill: the GOLDEN.md weight fill
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import temporary_homes  # noqa: E402  (a sibling script, not a package)

PAPER_METRICS = "psnr,ssim,lpips[vgg],niqe,fid,identity_cos[arcface],lmd[fan]"
FACE_SOURCES = (ROOT / "cfbench" / "data" / "demo" / "gt", ROOT / "tests" / "data" / "metrics" / "gt")
GOLDEN_WS = {0.0: "w0p00_", 0.5: "w0p50_", 1.0: "w1p00_"}


class TimeBox(Exception):
    """Raised from the sweep's progress callback when the time box is spent."""


def settings(dry_run: bool, args: argparse.Namespace) -> dict[str, Any]:
    if dry_run:
        return dict(
            device="cpu",
            variant="codeformer_tiny",
            batches=[1],
            compile_batches=[],
            repeats=1,
            part_size=1,
            min_parts=1,
            faces=args.faces or 1,
            w=args.w or "0,1",
            budget=60.0 if args.sweep_seconds is None else args.sweep_seconds,
            batch_size="4",
            workers=2,
            precision="fp32",
        )
    return dict(
        device="cuda",
        variant="codeformer",
        batches=[8, 16, 32],
        compile_batches=[16],
        repeats=3,
        part_size=16,
        min_parts=3,  # a rate needs parts after the first, whatever the one-off stages took
        faces=args.faces or 3000,
        w=args.w or "0:1:0.1",
        budget=240.0 if args.sweep_seconds is None else args.sweep_seconds,
        batch_size="auto",
        workers=8,
        precision="bf16",
    )


def golden_check(device: str) -> list[dict[str, Any]]:
    """Max error of the official architecture against tests/data/reference in fp32 and bf16."""
    import numpy as np
    import torch.nn.functional as F

    from cfbench.imageio import read_image
    from cfbench.models import build_model
    from cfbench.precision import autocast
    from tests.golden_fill import golden_state_dict

    ref = ROOT / "tests" / "data" / "reference"
    golden = np.load(ref / "golden_codeformer.npz")
    model = build_model("codeformer").eval()
    model.load_state_dict(golden_state_dict(json.loads((ref / "manifest_codeformer.json").read_text())["keys"]))
    model = model.to(device)
    x = (read_image(ref / "ffhq512_00000000.png")[None] - 0.5) / 0.5
    rows = []
    for precision in ("fp32", "bf16"):
        for w, prefix in GOLDEN_WS.items():
            with torch.inference_mode(), autocast(device, precision):
                out, logits, _ = model(x.to(device), w=w, adain=True)
            pooled = F.adaptive_avg_pool2d(out.float(), 64)[0].double().cpu().numpy()
            tokens = logits[0].float().argmax(-1).cpu().numpy()
            rows.append(
                {
                    "precision": precision,
                    "w": w,
                    "out_pool64_max_abs_err": float(np.abs(pooled - golden[prefix + "out_pool64"]).max()),
                    "top_idx_agreement": float((tokens == golden[prefix + "top_idx"]).mean()),
                }
            )
    return rows


def model_speed(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Encode / decode time per face (`cfbench.bench.time_encode_decode`) per batch, precision and compile."""
    from cfbench.bench import time_encode_decode, timing_rows

    runs = [(b, p, False) for p in ("fp32", "bf16") for b in cfg["batches"]]
    runs += [(b, p, True) for p in ("fp32", "bf16") for b in cfg["compile_batches"]]
    rows = []
    for batch, precision, compile_model in runs:
        try:  # one failed configuration (out of memory, a compiler error) is recorded, not fatal
            timing = time_encode_decode(cfg["variant"], cfg["device"], batch, precision, compile_model, cfg["repeats"])
            rows += timing_rows([timing])
        except Exception as error:
            label = precision + ("+compile" if compile_model else "")
            rows.append({"precision": label, "batch": batch, "error": f"{type(error).__name__}: {error}"[:300]})
        if cfg["device"] == "cuda":
            torch.cuda.empty_cache()
    return rows


def seeded_weights(variant: str, folder: Path) -> Path:
    """Seeded ArcFace and FAN files where cfbench looks for them (LPIPS-VGG and Inception: `temporary_homes`), and a
    seeded checkpoint of `variant`; returns the checkpoint file."""
    from cfbench import weights
    from cfbench.face.arcface import ResNetArcFace
    from cfbench.face.fan import FAN
    from cfbench.models import build_model, save_checkpoint

    torch.manual_seed(17)
    for name, net in (("arcface_resnet18", ResNetArcFace()), ("fan_wflw", FAN())):
        path = weights.weights_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    return save_checkpoint(build_model(variant), folder / f"{variant}_seeded.safetensors")


def synthetic_faces(folder: Path, n: int) -> Path:
    """A folder dataset of `n` GT faces: the bundled 512x512 faces under new names (hard links where possible)."""
    sources = sorted(p for d in FACE_SOURCES for p in d.glob("*.png"))
    (folder / "gt").mkdir(parents=True)
    for i in range(n):
        target = folder / "gt" / f"{i:05d}.png"
        try:
            os.link(sources[i % len(sources)], target)
        except OSError:
            shutil.copyfile(sources[i % len(sources)], target)
    return folder


def sweep_check(cfg: dict[str, Any], checkpoint: Path, faces: Path, run_dir: Path) -> dict[str, Any]:
    """The time-boxed sweep, its stage timings and the extrapolation to all faces."""
    from cfbench.eval.config import load_sweep_config
    from cfbench.eval.runner import FidelityWeightSweep
    from cfbench.eval.timing import TOTAL, timings_record

    config = load_sweep_config(
        None,
        dataset=f"folder:{faces}",
        severity="celeba-test",
        w=cfg["w"],
        checkpoints=(str(checkpoint),),
        metrics=PAPER_METRICS,
        device=cfg["device"],
        batch_size=cfg["batch_size"],
        precision=cfg["precision"],
        workers=cfg["workers"],
        part_size=cfg["part_size"],
        run_dir=str(run_dir),
    )
    logs: list[str] = []
    sweep = FidelityWeightSweep(config, log=logs.append)
    n_faces, n_w = len(sweep.indices), len(sweep.ws)
    start = time.perf_counter()
    marks: list[tuple[float, int]] = []  # (seconds since start, faces done) after each part

    def progress(stage: str, done: int, total: int) -> None:
        if stage.startswith("GT"):
            return
        marks.append((time.perf_counter() - start, done))
        if marks[-1][0] > cfg["budget"] and len(marks) >= cfg["min_parts"] and done < total:
            raise TimeBox

    sweep.progress = progress
    finished = True
    try:
        sweep.run()
    except TimeBox:
        finished = False
    wall = time.perf_counter() - start
    seconds = {**sweep.times.seconds, TOTAL: wall}
    peak = torch.cuda.max_memory_allocated() / 2**20 if cfg["device"] == "cuda" else None
    done = marks[-1][1] if marks else 0
    timings = timings_record(seconds, done * n_w, peak)
    # the steady rate: from the end of the first part (one-off stages and warm-up behind) to the last
    (t0, d0), (t1, d1) = marks[0], marks[-1]
    rate = (d1 - d0) * n_w / (t1 - t0) if d1 > d0 and t1 > t0 else d1 * n_w / t1
    full = wall if finished else t0 + (n_faces - d0) * n_w / rate
    return {
        "faces": n_faces,
        "ws": n_w,
        "metrics": PAPER_METRICS.split(","),
        "batch_size": sweep.batch_size,
        "precision": cfg["precision"],
        "workers": cfg["workers"],
        "finished": finished,
        "faces_done": done,
        "measured_seconds": wall,
        "faces_x_w_per_second": rate,
        "extrapolated": not finished,
        "full_sweep_seconds": full,
        "extrapolation_note": None
        if finished
        else "measured up to the end of the first part (one-off stages included), the other faces at the steady "
        "faces x w rate of the later parts; finalize (the FID distance of each w group) not included",
        "timings": timings,
        "log": logs,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# cfbench GPU check ({report['device']}, torch {report['torch']}, {report['date']})", ""]
    if report["dry_run"]:
        lines += ["Dry run on the CPU with the tiny model: not GPU numbers.", ""]
    golden = report["golden"]
    lines += ["## Golden outputs", ""]
    if isinstance(golden, dict):
        lines += [f"skipped: {golden['skipped']}", ""]
    else:
        lines += ["| precision | w | max abs error (pooled output) | code tokens equal |", "|---|---|---|---|"]
        lines += [
            f"| {g['precision']} | {g['w']:g} | {g['out_pool64_max_abs_err']:.2e} | {g['top_idx_agreement']:.1%} |"
            for g in golden
        ]
        lines.append("")
    lines += ["## Model", "", "| precision | batch | encode ms/face | decode ms/face | faces/s | peak MiB |"]
    lines.append("|---|---|---|---|---|---|")
    for t in report["model"]:
        if "error" in t:
            lines.append(f"| {t['precision']} | {t['batch']} | {t['error']} | | | |")
            continue
        peak = "-" if t["peak_mem_mb"] is None else f"{t['peak_mem_mb']:.0f}"
        lines.append(
            f"| {t['precision']} | {t['batch']} | {t['encode_ms']:.1f} | {t['decode_ms']:.1f} | "
            f"{t['faces_per_s']:.1f} | {peak} |"
        )
    s = report["sweep"]
    full = s["full_sweep_seconds"]
    lines += [
        "",
        "## Sweep",
        "",
        f"{s['faces']} faces x {s['ws']} w, {', '.join(s['metrics'])}; batch {s['batch_size']}, {s['precision']}, "
        f"{s['workers']} workers: {s['faces_done']} faces in {s['measured_seconds']:.1f} s, "
        f"{s['faces_x_w_per_second']:.1f} faces x w/s; full sweep "
        + (f"{full:.0f} s" if full is not None else "n/a")
        + (" (extrapolated)" if s["extrapolated"] else " (measured)")
        + (f"; peak GPU memory {s['timings']['peak_memory_mib']:.0f} MiB" if s["timings"]["peak_memory_mib"] else ""),
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.2f} |" for k, v in s["timings"]["seconds"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the JSON; the .md goes beside it")
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU with the tiny model")
    parser.add_argument("--faces", type=int, help="synthetic faces (default 3000; dry run 1)")
    parser.add_argument("--w", help="w spec (default 0:1:0.1; dry run 0,1)")
    parser.add_argument("--sweep-seconds", type=float, help="time box of the sweep (default 240; dry run 60)")
    args = parser.parse_args()
    cfg = settings(args.dry_run, args)
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU here; use --dry-run for the CPU rehearsal")
    start = time.perf_counter()
    with temporary_homes(seeded_weights=True) as tmp:
        from cfbench.devices import pick_device

        device = pick_device(cfg["device"])
        name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        skip = "the official model takes ~45 s per face on a 2-core CPU; run without --dry-run on a GPU"
        golden = {"skipped": skip} if args.dry_run else golden_check(device)
        model = model_speed(cfg)
        checkpoint = seeded_weights(cfg["variant"], tmp)
        faces = synthetic_faces(tmp / "faces", cfg["faces"])
        sweep = sweep_check(cfg, checkpoint, faces, tmp / "run")
    report = {
        "check": "gpu_check",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": name,
        "torch": torch.__version__,
        "dry_run": args.dry_run,
        "golden": golden,
        "model": model,
        "sweep": sweep,
        "wall_seconds": time.perf_counter() - start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"written: {args.out} and {args.out.with_suffix('.md')} ({report['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
