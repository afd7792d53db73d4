"""Full-scale readiness on CPU: a protocol-style run (released LQ, severity none, 11 w) at 30 and at N faces.

Builds a folder dataset of N GT/LQ pairs (the shared aligned faces, repeated, each copy with its own seeded
`celeba-test` degradation, so every LQ differs), then runs `cfbench eval --dataset folder:... --w 0:1:0.1` with the
bundled `codeformer_tiny` and the metrics that work offline, once on the first 30 faces and once on all N, each in
a fresh process (`--w` takes a shorter grid where 11 values take too long; the estimate uses the measured rate).
Reports faces x w per second, the peak RSS of each process (it must not grow with N: results go to
parts on disk), the time per stage from the manifest (`timings`), and the estimate for 3000 faces x 11 w.

    python benchmarks/bench_protocol_scale.py --faces 300 --json scale.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from cfbench.eval.spec import parse_w_spec

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "faces" / "aligned_hq"
METRICS = "psnr,ssim,niqe,identity_cos[dlib],lmd[dlib]"


def build_dataset(root: Path, n: int, source: Path) -> Path:
    """root/gt + root/lq: n pairs from the faces of `source`, each LQ the seeded celeba-test degradation of its GT
    (through cfbench's own `with_severity`, so each copy of a repeated face gets another LQ)."""
    from cfbench.data import get_dataset, with_severity
    from cfbench.imageio import write_image

    faces = sorted(p for p in source.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    (root / "gt").mkdir(parents=True)
    for i in range(n):
        img = cv2.imread(str(faces[i % len(faces)]))
        if img.shape[:2] != (512, 512):
            img = cv2.resize(img, (512, 512), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "gt" / f"{i:05d}.png"), img)
    degraded = with_severity(get_dataset(f"folder:{root}"), "celeba-test", seed=0)
    for i in range(n):
        sample = degraded.load(i)
        write_image(root / "lq" / f"{sample.id}.png", sample.lq)
    return root


def run_eval(dataset: Path, limit: int, run_dir: Path, threads: int, w: str) -> dict[str, object]:
    """`cfbench eval` in a child process; its wall time, peak RSS and the manifest's stage times."""
    code = (
        f"import resource, sys, torch; torch.set_num_threads({threads}); from cfbench.cli import main; "
        "rc = main(sys.argv[1:]); print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    )
    n_w = len(parse_w_spec(w))
    args = ["eval", "--dataset", f"folder:{dataset}", "--w", w, "--checkpoint", "codeformer_tiny"]
    args += ["--metrics", METRICS, "--limit", str(limit), "--run-dir", str(run_dir), "--batch-size", str(n_w)]
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    rss_kb = int(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("RSS")))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {
        "faces": limit,
        "w": n_w,
        "seconds": round(seconds, 1),
        "faces_x_w_per_s": round(limit * n_w / seconds, 3),
        "peak_rss_mb": round(rss_kb / 1024),
        "stage_seconds": {k: round(v, 1) for k, v in manifest["timings"]["seconds"].items() if k != "total"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=300)
    parser.add_argument("--small", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--w", default="0:1:0.1", help="the w grid (11 values by default, as the protocols)")
    parser.add_argument("--source", type=Path, default=SHARED_FACES)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cfbench-scale-") as tmp:
        dataset = build_dataset(Path(tmp) / "faces", args.faces, args.source)
        runs = [run_eval(dataset, n, Path(tmp) / f"run{n}", args.threads, args.w) for n in (args.small, args.faces)]
    big = runs[-1]
    estimate_h = 3000 * 11 / big["faces_x_w_per_s"] / 3600
    report = {"runs": runs, "metrics": METRICS, "estimate_3000x11_hours": round(estimate_h, 2)}
    for r in runs:
        print(
            f"{r['faces']:>5} faces x {r['w']} w: {r['seconds']:8.1f} s, {r['faces_x_w_per_s']:.3f} faces x w/s, "
            f"peak RSS {r['peak_rss_mb']} MB"
        )
        total = sum(r["stage_seconds"].values())
        for stage, sec in sorted(r["stage_seconds"].items(), key=lambda kv: -kv[1]):
            print(f"        {stage:40s} {sec:8.1f} s  {100 * sec / total:5.1f}%")
    print(f"estimate for 3000 faces x 11 w on this machine: {estimate_h:.1f} h")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
