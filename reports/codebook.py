"""Codebook usage from the code indices the transformer predicted (codes.npz of the run dir; they do not depend
on w, so one set per checkpoint, severity and image).

Per checkpoint and severity, over all tokens of all images (K = codebook size, p = the share of tokens that use
each code):

- perplexity = exp(-sum p log p) (natural log; 0 log 0 = 0): the effective number of codes in use, 1..K;
- dead codes = codes never used, K - (number of codes with p > 0);
- top-1% share = the share of tokens taken by the ceil(0.01 K) most used codes;
- shift vs the mildest severity: total variation 0.5 * sum |p - q| and KL(p || q) with q the mildest severity's
  usage, both smoothed by adding 1e-6 to every probability before renormalising (KL only);
- spatial change: for the images coded at both severities, the share of images whose code at each position
  (16 x 16 for 256 tokens) differs from the mildest severity's.

K comes from the checkpoint's bundled model config (cfbench/configs/models/<name>.yaml, `codebook_size`, default
1024 = official CodeFormer), or is given; for an unknown checkpoint it is the largest index + 1, a lower bound,
and the table says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from reports.load import Run, order_severities
from reports.section import Figure, Section, Table
from reports.style import figure, save_figure, set_title, severity_colors, severity_label, slug, wants_figures
from reports.tabular import ReportTable, write_table

EPS = 1e-6
OFFICIAL_CODEBOOK = 1024


def counts(codes: np.ndarray, size: int) -> np.ndarray:
    """How often each code 0..size-1 occurs in `codes` (negative entries are padding and ignored)."""
    flat = np.asarray(codes).ravel()
    flat = flat[flat >= 0].astype(np.int64)
    return np.bincount(flat, minlength=size)[: max(size, int(flat.max(initial=-1)) + 1)]


def perplexity(c: np.ndarray) -> float:
    total = c.sum()
    if total == 0:
        return math.nan
    p = c[c > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def dead_codes(c: np.ndarray) -> int:
    return int((c == 0).sum())


def top_share(c: np.ndarray, fraction: float = 0.01) -> float:
    total = c.sum()
    if total == 0:
        return math.nan
    k = max(1, math.ceil(fraction * len(c)))
    return float(np.sort(c)[::-1][:k].sum() / total)


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    p, q = a / a.sum(), b / b.sum()
    return float(0.5 * np.abs(p - q).sum())


def kl_divergence(a: np.ndarray, b: np.ndarray) -> float:
    """KL(p || q) in nats of the usage distributions, each smoothed by EPS (see the module docstring)."""
    p = a / a.sum() + EPS
    q = b / b.sum() + EPS
    p, q = p / p.sum(), q / q.sum()
    return float((p * np.log(p / q)).sum())


def codebook_size(run: Run, checkpoint: str, codes: np.ndarray) -> tuple[int, str]:
    """(K, where it came from) for `checkpoint`."""
    sources = [checkpoint]
    for manifest in [run.manifest, *(run.manifest.get("runs") or {}).values()]:
        entry = (manifest.get("provenance") or {}).get("checkpoints", {}).get(checkpoint.split("/")[-1]) or {}
        if entry.get("source"):
            sources.insert(0, str(entry["source"]))
    for name in sources:
        path = Path(str(resources.files("cfbench").joinpath("configs", "models", f"{Path(name).stem}.yaml")))
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            size = (data.get("params") or {}).get("codebook_size", OFFICIAL_CODEBOOK)
            return int(size), f"model config {path.name}"
    return int(codes.max(initial=0)) + 1, "largest index + 1 (lower bound: unknown checkpoint)"


def _select(codes: dict[str, np.ndarray], ckpt: str, sev: str) -> tuple[np.ndarray, np.ndarray]:
    keep = (codes["checkpoint"] == ckpt) & (codes["severity"] == sev)
    return codes["image_id"][keep], codes["codes"][keep]


def stats(run: Run, size: int | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per (checkpoint, severity) with the numbers of the module docstring, and per checkpoint the
    per-severity counts and spatial change maps (for the figures)."""
    codes = run.codes
    rows, extra = [], {}
    for ckpt in sorted(set(codes["checkpoint"].tolist())):
        sevs = order_severities(codes["severity"][codes["checkpoint"] == ckpt])
        K, how = (size, "given") if size else codebook_size(run, ckpt, codes["codes"][codes["checkpoint"] == ckpt])
        ref_ids, ref_codes = _select(codes, ckpt, sevs[0])
        ref_counts = counts(ref_codes, K)
        per_sev, maps = {}, {}
        for sev in sevs:
            ids, mat = _select(codes, ckpt, sev)
            c = counts(mat, K)
            per_sev[sev] = c
            common = sorted(set(ids.tolist()) & set(ref_ids.tolist()))
            change = math.nan
            if common and sev != sevs[0]:
                a = ref_codes[[ref_ids.tolist().index(i) for i in common]]
                b = mat[[ids.tolist().index(i) for i in common]]
                valid = (a >= 0) & (b >= 0)
                diff = ((a != b) & valid).sum(0) / np.maximum(valid.sum(0), 1)
                maps[sev] = diff
                change = float(((a != b) & valid).sum() / max(valid.sum(), 1))
            rows.append(
                {
                    "checkpoint": ckpt,
                    "severity": sev,
                    "images": int(len(ids)),
                    "tokens": int(c.sum()),
                    "codebook size": int(K),
                    "perplexity": perplexity(c),
                    "used codes": int((c > 0).sum()),
                    "dead codes": dead_codes(c),
                    "top-1% share": top_share(c),
                    f"TV vs severity {sevs[0]}": total_variation(c, ref_counts) if c.sum() else math.nan,
                    f"KL vs severity {sevs[0]}": kl_divergence(c, ref_counts) if c.sum() else math.nan,
                    "changed positions": change,
                    "K from": how,
                }
            )
        extra[ckpt] = {"counts": per_sev, "maps": maps, "ref": sevs[0], "size": K}
    frame = pd.DataFrame.from_records(rows)
    # the reference column names differ per checkpoint only when their mildest severity does
    return frame, extra


def usage_figure(ckpt: str, info: dict):
    sevs = list(info["counts"])
    colors = severity_colors(sevs)
    fig, axes = figure(aspect=0.7)
    ax = axes[0, 0]
    for sev in sevs:
        c = np.sort(info["counts"][sev])[::-1]
        share = c / max(c.sum(), 1)
        ax.step(
            np.arange(1, len(c) + 1),
            np.where(share > 0, share, np.nan),
            where="mid",
            marker="o" if (c > 0).sum() < 20 else None,  # a handful of used codes draws no visible step line
            color=colors[sev],
            label=f"{severity_label(sev)} (perplexity {perplexity(info['counts'][sev]):.0f})",
        )
    # log-log, as rank-frequency plots are read: the head (a few codes taking most tokens) stays visible
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.8, info["size"] * 1.25)
    ax.set_ylim(top=1.5)
    ax.set_xlabel(f"code rank by frequency (log; codebook size {info['size']})")
    ax.set_ylabel("share of tokens (log)")
    set_title(ax, f"{ckpt}: codebook usage sorted by frequency")
    ax.legend(loc="upper right")
    return fig


def shift_figure(ckpt: str, frame: pd.DataFrame):
    sub = frame[frame["checkpoint"] == ckpt]
    tv = [c for c in sub.columns if c.startswith("TV vs")][0]
    kl = [c for c in sub.columns if c.startswith("KL vs")][0]
    fig, axes = figure(aspect=0.6)
    ax = axes[0, 0]
    x = np.arange(len(sub))
    ax.plot(x, sub[tv], "-o", color="C0", label="total variation (0..1)", clip_on=False)  # 0 sits on the axis
    ax.plot(x, sub[kl], "-s", color="C3", label="KL divergence (nats)", clip_on=False)
    ax.set_xticks(x, sub["severity"].tolist())
    ax.set_xlabel("severity")
    ax.set_ylabel(f"shift vs severity {sub['severity'].iloc[0]} (↓ = closer)")
    ax.set_ylim(bottom=0)  # both are >= 0; without this an all-zero shift is drawn mid-axis
    set_title(ax, f"{ckpt}: codebook usage shift with severity")
    ax.legend(loc="upper left")
    return fig


def spatial_figure(ckpt: str, info: dict):
    maps = info["maps"]
    n = len(maps)
    fig, axes = figure(ncols=n, width=min(7.0, 2.4 * n + 0.6), aspect=1.0)
    im = None
    for k, (sev, diff) in enumerate(maps.items()):
        side = int(round(math.sqrt(diff.size)))
        grid = diff.reshape(side, side) if side * side == diff.size else diff[None, :]
        ax = axes[0, k]
        im = ax.imshow(grid, cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"{severity_label(sev)} vs {info['ref']} (mean {np.nanmean(diff):.2f})")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"token column (1..{grid.shape[1]})")
        ax.set_ylabel(f"token row (1..{grid.shape[0]}, top = 1)")
        ax.grid(False)
    cbar = fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.8)
    cbar.set_label("share of images whose code changed", fontsize=7)
    fig.suptitle(f"{ckpt}: code changes per token position", fontsize=8)
    return fig


def report(run: Run, out_dir: str | os.PathLike, formats: Sequence[str], size: int | None = None) -> Section:
    """Every codebook_* file for `run` in `out_dir` (a note instead when the run stored no codes)."""
    out_dir = Path(out_dir)
    section = Section("Codebook usage")
    if run.codes is None or len(run.codes["image_id"]) == 0:
        section.notes.append("The run dir has no codes.npz (or it is empty): no codebook report.")
        return section
    frame, extra = stats(run, size)
    table = ReportTable(
        frame,
        "Codebook usage per severity",
        "Perplexity = exp(entropy) of the code usage; dead codes = never used; top-1% share = tokens taken by the "
        "1% most used codes; TV / KL = total variation / KL divergence of the usage vs the mildest severity; "
        "changed positions = share of (image, position) whose code differs from the mildest severity's. Codes do "
        "not depend on w.",
    )
    section.tables.append(Table("codebook_stats", table, write_table(table, out_dir, "codebook_stats", formats)))
    for ckpt, info in extra.items() if wants_figures(formats) else []:
        c = slug(ckpt)
        stem = f"codebook_usage_{c}"
        section.figures.append(
            Figure(
                stem,
                f"{ckpt}: code usage sorted by frequency.",
                save_figure(usage_figure(ckpt, info), out_dir, stem, formats),
            )
        )
        if len(info["counts"]) > 1:
            stem = f"codebook_shift_{c}"
            fig = shift_figure(ckpt, frame)
            section.figures.append(
                Figure(stem, f"{ckpt}: usage shift vs the mildest severity.", save_figure(fig, out_dir, stem, formats))
            )
        if info["maps"]:
            stem = f"codebook_spatial_change_{c}"
            fig = spatial_figure(ckpt, info)
            section.figures.append(
                Figure(
                    stem,
                    f"{ckpt}: how often each position's code changes vs the mildest severity.",
                    save_figure(fig, out_dir, stem, formats),
                )
            )
    return section
