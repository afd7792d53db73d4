"""Fidelity vs quality over the fidelity weight w: Pareto curves, metric-vs-w lines, severity x w heatmaps and
the summary of the best and the balanced w per severity.

Metrics come from the run's manifest with their directions. Fidelity metrics (first present of identity cosine,
Deg, LMD, PSNR, SSIM) are plotted against quality metrics (NIQE, FID, LPIPS). Per checkpoint and severity:

- a w is *Pareto-optimal* for a (fidelity, quality) pair when no other w of the same severity is at least as good
  on both and strictly better on one (direction-aware; w values with a missing value take no part);
- the *best w* of a metric is the w with the best mean (ties: all tied w, listed);
- the *balanced w* of a pair: both metrics min-max normalised over the severity's w values so that 1 is the best
  value and 0 the worst (a metric constant over w counts as 1), then the Pareto-optimal w closest (Euclidean) to
  the utopia point (1, 1); ties go to the smaller w.

Means are over the images of each group (per-image metrics, with the bootstrap interval of
`cfbench.eval.tables`); FID and other distribution metrics are the per-group values of groups.parquet.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cfbench.eval import tables as fq_tables
from cfbench.tabular import number, write_table_files
from reports.load import Run, order_severities, run_protocol_line
from reports.section import Figure, Section, Table
from reports.style import (
    LABEL_OFFSETS,
    figure,
    metric_panels,
    save_figure,
    set_title,
    severity_colors,
    severity_label,
    slug,
    wants_figures,
)
from reports.tabular import ReportTable, write_table


def pick(run: Run, role: str) -> list[str]:
    """The run's metric columns whose role (from their registry entry, recorded in the manifest) is `role`
    ("fidelity" or "quality"), in manifest order."""
    return [c for c in run.directions if run.role(c) == role]


def pareto_mask(x: Sequence[float], y: Sequence[float], x_higher: bool, y_higher: bool) -> np.ndarray:
    """True where the point (x[i], y[i]) is not dominated by another (NaN points are never Pareto-optimal)."""
    sx = np.asarray(x, np.float64) * (1 if x_higher else -1)  # now higher is better on both
    sy = np.asarray(y, np.float64) * (1 if y_higher else -1)
    ok = np.isfinite(sx) & np.isfinite(sy)
    mask = np.zeros(len(sx), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (sx >= sx[i]) & (sy >= sy[i]) & ((sx > sx[i]) | (sy > sy[i]))
        mask[i] = not dominated.any()
    return mask


def _normalise(v: np.ndarray, higher: bool) -> np.ndarray:
    """Min-max to [0, 1] with 1 = best; a constant (or single) finite value maps to 1."""
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return np.full_like(v, np.nan)
    lo, hi = finite.min(), finite.max()
    if hi == lo:
        return np.where(np.isfinite(v), 1.0, np.nan)
    n = (v - lo) / (hi - lo)
    return n if higher else 1.0 - n


def balanced_w(ws: Sequence[float], x: Sequence[float], y: Sequence[float], x_higher: bool, y_higher: bool) -> float:
    """The Pareto-optimal w closest to the utopia point after min-max normalisation (see the module docstring);
    NaN when no w has both values."""
    ws = np.asarray(ws, np.float64)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mask = pareto_mask(x, y, x_higher, y_higher)
    if not mask.any():
        return math.nan
    dist = np.hypot(1 - _normalise(x, x_higher), 1 - _normalise(y, y_higher))
    candidates = sorted((float(dist[i]), float(ws[i])) for i in np.flatnonzero(mask))
    return candidates[0][1]


def best_ws(ws: Sequence[float], values: Sequence[float], higher: bool) -> list[float]:
    """Every w whose value is the best finite value (a tie lists all)."""
    v = np.asarray(values, np.float64)
    if not np.isfinite(v).any():
        return []
    target = np.nanmax(v) if higher else np.nanmin(v)
    return [float(w) for w, x in zip(ws, v, strict=True) if x == target]


def _fmt_ws(ws: Sequence[float]) -> str:
    return ", ".join(f"{w:g}" for w in ws) if ws else "–"


def group_table(run: Run, n_boot: int = 1000, seed: int = 0) -> fq_tables.FidelityTable:
    """The per (checkpoint, severity, w) means and bootstrap intervals of `cfbench.eval.tables`, severities in
    their natural order."""
    table = fq_tables.build_table(run.results, run.groups, run.directions, n_boot=n_boot, seed=seed)
    frame = table.frame
    order = {s: i for i, s in enumerate(order_severities(frame["severity"]))}
    frame = frame.assign(_o=frame["severity"].map(order)).sort_values(["checkpoint", "_o", "w"], kind="mergesort")
    table.frame = frame.drop(columns="_o").reset_index(drop=True)
    table.caption = run_protocol_line(run)
    return table


def summary(run: Run, frame: pd.DataFrame) -> ReportTable:
    """Per checkpoint and severity: the best w of every metric, and the balanced w of every (fidelity, quality)
    pair (the rule is in the module docstring and in the table's note)."""
    fid, qual = pick(run, "fidelity"), pick(run, "quality")
    records, rules = [], set()
    for (ckpt, sev), block in frame.groupby(["checkpoint", "severity"], sort=False):
        ws = block["w"].tolist()
        rec = {"checkpoint": ckpt, "severity": sev}
        for m, higher in run.directions.items():
            rec[f"best w: {m}"] = _fmt_ws(best_ws(ws, block[m], higher))
        for f in fid:
            for q in qual:
                x, y = block[f].to_numpy(float), block[q].to_numpy(float)
                rec[f"balanced w: {f} vs {q}"] = _fmt(balanced_w(ws, x, y, run.directions[f], run.directions[q]))
                mask = pareto_mask(x, y, run.directions[f], run.directions[q])
                rec[f"Pareto w: {f} vs {q}"] = _fmt_ws([w for w, k in zip(ws, mask, strict=True) if k])
                rules.add((f, q))
        records.append(rec)
    out = pd.DataFrame.from_records(records)
    note = (
        "Best w: the w with the best mean over images (direction from the run manifest; ties listed). "
        "Pareto w: not dominated on the pair. Balanced w: both metrics min-max normalised over the w values of the "
        "severity (1 = best), then the Pareto-optimal w nearest to (1, 1); ties go to the smaller w."
    )
    if run.absent:
        note += " Not measured in this run: " + ", ".join(sorted(run.absent)) + "."
    return ReportTable(out, "Fidelity vs quality: best and balanced w per severity", note)


def _fmt(w: float) -> str:
    return "–" if not math.isfinite(w) else f"{w:g}"


# ---------------------------------------------------------------------------------------------------- figures


def pareto_figure(run: Run, frame: pd.DataFrame, ckpt: str, fid: str, qual: str):
    sub = frame[frame["checkpoint"] == ckpt]
    sevs = order_severities(sub["severity"])
    colors = severity_colors(sevs)
    fh, qh = run.directions[fid], run.directions[qual]
    fig, axes = figure(aspect=0.85)
    ax = axes[0, 0]
    for k, sev in enumerate(sevs):
        block = sub[sub["severity"] == sev].sort_values("w")
        x, y, ws = block[qual].to_numpy(float), block[fid].to_numpy(float), block["w"].to_numpy(float)
        mask = pareto_mask(y, x, fh, qh)
        bal = balanced_w(ws, y, x, fh, qh)
        ax.plot(x, y, "-o", color=colors[sev], label=severity_label(sev), zorder=2)
        ax.scatter(x[mask], y[mask], s=70, facecolors="none", edgecolors="k", linewidths=1.0, zorder=3)
        if math.isfinite(bal):
            i = int(np.flatnonzero(ws == bal)[0])
            ax.scatter([x[i]], [y[i]], marker="*", s=110, color="k", zorder=4)
        # with more than two curves the labels cover each other: label the mildest and the most severe curve,
        # the others run through the same w in the same order
        for xi, yi, w in zip(x, y, ws, strict=True) if sev in (sevs[0], sevs[-1]) else ():
            if np.isfinite(xi) and np.isfinite(yi):
                ax.annotate(f"w={w:g}", (xi, yi), xytext=LABEL_OFFSETS[k % 4], textcoords="offset points", fontsize=6)
    ax.scatter([], [], s=70, facecolors="none", edgecolors="k", label="Pareto-optimal w")
    ax.scatter([], [], marker="*", s=110, color="k", label="balanced w")
    ax.set_xlabel(run.label(qual))
    ax.set_ylabel(run.label(fid))
    set_title(ax, f"{ckpt}: fidelity vs quality over w")
    ax.legend(loc="best")
    return fig


def metric_vs_w_figure(run: Run, frame: pd.DataFrame, ckpt: str, metrics: Sequence[str]):
    sub = frame[frame["checkpoint"] == ckpt]
    sevs = order_severities(sub["severity"])
    colors = severity_colors(sevs)
    fig, axes = metric_panels(len(metrics))
    for ax, m in zip(axes, metrics, strict=True):
        for sev in sevs:
            block = sub[sub["severity"] == sev].sort_values("w")
            ax.plot(block["w"], block[m], "-o", color=colors[sev], label=severity_label(sev))
            lo, hi = f"{m}_ci_low", f"{m}_ci_high"
            if lo in block and block[lo].notna().any():
                ax.fill_between(block["w"], block[lo], block[hi], color=colors[sev], alpha=0.15, linewidth=0)
        ax.set_xlabel("fidelity weight w")
        ax.set_ylabel(run.label(m))
    axes[0].legend(loc="best")
    fig.suptitle(f"{ckpt}: metrics vs w (mean, 95% bootstrap band)", fontsize=8)
    return fig


def heatmap_figure(run: Run, frame: pd.DataFrame, ckpt: str, metric: str):
    sub = frame[frame["checkpoint"] == ckpt]
    sevs = order_severities(sub["severity"])
    ws = sorted(sub["w"].unique())
    grid = sub.pivot_table(index="severity", columns="w", values=metric, aggfunc="first", dropna=False)
    grid = grid.reindex(index=sevs, columns=ws)
    higher = run.directions[metric]
    fig, axes = figure(aspect=max(0.35, 0.18 * len(sevs) + 0.2))
    ax = axes[0, 0]
    im = ax.imshow(grid.to_numpy(float), cmap="viridis" if higher else "viridis_r", aspect="auto")
    ax.set_xticks(range(len(ws)), [f"{w:g}" for w in ws])
    ax.set_yticks(range(len(sevs)), sevs)
    ax.set_xlabel("fidelity weight w")
    ax.set_ylabel("severity")
    ax.grid(False)
    values = grid.to_numpy(float)
    finite = values[np.isfinite(values)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if np.isfinite(v):
                good = v > mid if higher else v < mid  # bright cells are the good end of viridis
                ax.text(
                    j,
                    i,
                    number(v),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="k" if good else "w",
                )
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(run.label(metric), fontsize=7)
    set_title(ax, f"{ckpt}: {run.label(metric, short=True)} per severity and w (bright = better)", width=42)
    return fig


# ---------------------------------------------------------------------------------------------------- report


def report(run: Run, out_dir: str | os.PathLike, formats: Sequence[str], n_boot: int = 1000) -> Section:
    """Every fidelity_quality_* file for `run` in `out_dir`."""
    out_dir = Path(out_dir)
    section = Section("Fidelity vs quality")
    table = group_table(run, n_boot=n_boot)
    frame = table.frame
    writers = {"md": fq_tables.to_markdown, "csv": fq_tables.to_csv, "tex": fq_tables.to_latex}
    texts = {ext: write(table) for ext, write in writers.items() if ext in formats}
    paths = list(write_table_files(out_dir, "fidelity_quality_table", texts).values())
    # the page shows what the markdown file shows: the mean with its interval, the direction in the header
    shown = frame[["checkpoint", "severity", "w", "n_images"]].copy()
    for m in table.metrics:
        cells = [fq_tables.metric_cell(row, m) for _, row in frame.iterrows()]
        shown[m.name] = [f"{v} [{ci}]" if ci else v for v, ci, _ in cells]
    best = {(i, m.name) for m in table.metrics for i in np.flatnonzero(frame[f"{m.name}_best"].to_numpy())}
    headers = {m.name: f"{m.name} {m.arrow}" for m in table.metrics}
    shown_table = ReportTable(shown, "Metrics per severity and w", table.note(), headers=headers, best=best)
    section.tables.append(Table("fidelity_quality_table", shown_table, paths))
    summ = summary(run, frame)
    section.tables.append(
        Table("fidelity_quality_summary", summ, write_table(summ, out_dir, "fidelity_quality_summary", formats))
    )

    fid, qual = pick(run, "fidelity"), pick(run, "quality")
    if not fid or not qual:
        section.notes.append(
            "No fidelity-vs-quality curve: the run has "
            + ("no quality metric (NIQE, FID, LPIPS...)" if not qual else "no fidelity metric (identity, LMD, PSNR...)")
            + "."
        )
    metrics = list(run.directions) if wants_figures(formats) else []
    for ckpt in sorted(frame["checkpoint"].unique()) if wants_figures(formats) else []:
        c = slug(ckpt)
        for f in fid:
            for q in qual:
                stem = f"fidelity_quality_pareto_{c}_{slug(f)}_vs_{slug(q)}"
                fig = pareto_figure(run, frame, ckpt, f, q)
                caption = (
                    f"{ckpt}: {run.label(f, short=True)} vs {run.label(q, short=True)} per severity over "
                    "w (w labels on the mildest and the most severe curve); rings: Pareto-optimal w, star: "
                    "balanced w."
                )
                section.figures.append(Figure(stem, caption, save_figure(fig, out_dir, stem, formats)))
        if metrics:
            stem = f"fidelity_quality_metric_vs_w_{c}"
            fig = metric_vs_w_figure(run, frame, ckpt, metrics)
            section.figures.append(
                Figure(stem, f"{ckpt}: every metric vs w, per severity.", save_figure(fig, out_dir, stem, formats))
            )
        for m in metrics:
            stem = f"fidelity_quality_heatmap_{c}_{slug(m)}"
            fig = heatmap_figure(run, frame, ckpt, m)
            section.figures.append(
                Figure(stem, f"{ckpt}: {m} per severity x w.", save_figure(fig, out_dir, stem, formats))
            )
    if run.absent:
        section.notes.append(
            "Metrics absent from this run: " + "; ".join(f"{k} ({v})" for k, v in sorted(run.absent.items()))
        )
    return section
