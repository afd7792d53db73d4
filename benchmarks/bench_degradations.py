"""Benchmark and measure the degradation backends (a script, not a test).

    python benchmarks/bench_degradations.py [--images 48] [--sections speed,agreement,severity]

speed: faces/s at 512x512 for the ``celeba-test`` preset (sample + apply, no file I/O): the CPU backend with 1
and 2 worker processes (one thread each), the torch backend on the CPU (all threads) and, when available, on
CUDA at batch 64 (with GB/s of images read and written). Ratios are against the CPU 1-worker run of the same
invocation. agreement: PSNR between the CPU and torch backends per op and per preset on shared faces.
severity: the parameters and the mean PSNR to GT of each severity level. Numbers go to docs/degradations.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import torch

from degradations import apply_op, derive_seed, load_preset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "faces" / "aligned_hq"
BUNDLED = ROOT / "tests" / "data" / "faces"
PRESET = "celeba-test"


def load_faces(size: int = 512) -> tuple[torch.Tensor, str]:
    """(N, 3, size, size) float32 RGB faces: the shared aligned_hq set if present, else the bundled ones."""
    paths = sorted(SHARED.glob("*.*")) if SHARED.is_dir() else []
    source = "shared/faces/aligned_hq"
    if not paths:
        paths, source = sorted(BUNDLED.glob("*.png")), "tests/data/faces (enlarged)"
    faces = []
    for p in paths:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        interp = cv2.INTER_AREA if bgr.shape[0] >= size else cv2.INTER_CUBIC
        rgb = cv2.resize(bgr, (size, size), interpolation=interp)[:, :, ::-1].astype(np.float32) / 255
        faces.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1))
    return torch.stack(faces), source


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a.double() - b.double()) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-20))


def _seeds(n: int) -> list[int]:
    return [derive_seed(0, "bench", str(i)) for i in range(n)]


def _cpu_chunk(chunk: tuple[np.ndarray, list[int]]) -> int:
    images, seeds = chunk
    pipe = load_preset(PRESET)
    for img, seed in zip(images, seeds, strict=True):
        pipe(torch.from_numpy(img)[None], seed)
    return len(seeds)


def _init_worker() -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def bench_cpu(images: torch.Tensor, workers: int) -> float:
    """Seconds to degrade all images with the CPU backend in ``workers`` processes (1 thread each)."""
    arrays = images.numpy()
    seeds = _seeds(len(arrays))
    if workers == 1:
        threads = cv2.getNumThreads(), torch.get_num_threads()
        _init_worker()
        try:
            _cpu_chunk((arrays[:1], seeds[:1]))  # warm-up
            start = time.perf_counter()
            _cpu_chunk((arrays, seeds))
            return time.perf_counter() - start
        finally:
            cv2.setNumThreads(threads[0])
            torch.set_num_threads(threads[1])
    step = -(-len(arrays) // (4 * workers))  # a few chunks per worker to balance
    chunks = [(arrays[i : i + step], seeds[i : i + step]) for i in range(0, len(arrays), step)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
        list(pool.map(_cpu_chunk, [(arrays[:1], seeds[:1])] * workers))  # start and warm the workers
        start = time.perf_counter()
        list(pool.map(_cpu_chunk, chunks))
        return time.perf_counter() - start


def bench_torch(images: torch.Tensor, device: str, batch: int) -> float:
    """Seconds to degrade all images with the torch backend in batches (sampling included)."""
    pipe = load_preset(PRESET)
    seeds = _seeds(len(images))
    data = images.to(device)
    pipe(data[:batch], seeds[:batch], backend="torch")  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(data), batch):
        pipe(data[i : i + batch], seeds[i : i + batch], backend="torch")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def section_speed(faces: torch.Tensor, n: int) -> None:
    images = faces[torch.arange(n) % len(faces)].contiguous()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"## speed: {PRESET}, {n} faces at 512x512, sample + apply, no file I/O")
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load:.2f}")
    rows = []
    t1 = bench_cpu(images, 1)
    rows.append(("cpu backend, 1 worker (1 thread)", t1, ""))
    rows.append(("cpu backend, 2 workers (1 thread each)", bench_cpu(images, 2), ""))
    for threads in (1, torch.get_num_threads()):
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            rows.append((f"torch backend, cpu, batch 16, {threads} thread(s)", bench_torch(images, "cpu", 16), ""))
        finally:
            torch.set_num_threads(old)
    if torch.cuda.is_available():
        big = images[torch.arange(max(n, 256)) % n].contiguous()
        t = bench_torch(big, "cuda", 64) * n / len(big)
        gbps = 2 * big[:n].numel() * 4 / t / 1e9  # float32 images read and written
        rows.append((f"torch backend, {torch.cuda.get_device_name()}, batch 64", t, f"{gbps:.2f} GB/s"))
    else:
        print("(no CUDA device: the GPU row is not measured)")
    print("| setup | faces/s | vs cpu 1 worker | note |")
    print("|---|---|---|---|")
    for name, t, note in rows:
        print(f"| {name} | {n / t:.1f} | {t1 / t:.2f}x | {note} |")
    print()


_ISO = {"kernel_size": 41, "kernel_type": "iso", "sigma_x": 2.0, "sigma_y": 2.0, "rotation": 0.0}
_ANISO = {"kernel_size": 41, "kernel_type": "aniso", "rotation": 0.6}
_JITTER = {"brightness": 1.2, "contrast": 0.8, "saturation": 1.3, "hue": 0.05}
AGREEMENT_CASES = [  # (op, description, params)
    ("gaussian_blur", "iso, sigma 2, kernel 41", _ISO),
    ("gaussian_blur", "aniso, sigma 3 / 7, rotation 0.6", {**_ANISO, "sigma_x": 3.0, "sigma_y": 7.0}),
    ("generalized_blur", "iso, sigma 2, beta 0.7", {**_ISO, "beta": 0.7}),
    ("plateau_blur", "aniso, sigma 1 / 3, beta 1.5", {**_ANISO, "sigma_x": 1.0, "sigma_y": 3.0, "beta": 1.5}),
    ("downsample", "scale 4.3, bilinear", {"scale": 4.3, "interpolation": "bilinear"}),
    ("downsample", "scale 4.3, bicubic", {"scale": 4.3, "interpolation": "bicubic"}),
    ("downsample", "scale 4.3, area", {"scale": 4.3, "interpolation": "area"}),
    ("downsample", "scale 0.8, area (enlarging)", {"scale": 0.8, "interpolation": "area"}),
    ("resize", "119 -> 512, bilinear", {"size": [512, 512], "interpolation": "bilinear"}),
    ("gaussian_noise", "sigma 15, per channel", {"sigma": 15.0, "gray": False, "seed": 3}),
    ("poisson_noise", "scale 1, peak 255, gray", {"scale": 1.0, "gray": True, "seed": 3, "peak": 255.0}),
    ("jpeg", "quality 30", {"quality": 30}),
    ("jpeg", "quality 60", {"quality": 60}),
    ("jpeg", "quality 90", {"quality": 90}),
    (
        "color_jitter",
        "b 1.2, c 0.8, s 1.3, h 0.05",
        {**_JITTER, "order": ["hue", "contrast", "brightness", "saturation"]},
    ),
    ("color_shift", "+10, -5, +3 (/255)", {"shift": [10.0, -5.0, 3.0]}),
    ("grayscale", "", {}),
]


def _fmt(values: torch.Tensor) -> str:
    lo, mean = float(values.min()), float(values.mean())
    return "identical" if lo >= 200 else f"{lo:.1f} / {mean:.1f}"


def section_agreement(faces: torch.Tensor, n_records: int) -> None:
    print(f"## agreement: PSNR (dB) between the cpu and torch backends, min / mean over {len(faces)} faces")
    print("| op | params | PSNR |")
    print("|---|---|---|")
    small = apply_op("downsample", faces, {"scale": 4.3, "interpolation": "bilinear"}, "cpu")
    for op, label, params in AGREEMENT_CASES:
        src = small if op == "resize" else faces
        a, b = apply_op(op, src, params, "cpu"), apply_op(op, src, params, "torch")
        print(f"| {op} | {label} | {_fmt(psnr(a, b))} |")
    for name in ("celeba-test", "codeformer-train"):
        pipe = load_preset(name)
        scores, same = [], 0
        for k in range(n_records):
            records = [pipe.sample(derive_seed(k, "agreement", str(i))) for i in range(len(faces))]
            a, b = pipe.apply(faces, records, "cpu"), pipe.apply(faces, records, "torch")
            scores.append(psnr(a, b))
            same += sum(torch.equal(a[i], b[i]) for i in range(len(faces)))
        allv = torch.cat(scores)
        total = len(allv)
        print(f"| pipeline | {name}, {total} images (8-bit outputs; {same} identical) | {_fmt(allv)} |")
    print()


def section_severity(faces: torch.Tensor) -> None:
    print(f"## severity-scale: fixed parameters per level and mean PSNR (dB) to GT over {len(faces)} faces")
    print("| severity | blur sigma | downsample | noise sigma | JPEG quality | PSNR cpu | PSNR torch |")
    print("|---|---|---|---|---|---|---|")
    for sev in ["none", 0, 1, 2, 3, 4, 0.5]:
        pipe = load_preset("severity-scale", sev)
        seeds = [derive_seed(0, "severity", str(i), sev) for i in range(len(faces))]
        records = [pipe.sample(s) for s in seeds]
        ops = {o["id"]: o["params"] for o in records[0]["ops"]}
        cols = (
            ["-"] * 4
            if not ops
            else [
                f"{ops['blur']['sigma_x']:g}",
                f"{ops['downsample']['scale']:g}",
                f"{ops['noise']['sigma']:g}",
                f"{ops['jpeg']['quality']}",
            ]
        )
        cpu = float(psnr(pipe.apply(faces, records, "cpu"), faces).mean())
        tch = float(psnr(pipe.apply(faces, records, "torch"), faces).mean())
        shown = ["inf" if v >= 200 else f"{v:.2f}" for v in (cpu, tch)]
        print(f"| {sev} | {' | '.join(cols)} | {shown[0]} | {shown[1]} |")
    for name in ("celeba-test", "codeformer-train"):
        pipe = load_preset(name)
        values = [
            float(psnr(pipe(faces, [derive_seed(k, "severity", str(i)) for i in range(len(faces))])[0], faces).mean())
            for k in range(4)
        ]
        print(f"| ({name}, for reference) | random | random | random | random | {np.mean(values):.2f} | |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="faces per speed measurement")
    parser.add_argument("--faces", type=int, default=12, help="faces for the agreement and severity sections")
    parser.add_argument("--records", type=int, default=4, help="records per face for pipeline agreement")
    parser.add_argument("--sections", default="speed,agreement,severity")
    args = parser.parse_args()
    faces, source = load_faces()
    print(f"faces: {len(faces)} from {source}, 512x512; torch {torch.__version__}, OpenCV {cv2.__version__}")
    print()
    sections = set(args.sections.split(","))
    if "speed" in sections:
        section_speed(faces, args.images)
    if "agreement" in sections:
        section_agreement(faces[: args.faces], args.records)
    if "severity" in sections:
        section_severity(faces[: args.faces])


if __name__ == "__main__":
    main()
