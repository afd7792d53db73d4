"""Side-face failures: metrics binned by the GT head yaw that `cfbench eval` stored per image (``gt_yaw``, degrees,
from dlib landmarks + solvePnP; NaN when no face or no pose backend).

Bins of |yaw|: [0, 15), [15, 30), [30, 45), [45, 60), [60, inf) degrees; every face with a pose falls in exactly
one bin, faces without one are counted and listed separately. Per checkpoint, severity, w and bin: the number of
faces and the mean of every per-image metric. The drop from frontal to profile is the mean of the most profile
non-empty bin minus the frontal bin's (signed; its direction column says whether that is worse). The worst k
faces are ranked at the most severe severity by the mean over w of identity (lowest cosine / highest Deg) or, when
the run has no identity metric, LMD (highest).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cfbench.tabular import number
from reports.grid import any_image, image_grid
from reports.load import Run, order_severities
from reports.section import Figure, Section, Table
from reports.style import family, metric_panels, save_figure, slug, w_colors, wants_figures
from reports.tabular import ReportTable, write_table

EDGES = (0.0, 15.0, 30.0, 45.0, 60.0, math.inf)
LABELS = ("0-15", "15-30", "30-45", "45-60", ">60")
NO_POSE = "no pose"


def yaw_bin(yaw) -> pd.Series:
    """The |yaw| bin label of each value (NO_POSE for NaN)."""
    yaw = pd.Series(yaw, dtype=np.float64)
    binned = pd.cut(yaw.abs(), bins=list(EDGES), labels=list(LABELS), right=False)
    return binned.astype(object).where(yaw.notna(), NO_POSE)


def faces(run: Run) -> pd.DataFrame:
    """One row per image id: its yaw and bin (pose is of the GT face, so the same at every w and severity)."""
    if "gt_yaw" not in run.results.columns:
        per = run.results[["image_id"]].drop_duplicates().assign(gt_yaw=np.nan)
    else:
        per = run.results.groupby("image_id", sort=True)["gt_yaw"].first().reset_index()
    return per.assign(bin=yaw_bin(per["gt_yaw"]).to_numpy()).reset_index(drop=True)


def binned(run: Run) -> pd.DataFrame:
    """Per (checkpoint, severity, w, bin): n faces and per-metric means; every bin listed (n = 0 when empty)."""
    metrics = run.per_image_metrics
    bins = faces(run).set_index("image_id")["bin"]
    rows = run.results.assign(bin=run.results["image_id"].map(bins))
    rows = rows[rows["bin"] != NO_POSE]
    records = []
    sevs = order_severities(run.results["severity"])
    for ckpt in run.checkpoints:
        for sev in sevs:
            for w in run.ws:
                sub = rows[(rows.checkpoint == ckpt) & (rows.severity == sev) & (rows.w == w)]
                if not len(run.results[(run.results.checkpoint == ckpt) & (run.results.severity == sev)]):
                    continue
                for label in LABELS:
                    b = sub[sub["bin"] == label]
                    rec = {
                        "checkpoint": ckpt,
                        "severity": sev,
                        "w": float(w),
                        "|yaw| bin (deg)": label,
                        "n": int(b["image_id"].nunique()),
                    }
                    rec.update({m: float(b[m].mean()) if len(b) else math.nan for m in metrics})
                    records.append(rec)
    return pd.DataFrame.from_records(records)


def drops(run: Run, table: pd.DataFrame) -> pd.DataFrame:
    """Per (checkpoint, severity, w, metric): frontal (0-15) mean, the most profile non-empty bin and its mean,
    their difference, and whether that difference is worse (direction-aware)."""
    records = []
    for (ckpt, sev, w), block in table.groupby(["checkpoint", "severity", "w"], sort=False):
        filled = block[block["n"] > 0]
        if filled.empty:
            continue
        front, profile = filled.iloc[0], filled.iloc[-1]
        for m in run.per_image_metrics:
            diff = profile[m] - front[m]
            worse = (diff < 0) if run.directions[m] else (diff > 0)
            records.append(
                {
                    "checkpoint": ckpt,
                    "severity": sev,
                    "w": w,
                    "metric": m,
                    "frontal bin": front["|yaw| bin (deg)"],
                    "frontal": front[m],
                    "profile bin": profile["|yaw| bin (deg)"],
                    "profile": profile[m],
                    "profile - frontal": diff,
                    "worse at profile": bool(worse) if np.isfinite(diff) else None,
                }
            )
    return pd.DataFrame.from_records(records)


def rank_metric(run: Run) -> str | None:
    """The per-image metric worst faces are ranked by: identity (cosine, then Deg), else LMD."""
    cands = [m for f in ("identity_cos", "deg", "lmd") for m in run.directions if family(m) == f]
    cands = [m for m in cands if m in run.results.columns]
    return cands[0] if cands else None


def worst_faces(run: Run, ckpt: str, k: int) -> tuple[str, str | None, pd.DataFrame]:
    """(severity, ranking metric, the k worst images with their yaw and mean metric over w)."""
    sev = order_severities(run.results.loc[run.results.checkpoint == ckpt, "severity"])[-1]
    metric = rank_metric(run)
    sub = run.results[(run.results.checkpoint == ckpt) & (run.results.severity == sev)]
    if metric is None:
        return sev, None, sub.iloc[:0]
    per = sub.groupby("image_id").agg(
        score=(metric, "mean"), gt_yaw=("gt_yaw", "first") if "gt_yaw" in sub else (metric, "size")
    )
    per = per.dropna(subset=["score"]).sort_values("score", ascending=run.directions[metric], kind="mergesort")
    return sev, metric, per.head(k).reset_index()


def vs_yaw_figure(run: Run, table: pd.DataFrame, ckpt: str, sev: str):
    metrics = run.per_image_metrics
    sub = table[(table.checkpoint == ckpt) & (table.severity == sev)]
    colors = w_colors(run.ws)
    fig, axes = metric_panels(len(metrics))
    counts = sub.groupby("|yaw| bin (deg)", sort=False)["n"].first().reindex(list(LABELS))
    ticks = [f"{b}\nn={int(counts[b])}" for b in LABELS]
    for ax, m in zip(axes, metrics, strict=True):
        for w in run.ws:
            b = sub[sub.w == w].set_index("|yaw| bin (deg)").reindex(list(LABELS))
            ax.plot(range(len(LABELS)), b[m], "-o", color=colors[w], label=f"w = {w:g}")
        ax.set_xticks(range(len(LABELS)), ticks)
        ax.set_xlabel("|GT yaw| (degrees)")
        ax.set_ylabel(run.label(m))
    axes[0].legend(loc="best")
    fig.suptitle(f"{ckpt}, severity {sev}: metrics by head yaw (empty bins have no point)", fontsize=8)
    return fig


def report(run: Run, out_dir: str | os.PathLike, formats: Sequence[str], k: int = 4) -> Section:
    out_dir = Path(out_dir)
    section = Section("Side faces")
    per_face = faces(run)
    table = binned(run)
    arrows = {m: f"{m} {'↑' if up else '↓'}" for m, up in run.directions.items() if m in table.columns}
    t = ReportTable(
        table,
        "Metrics by |GT yaw| bin",
        "Mean per bin over the faces with a GT pose; n = faces in the bin; ↑ higher is better, ↓ lower is better.",
        headers=arrows,
    )
    section.tables.append(Table("side_face_bins", t, write_table(t, out_dir, "side_face_bins", formats)))
    d = drops(run, table)
    if len(d):
        t = ReportTable(
            d,
            "Frontal to profile",
            "profile - frontal: mean of the most profile non-empty bin minus the "
            "0-15 bin's (or the most frontal non-empty one).",
        )
        section.tables.append(
            Table("side_face_frontal_vs_profile", t, write_table(t, out_dir, "side_face_frontal_vs_profile", formats))
        )
    counts = per_face["bin"].value_counts()
    count_frame = pd.DataFrame(
        {"|yaw| bin (deg)": [*LABELS, NO_POSE], "faces": [int(counts.get(b, 0)) for b in (*LABELS, NO_POSE)]}
    )
    t = ReportTable(
        count_frame, "Faces per yaw bin", "Every face counted once; 'no pose' = the GT pose could not be estimated."
    )
    section.tables.append(Table("side_face_counts", t, write_table(t, out_dir, "side_face_counts", formats)))
    no_pose = per_face[per_face["bin"] == NO_POSE][["image_id"]]
    t = ReportTable(no_pose.reset_index(drop=True), "Faces without a GT pose", f"{len(no_pose)} face(s).")
    section.tables.append(Table("side_face_no_pose", t, write_table(t, out_dir, "side_face_no_pose", formats)))
    section.notes.append(
        f"{len(per_face)} faces: {len(per_face) - len(no_pose)} with a GT pose, {len(no_pose)} without"
        + (f" ({', '.join(no_pose['image_id'].tolist()[:20])})" if len(no_pose) else "")
        + "."
    )
    for ckpt in run.checkpoints:
        c = slug(ckpt)
        sev = order_severities(run.results.loc[run.results.checkpoint == ckpt, "severity"])[-1]
        draw = wants_figures(formats)
        if run.per_image_metrics and draw:
            stem = f"side_face_metrics_vs_yaw_{c}"
            fig = vs_yaw_figure(run, table, ckpt, sev)
            section.figures.append(
                Figure(
                    stem,
                    f"{ckpt}, severity {sev}: metrics per |yaw| bin and w.",
                    save_figure(fig, out_dir, stem, formats),
                )
            )
        sev, metric, worst = worst_faces(run, ckpt, k)
        if metric is None:
            section.notes.append(f"{ckpt}: no identity or LMD metric in the run, so no worst-face grid.")
            continue
        ids = worst["image_id"].tolist()
        t = ReportTable(
            worst.rename(columns={"score": f"mean {metric} over w"}),
            f"Worst {k} faces",
            f"{ckpt}, severity {sev}, ranked by the mean {metric} over w.",
        )
        section.tables.append(
            Table(f"side_face_worst_{c}", t, write_table(t, out_dir, f"side_face_worst_{c}", formats))
        )
        if not draw:
            continue
        if not any_image(run, ckpt, sev, ids, run.ws):
            section.notes.append(
                f"{ckpt}, severity {sev}: the run saved no images (run eval with --save-images), so no worst-face grid."
            )
            continue
        sub = run.results[(run.results.checkpoint == ckpt) & (run.results.severity == sev)].set_index(["image_id", "w"])
        text = {
            (i, w): f"{metric.split('[')[0]} {number(float(sub.loc[(i, w), metric]))}"  # as the tables write it
            for i in ids
            for w in run.ws
            if (i, w) in sub.index
        }
        yaw = worst.set_index("image_id")["gt_yaw"] if "gt_yaw" in worst else {}
        labels = [f"{i}\nyaw {yaw[i]:.0f}°" if i in yaw and np.isfinite(yaw[i]) else f"{i}\nyaw n/a" for i in ids]
        stem = f"side_face_worst_{c}"
        fig = image_grid(
            run, ckpt, sev, ids, run.ws, labels, text, f"{ckpt}, severity {sev}: worst {len(ids)} by {metric}"
        )
        section.figures.append(
            Figure(stem, f"{ckpt}: worst faces by {metric} (LQ | w | GT).", save_figure(fig, out_dir, stem, formats))
        )
    return section
