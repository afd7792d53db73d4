"""`cfbench eval` against the naive pipeline, on the same faces, w values and metrics, in one run.

    python benchmarks/bench_eval.py [--dataset demo] [--severity 2] [--faces 4] [--w 0:1:0.25]
        [--metrics psnr,ssim,niqe] [--checkpoint codeformer_tiny] [--batch-size 4] [--device cpu]
        [--seeded-weights] [--threads N] [--json PATH]

The issue's setting, 16 faces and 11 w values (the bundled `demo` set has 8 faces, so use a folder of GT faces):

    python benchmarks/bench_eval.py --dataset folder:../shared/faces/aligned_hq --faces 16 --w 0:1:0.1

Naive and ours: `cfbench.eval.naive` (the pipelines of `cfbench bench eval`): naive is the official inference script
once per w (a full forward per face, PNG written) followed by one metric script per metric and w folder (PNG read
back, the GT side recomputed); ours is `FidelityWeightSweep` into a temporary run directory, its model and metric
seconds taken from its manifest's `timings`. This script adds what the CLI command leaves out: temporary homes,
seeded metric weights, the agreement of the values and the consistency checks.

Both run in one process after the same untimed warm-up (one forward and one call of every metric), with an empty
temporary CFBENCH_HOME (its `weights/` links to the real one, so installed weights count; the GT feature cache starts
empty). Default metrics: psnr, ssim, niqe, plus lpips[vgg] and fid when their weights are present; --seeded-weights
puts seeded random LPIPS/Inception weights in a temporary TORCH_HOME (bench_metrics.py) so they run offline (the time
does not depend on the values). The per-image values of both pipelines are compared.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import host_description, temporary_homes  # noqa: E402  (a sibling script, not a package)

BASE_METRICS = ("psnr", "ssim", "niqe")
OPTIONAL_METRICS = ("lpips[vgg]", "fid")  # included when their weights are present
FULL_COMMAND = "python benchmarks/bench_eval.py --dataset folder:../shared/faces/aligned_hq --faces 16 --w 0:1:0.1"


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
        from cfbench.eval.naive import naive_pipeline, sweep_pipeline, warm_up

        warm_up(cfg, args.device)
        naive = naive_pipeline(cfg, tmp / "naive", args.device)
        ours = sweep_pipeline(cfg)
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
    print(f"- cfbench eval's wall time / its model time: {ours['wall_over_model']:.2f}x")
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
