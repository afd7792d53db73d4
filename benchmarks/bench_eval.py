"""`cfbench eval` against the naive pipeline, on the same faces, w values and metrics, in one run.

    /work/venv/bin/python benchmarks/bench_eval.py [--dataset demo] [--severity 2] [--faces 4] [--w 0:1:0.25]
        [--metrics psnr,ssim,niqe] [--checkpoint codeformer_tiny] [--batch-size 4] [--device cpu]
        [--seeded-weights] [--threads N] [--json PATH]

The issue's setting, 16 faces and 11 w values (the bundled `demo` set has 8 faces, so use a folder of GT faces):

    /work/venv/bin/python benchmarks/bench_eval.py --dataset folder:../shared/faces/aligned_hq --faces 16 --w 0:1:0.1

Naive: what the official inference script followed by separate metric scripts does. The LQ faces are synthesized
and written as PNG (with their GT) once; then, for every w (one run of the inference script each) and every face,
the LQ file is read, the full model runs (`net(x, w=w, adain=True)`, encoder and transformer included), and the
restored face is written as PNG; then every metric (one script each) reads the files again, one image at a time,
per w folder, with the same cfbench metric implementations called on one image (FID: pytorch-fid style, features of
every restored and every GT image of a folder, then the distance per w). So only the pipeline differs.

Ours: `FidelityWeightSweep` (what `cfbench eval` runs) with the same config, into a temporary run directory: one
encode per face, decodes of up to --batch-size images covering all w values, metrics on the restored batch in
memory, FID features per w group with the GT statistics computed once, the results store (and whatever else the
runner does, e.g. GT head pose). Its model time is the `model_ms_per_face` the runner records; its metric time is
timed by wrapping the sweep's per-image scoring and the FID features and distance; GT head pose is timed too.

Both run in one process after the same untimed warm-up (one forward and one call of every metric), with an empty
temporary CFBENCH_HOME (its `weights/` links to the real one, so installed weights count; the GT feature cache starts
empty). Default metrics: psnr, ssim, niqe, plus lpips[vgg] and fid when their weights are present; --seeded-weights
puts seeded random LPIPS/Inception weights in a temporary TORCH_HOME (bench_metrics.py) so they run offline (the time
does not depend on the values). The per-image values of both pipelines are compared.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import host_description, temporary_homes  # noqa: E402  (a sibling script, not a package)

BASE_METRICS = ("psnr", "ssim", "niqe")
OPTIONAL_METRICS = ("lpips[vgg]", "fid")  # included when their weights are present
FULL_COMMAND = (
    "/work/venv/bin/python benchmarks/bench_eval.py --dataset folder:../shared/faces/aligned_hq --faces 16 --w 0:1:0.1"
)


class Timer:
    """Seconds per category, summed over `with timer("name"):` blocks (CUDA synchronised at both ends)."""

    def __init__(self, device: str) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cuda = device.startswith("cuda")

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds[part] += time.perf_counter() - start


def available_metrics() -> list[str]:
    """psnr, ssim, niqe, and the optional metrics whose weights are found (in the current homes)."""
    from cfbench import weights
    from cfbench.metrics import get_metric

    extra = [n for n in OPTIONAL_METRICS if all(weights.locate(w) for w in get_metric(n).weights)]
    return [*BASE_METRICS, *extra]


def sweep_config(args, metrics: list[str], run_dir: Path):
    from cfbench.eval.config import load_sweep_config

    return load_sweep_config(
        None,
        dataset=args.dataset,
        data_root=args.data_root,
        w=args.w,
        severity=args.severity,
        checkpoints=[args.checkpoint],
        metrics=",".join(metrics),
        limit=args.faces,
        run_dir=str(run_dir),
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def metric_options(cfg) -> dict[str, Any]:
    """The options FidelityWeightSweep builds its metrics with (imported late: cfbench reads its homes at import)."""
    from cfbench.eval.requirements import metric_options as sweep_metric_options

    return sweep_metric_options(cfg)


def warm_up(cfg, device: str) -> None:
    """One forward and one call of every metric, untimed, so neither pipeline pays first-call costs; also fills the
    dataset's resize cache (faces that are not 512x512) for both."""
    from cfbench.data import get_dataset, with_severity
    from cfbench.metrics import DistributionMetric, build_metrics, parse_metric_list
    from cfbench.restoration import load_restorer

    base = get_dataset(cfg.dataset, cfg.data_root)
    for i in range(min(cfg.limit, len(base))):
        base.load(i)
    sample = with_severity(base, cfg.severity, seed=cfg.seed).load(0)
    net = load_restorer(cfg.checkpoints[0], device)
    lq, gt = sample.lq[None].to(device), sample.gt[None].to(device)
    built, _ = build_metrics(parse_metric_list(cfg.metrics), device, metric_options(cfg))
    with torch.inference_mode():
        out = (net(lq * 2 - 1, w=0.5, adain=True)[0].clamp(-1, 1) + 1) / 2
        for m in built:
            if isinstance(m.metric, DistributionMetric):
                m.metric.features(out)
            else:
                m.metric(out, gt if m.spec.needs_gt else None)


def naive_pipeline(cfg, root: Path, device: str) -> dict[str, Any]:
    """Per w and per face a full forward from and to PNG files, then each metric separately from the files."""
    from cfbench.data import get_dataset, with_severity
    from cfbench.eval.spec import parse_w_spec
    from cfbench.imageio import read_image, write_image
    from cfbench.metrics import DistributionMetric, FeatureStatistics, build_metrics, parse_metric_list
    from cfbench.restoration import load_restorer

    timer = Timer(device)
    ws = parse_w_spec(cfg.w)
    start = time.perf_counter()
    with timer("setup"):  # each script loads its model once
        data = with_severity(get_dataset(cfg.dataset, cfg.data_root), cfg.severity, seed=cfg.seed)
        n = min(cfg.limit, len(data))
        net = load_restorer(cfg.checkpoints[0], device)
        built, skipped = build_metrics(parse_metric_list(cfg.metrics), device, metric_options(cfg))
    lq_dir, gt_dir, out_dir = root / "lq", root / "gt", root / "restored"
    ids = []
    for i in range(n):  # the degradation script: LQ (and GT) files
        with timer("data"):
            s = data.load(i)
        with timer("io"):
            write_image(lq_dir / f"{s.id}.png", s.lq)
            write_image(gt_dir / f"{s.id}.png", s.gt)
        ids.append(s.id)
    for w in ws:  # the inference script, once per w
        for image_id in ids:
            with timer("io"):
                x = read_image(lq_dir / f"{image_id}.png")[None].to(device)
            with timer("model"), torch.inference_mode():
                out = net(x * 2 - 1, w=w, adain=True)[0]
                restored = (out.clamp(-1, 1) + 1) / 2
            with timer("io"):
                write_image(out_dir / f"w{w:g}" / f"{image_id}.png", restored[0].cpu())
    values: dict[tuple[str, float], dict[str, float]] = defaultdict(dict)
    groups: dict[float, dict[str, float]] = defaultdict(dict)
    for m in built:  # one metric script after the other, per w folder, one image at a time
        for w in ws:
            folder = out_dir / f"w{w:g}"
            dist = isinstance(m.metric, DistributionMetric)
            if dist:
                pred_stats, gt_stats = FeatureStatistics(m.metric.dim), FeatureStatistics(m.metric.dim)
            for image_id in ids:
                with timer("io"):
                    pred = read_image(folder / f"{image_id}.png", require_rgb=True)[None]
                    needs_gt = dist or m.spec.needs_gt
                    gt = read_image(gt_dir / f"{image_id}.png", require_rgb=True)[None] if needs_gt else None
                with timer("metrics"), torch.inference_mode():
                    if dist:
                        pred_stats.add(m.metric.features(pred))
                        gt_stats.add(m.metric.features(gt))
                    else:
                        values[image_id, w][m.column] = float(m.metric(pred, gt)[0])
            if dist:
                with timer("metrics"):
                    groups[w][m.column] = m.metric.distance(pred_stats, gt_stats.mean, gt_stats.cov)
    total = time.perf_counter() - start
    return {"seconds": total, "parts": dict(timer.seconds), "values": values, "groups": groups, "skipped": skipped}


def our_pipeline(cfg) -> dict[str, Any]:
    """FidelityWeightSweep with `cfg`; metric time from the wrapped scoring and FID features and distance."""
    from cfbench.eval.runner import FidelityWeightSweep
    from cfbench.metrics import DistributionMetric

    timer = Timer(cfg.device)
    start = time.perf_counter()
    sweep = FidelityWeightSweep(cfg, log=lambda *_a, **_k: None)
    score = sweep._score

    def timed_score(*a, **k):
        with timer("metrics"):
            return score(*a, **k)

    sweep._score = timed_score  # instance attribute: the runner calls self._score
    for m in sweep.metrics:
        if isinstance(m.metric, DistributionMetric):
            features = m.metric.features

            def timed_features(images, features=features):
                with timer("metrics"):
                    return features(images)

            m.metric.features = timed_features
            distance = m.metric.distance

            def timed_distance(*a, distance=distance, **k):
                with timer("metrics"):
                    return distance(*a, **k)

            m.metric.distance = timed_distance
    if hasattr(sweep, "_gt_pose"):  # head pose of the GT faces (stored for the side-face report): naive has none
        gt_pose = sweep._gt_pose

        def timed_pose(*a, **k):
            with timer("pose"):
                return gt_pose(*a, **k)

        sweep._gt_pose = timed_pose
    result = sweep.run()
    total = time.perf_counter() - start
    rows = pd.read_parquet(result.run_dir / "results.parquet")
    groups = pd.read_parquet(result.run_dir / "groups.parquet")
    model = float(rows["model_ms_per_face"].sum()) / 1000 / len(sweep.ws)  # each face's rows repeat it per w
    parts = {"model": model, "metrics": timer.seconds["metrics"], "pose": timer.seconds["pose"]}
    return {
        "seconds": total,
        "parts": parts,
        "rows": rows,
        "groups": groups,
        "skipped": result.skipped,
    }


def consistency_checks(cfg, root: Path, device: str, naive: dict[str, Any]) -> dict[str, Any]:
    """Untimed: where a difference between the pipelines comes from.

    scoring: naive's own restored PNGs scored the cfbench eval way (batches of batch_size x k images in memory, as
    the runner's `_score`), against naive's per-image values from files: isolates the metric pipeline.
    model: the same face and w decoded alone and in a batch of 2: the float32 output changes with the batch size
    (different CPU kernels), which moves some 8-bit values by one level and so the metrics.
    """
    from cfbench.data import get_dataset, with_severity
    from cfbench.eval.runner import quantize
    from cfbench.eval.spec import parse_w_spec
    from cfbench.imageio import read_image
    from cfbench.metrics import PerImageMetric, build_metrics, parse_metric_list
    from cfbench.restoration import load_restorer

    ws = parse_w_spec(cfg.w)
    ids = sorted({image_id for image_id, _ in naive["values"]})
    built, _ = build_metrics(parse_metric_list(cfg.metrics), device, metric_options(cfg))
    per_image = [m for m in built if isinstance(m.metric, PerImageMetric)]
    scoring: dict[str, float] = {m.column: 0.0 for m in per_image}
    for b in range(0, len(ids), cfg.batch_size):
        chunk = ids[b : b + cfg.batch_size]
        pred = torch.stack([read_image(root / "restored" / f"w{w:g}" / f"{i}.png") for w in ws for i in chunk])
        gt = torch.stack([read_image(root / "gt" / f"{i}.png") for _ in ws for i in chunk])
        with torch.inference_mode():
            for m in per_image:
                got = m.metric(pred.to(device), gt.to(device) if m.spec.needs_gt else None).cpu()
                want = torch.tensor([naive["values"][i, w][m.column] for w in ws for i in chunk], dtype=torch.float64)
                scoring[m.column] = max(scoring[m.column], float((got - want).abs().max()))
    data = with_severity(get_dataset(cfg.dataset, cfg.data_root), cfg.severity, seed=cfg.seed)
    lq = data.load(0).lq[None].to(device) * 2 - 1
    net = load_restorer(cfg.checkpoints[0], device)
    w = ws[-1]
    with torch.inference_mode():
        alone = net(lq, w=w, adain=True)[0]
        state = net.encode(lq)
        pair = net.decode(state.repeat(2), torch.tensor([w, w], device=lq.device), adain=True)[:1]
        raw = float((alone - pair).abs().max())
        flips = int((quantize((alone.clamp(-1, 1) + 1) / 2) != quantize((pair.clamp(-1, 1) + 1) / 2)).sum())
    return {
        "scoring_max_abs_diff": scoring,
        "model_batch2_vs_1": {"w": w, "raw_max_abs_diff": raw, "values_differing": flips, "values": alone.numel()},
    }


def compare(naive: dict[str, Any], ours: dict[str, Any], columns: list[str]) -> dict[str, dict[str, Any]]:
    """Max abs difference per metric column (per image x w), and per FID group."""
    rows = ours["rows"].set_index(["image_id", "w"])
    out: dict[str, dict[str, Any]] = {}
    for col in columns:
        diffs = []
        for (image_id, w), vals in naive["values"].items():
            a, b = vals[col], float(rows.loc[(image_id, w), col])
            diffs.append(0.0 if a == b else abs(a - b))
        out[col] = {"max_abs_diff": max(diffs), "compared": len(diffs), "exact": sum(d == 0 for d in diffs)}
    groups = ours["groups"].set_index("w")
    for w, per in naive["groups"].items():
        for col, value in per.items():
            entry = out.setdefault(col, {"max_abs_diff": 0.0, "compared": 0, "exact": 0})
            d = abs(value - float(groups.loc[w, col]))
            entry["max_abs_diff"] = max(entry["max_abs_diff"], d)
            entry["compared"] += 1
            entry["exact"] += d == 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="demo", help="cfbench dataset (demo, folder:PATH, ...)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--severity", default="2", help="one severity")
    parser.add_argument("--faces", type=int, default=4)
    parser.add_argument("--w", default="0:1:0.25", help="w spec as for cfbench eval")
    parser.add_argument("--metrics", default=None, help="default: psnr,ssim,niqe (+lpips[vgg],fid if weights exist)")
    parser.add_argument("--checkpoint", default="codeformer_tiny")
    parser.add_argument("--batch-size", type=int, default=4, help="cfbench eval's faces per forward")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeded-weights", action="store_true", help="seeded random LPIPS/FID weights (offline)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-checks", action="store_true", help="skip the untimed consistency checks")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if "," in args.severity:
        parser.error("--severity takes one severity")

    from cfbench.devices import pick_device
    from cfbench.metrics import PerImageMetric, build_metrics, parse_metric_list
    from cfbench.weights import weights_dir

    args.device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    host = host_description()
    with temporary_homes(args.seeded_weights, link_weights_from=weights_dir()) as tmp:
        metrics = [n.strip() for n in args.metrics.split(",")] if args.metrics else available_metrics()
        cfg = sweep_config(args, metrics, tmp / "run")
        from cfbench.data import get_dataset
        from cfbench.eval.spec import parse_w_spec

        n_data = len(get_dataset(cfg.dataset, cfg.data_root))
        if args.faces > n_data:
            parser.error(f"--faces {args.faces}: {cfg.dataset} has {n_data} faces; for more: {FULL_COMMAND}")
        ws = parse_w_spec(cfg.w)
        work = args.faces * len(ws)
        print(f"host: {host}")
        print(
            f"setting: {cfg.dataset}, severity {cfg.severity}, {args.faces} faces x {len(ws)} w = {work} restorations,"
            f" metrics {', '.join(metrics)}, checkpoint {args.checkpoint}, device {args.device}, eval batch "
            f"{cfg.batch_size}" + (", seeded LPIPS/FID weights" if args.seeded_weights else "")
        )
        built, _ = build_metrics(parse_metric_list(cfg.metrics), "cpu", metric_options(cfg))
        per_image_columns = [m.column for m in built if isinstance(m.metric, PerImageMetric)]
        del built
        warm_up(cfg, args.device)
        naive = naive_pipeline(cfg, tmp / "naive", args.device)
        ours = our_pipeline(cfg)
        agreement = compare(naive, ours, per_image_columns)
        checks = None if args.no_checks else consistency_checks(cfg, tmp / "naive", args.device, naive)

    ratio = naive["seconds"] / ours["seconds"]
    print()
    print("| pipeline | seconds | faces x w per s | model s | metrics s | other s (data, I/O, setup, store) |")
    print("|---|---|---|---|---|---|")
    report_rows = []
    for label, res in (
        ("naive (per image, per w, via PNG files)", naive),
        ("cfbench eval (FidelityWeightSweep)", ours),
    ):
        model, met = res["parts"].get("model", 0.0), res["parts"].get("metrics", 0.0)
        other = res["seconds"] - model - met
        print(
            f"| {label} | {res['seconds']:.1f} | {work / res['seconds']:.2f} | {model:.1f} | {met:.1f} | {other:.1f} |"
        )
        report_rows.append(
            {
                "pipeline": label,
                "seconds": res["seconds"],
                "faces_x_w_per_s": work / res["seconds"],
                "model_s": model,
                "metrics_s": met,
                "other_s": other,
                "parts": res["parts"],
            }
        )
    part_ratio = {
        k: naive["parts"].get(k, 0.0) / ours["parts"][k] if ours["parts"][k] else None for k in ("model", "metrics")
    }
    print()
    print(
        f"speed-up, naive / cfbench eval: {ratio:.2f}x overall; model {part_ratio['model']:.2f}x, metrics "
        f"{part_ratio['metrics']:.2f}x"
    )
    print()
    print("| metric | max abs diff, naive vs cfbench eval | values compared | identical |")
    print("|---|---|---|---|")
    for col, a in agreement.items():
        print(f"| {col} | {a['max_abs_diff']:.2e} | {a['compared']} | {a['exact']} |")
    if checks:
        diffs = ", ".join(f"{c} {v:.1e}" for c, v in checks["scoring_max_abs_diff"].items())
        mb = checks["model_batch2_vs_1"]
        print(
            f"- same images, scored as cfbench eval does (batched, in memory) vs per image from files: max abs diff "
            f"{diffs}"
        )
        print(
            f"- model: face 0 at w={mb['w']:g} decoded in a batch of 2 vs alone: output differs by up to "
            f"{mb['raw_max_abs_diff']:.1e} (on [-1, 1]), {mb['values_differing']} of {mb['values']} 8-bit values "
            "differ by one level; that, not the metric pipeline, is where the differences above come from"
        )
    if ours["parts"]["pose"]:
        print(
            f"- cfbench eval's 'other' includes {ours['parts']['pose']:.1f} s of GT head-pose estimation (not in naive)"
        )
    skipped = {**naive["skipped"], **ours["skipped"]}
    for name, why in skipped.items():
        print(f"- skipped {name}: {why}")
    print(f"\nthe issue's full setting: {FULL_COMMAND}")
    if args.json:
        report = {
            "benchmark": "bench_eval",
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": host,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "settings": {
                **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
                "metrics": metrics,
                "ws": list(ws),
                "restorations": work,
            },
            "pipelines": report_rows,
            "ratio_naive_over_cfbench": ratio,
            "ratio_by_part": part_ratio,
            "agreement": agreement,
            "consistency_checks": checks,
            "skipped": skipped,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
