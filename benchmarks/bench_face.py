"""Face analysis throughput on the CPU: faces per second for detection, 68 landmarks, the descriptor and head pose
(dlib backend), each against the raw library call it wraps, plus RetinaFace detection and the GT landmark memo.

    python benchmarks/bench_face.py [--faces 8] [--repeats 3] [--no-retinaface] [--json PATH]

Faces: the real aligned 512x512 faces of tests/data/metrics/gt (uint8 RGB, decoded once, not timed), repeated to
--faces. Every stage is timed over all faces, best of --repeats passes, after one untimed warm-up call. Stages and
their baselines (measured back to back in this run, so the ratio holds on a shared machine; absolute faces/s do not):

- detection: `DlibBackend.detect(img, upsample=0)` (HOG) against `dlib.get_frontal_face_detector()(img, 0)`;
- landmarks: `DlibBackend.landmarks(img, box, 68)` against `shape_predictor_68(img, rect)` in the same box;
- descriptor: `DlibBackend.descriptor(img, box)` against `compute_face_descriptor(img, sp5(img, rect), 0, 0.25)`;
- pose: `cfbench.face.pose.head_pose(landmarks68)` against a bare `cv2.solvePnP` of the same six points (no
  initial guess, no angle extraction);
- RetinaFace ResNet-50 detection at 512x512 (`cfbench.face.retinaface`, seeded random weights: the time does not
  depend on their values) against the dlib HOG detection of the detection row;
- lmd[dlib] over a sweep of 5 w values (the GT repeated 5 times, as the runner scores it): with the GT landmark memo
  (`cfbench.metrics.gt_landmarks`) against the same metric with the memo emptied before every GT image.

Ratio = baseline time / cfbench time: above 1, cfbench is faster; about 1, its wrapper costs nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FACES = ROOT / "tests" / "data" / "metrics" / "gt"
SWEEP_W = 5


def _best(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _faces(n: int) -> list[np.ndarray]:
    files = sorted(FACES.glob("*.png"))
    imgs = [np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1]) for p in files]
    return [imgs[i % len(imgs)] for i in range(n)]


def dlib_rows(faces: list[np.ndarray], repeats: int) -> list[dict]:
    import dlib

    from cfbench import weights
    from cfbench.face import get_backend
    from cfbench.face.pose import MODEL_INDICES, MODEL_POINTS, head_pose

    backend = get_backend("dlib")
    raw_det = dlib.get_frontal_face_detector()
    raw_sp68 = dlib.shape_predictor(str(weights.require("dlib_shape_predictor_68")))
    raw_sp5 = dlib.shape_predictor(str(weights.require("dlib_shape_predictor_5")))
    raw_rec = dlib.face_recognition_model_v1(str(weights.require("dlib_face_recognition_resnet")))
    boxes = [backend.detect(f, 0)[0] for f in faces]
    rects = [dlib.rectangle(round(b.x1), round(b.y1), round(b.x2), round(b.y2)) for b in boxes]
    landmarks = [backend.landmarks(f, b, 68) for f, b in zip(faces, boxes, strict=True)]

    def pnp_only() -> None:
        for f, lm in zip(faces, landmarks, strict=True):
            h, w = f.shape[:2]
            camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
            cv2.solvePnP(MODEL_POINTS, lm[list(MODEL_INDICES)], camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)

    pairs = {
        "detection (HOG, upsample 0)": (
            lambda: [backend.detect(f, 0) for f in faces],
            lambda: [raw_det(f, 0) for f in faces],
            "dlib detector(img, 0)",
        ),
        "landmarks (68 points)": (
            lambda: [backend.landmarks(f, b, 68) for f, b in zip(faces, boxes, strict=True)],
            lambda: [raw_sp68(f, r) for f, r in zip(faces, rects, strict=True)],
            "dlib shape_predictor_68",
        ),
        "descriptor (128-D)": (
            lambda: [backend.descriptor(f, b) for f, b in zip(faces, boxes, strict=True)],
            lambda: [
                raw_rec.compute_face_descriptor(f, raw_sp5(f, r), 0, 0.25) for f, r in zip(faces, rects, strict=True)
            ],
            "dlib sp5 + compute_face_descriptor",
        ),
        "pose (solvePnP)": (
            lambda: [head_pose(lm, f.shape[:2]) for f, lm in zip(faces, landmarks, strict=True)],
            pnp_only,
            "bare cv2.solvePnP",
        ),
    }
    rows = []
    for stage, (ours, base, base_name) in pairs.items():
        t_ours, t_base = _best(ours, repeats), _best(base, repeats)
        rows.append(_row(stage, len(faces), t_ours, base_name, t_base))
    return rows


def _row(stage: str, n: int, t_ours: float, baseline: str, t_base: float) -> dict:
    return {
        "stage": stage,
        "faces_per_s": n / t_ours,
        "ms_per_face": 1000 * t_ours / n,
        "baseline": baseline,
        "baseline_faces_per_s": n / t_base,
        "ratio": t_base / t_ours,
    }


def retinaface_row(faces: list[np.ndarray], repeats: int) -> dict:
    from cfbench.face import get_backend
    from cfbench.face.retinaface import RetinaFaceDetector, RetinaFaceNet

    torch.manual_seed(0)
    det = RetinaFaceDetector(state_dict=RetinaFaceNet().state_dict())
    hog = get_backend("dlib")
    subset = faces[: max(1, len(faces) // 4)]  # a ResNet-50 at 512x512 is slow on a CPU
    t_ours = _best(lambda: [det.detect(f) for f in subset], repeats)
    t_base = _best(lambda: [hog.detect(f, 0) for f in subset], repeats)
    return _row("RetinaFace R50 detection (seeded)", len(subset), t_ours, "dlib HOG detect", t_base)


def memo_row(faces: list[np.ndarray], repeats: int) -> dict:
    from cfbench.metrics.gt_landmarks import GtMemo
    from cfbench.metrics.registry import get_metric

    gt = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in faces[:4]])
    gt_k = gt.repeat(SWEEP_W, 1, 1, 1)
    pred_k = torch.roll(gt_k, 2, dims=3)
    with_memo = get_metric("lmd[dlib]").build()
    without = get_metric("lmd[dlib]").build()
    without.backend._cache.clear()

    def no_memo() -> None:
        for i in range(len(gt_k)):  # what the metric costs when every GT image is analysed again
            without.gt_memo = GtMemo(without.gt_memo.width)
            without.backend._cache.clear()
            without(pred_k[i : i + 1], gt_k[i : i + 1])

    def memo() -> None:
        with_memo.gt_memo = GtMemo(with_memo.gt_memo.width)  # the memo starts empty in each pass
        with_memo.backend._cache.clear()
        with_memo(pred_k, gt_k)

    t_ours, t_base = _best(memo, repeats), _best(no_memo, repeats)
    return _row(f"lmd[dlib] pairs, {SWEEP_W} w values, GT memo", len(gt_k), t_ours, "GT analysed per w", t_base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-retinaface", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    faces = _faces(args.faces)
    rows = dlib_rows(faces, args.repeats)
    if not args.no_retinaface:
        rows.append(retinaface_row(faces, args.repeats))
    rows.append(memo_row(faces, args.repeats))
    print(f"{len(faces)} faces, 512x512, CPU, torch threads {torch.get_num_threads()}, best of {args.repeats}\n")
    print("| stage | cfbench faces/s | ms/face | baseline | baseline faces/s | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['stage']} | {r['faces_per_s']:.1f} | {r['ms_per_face']:.1f} | {r['baseline']} | "
            f"{r['baseline_faces_per_s']:.1f} | {r['ratio']:.2f}x |"
        )
    if args.json:
        meta = {"date": datetime.date.today().isoformat(), "machine": platform.platform(), "torch": torch.__version__}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
