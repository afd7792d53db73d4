"""Paper-style outputs: the qualitative grid (rows faces; columns LQ, w = 0, 0.5, 1, GT) and a comparison table
in the layout of CodeFormer's Table 1 (methods as rows; LPIPS, FID, NIQE, Deg, LMD, PSNR, SSIM as columns, those
the runs measured; best in bold, second underlined).

A method is a checkpoint of a run (several run dirs compare several checkpoints or runs) at one w, by default
0.5 (the nearest w the run has); one block of rows per severity. Values are means over images (FID: the group's
value). When a run has identity cosine but no Deg column, Deg is derived per image as degrees(arccos(cosine)),
the definition of the Deg metric, and then averaged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from reports.grid import any_image, image_grid
from reports.load import Run, order_severities
from reports.section import Figure, Section, Table
from reports.style import family, save_figure, slug, wants_figures
from reports.tabular import ReportTable, rank_marks, write_table

# the metric families of the CodeFormer paper's Table 1, in its order, with the header a missing one is named by
TABLE1 = {"lpips": "LPIPS", "fid": "FID", "niqe": "NIQE", "deg": "Deg", "lmd": "LMD", "psnr": "PSNR", "ssim": "SSIM"}
GRID_WS = (0.0, 0.5, 1.0)


def nearest_w(ws: Sequence[float], want: float) -> float:
    return min(ws, key=lambda w: (abs(w - want), w))


def table1(run: Run, w: float = 0.5) -> tuple[ReportTable, list[str]]:
    """The Table-1 frame (method, severity, w, metrics...) with best/second marks per severity; and notes."""
    notes = []
    cols: list[tuple[str, str, bool]] = []  # (header, source column or "deg-from:<cos col>", higher is better)
    missing = []
    for fam in TABLE1:
        found = [c for c in run.directions if family(c) == fam]
        cos = [c for c in run.directions if family(c) == "identity_cos" and c in run.results.columns]
        if found:
            header = run.facts[found[0]].label if found[0] in run.facts else TABLE1[fam]
            cols.append((header, found[0], run.directions[found[0]]))
        elif fam == "deg" and cos:
            cols.append(("Deg", f"deg-from:{cos[0]}", False))
            notes.append(f"Deg derived per image from {cos[0]} as degrees(arccos(cosine)).")
        else:
            missing.append(TABLE1[fam])
    if missing:
        notes.append("Not measured: " + ", ".join(missing) + ".")
    records = []
    for sev in order_severities(run.results["severity"]):
        for ckpt in run.checkpoints:
            rows = run.results[(run.results.checkpoint == ckpt) & (run.results.severity == sev)]
            if rows.empty:
                continue
            wc = nearest_w(sorted(rows["w"].unique()), w)
            rows = rows[rows.w == wc]
            rec = {"method": ckpt, "severity": sev, "w": f"{wc:g}"}
            for header, src, _ in cols:
                if src.startswith("deg-from:"):
                    cos = rows[src.split(":", 1)[1]].to_numpy(float)
                    rec[header] = (
                        float(np.nanmean(np.degrees(np.arccos(np.clip(cos, -1, 1)))))
                        if np.isfinite(cos).any()
                        else math.nan
                    )
                elif src in rows.columns:
                    rec[header] = float(rows[src].mean())
                else:
                    g = run.groups[
                        (run.groups.checkpoint == ckpt) & (run.groups.severity == sev) & (run.groups.w == wc)
                    ]
                    rec[header] = float(g[src].iloc[0]) if len(g) and src in g else math.nan
            records.append(rec)
    frame = pd.DataFrame.from_records(records)
    best, second, rules = set(), set(), set()
    for _, idx in frame.groupby("severity", sort=False).groups.items():
        positions = [frame.index.get_loc(i) for i in idx]
        rules.add(positions[0])
        if len(positions) < 2:  # one method: nothing to rank
            continue
        for header, _, higher in cols:
            b, s = rank_marks([float(frame.iloc[p][header]) for p in positions], higher)
            best |= {(positions[i], header) for i in b}
            second |= {(positions[i], header) for i in s}
    headers = {h: f"{h} {'↑' if higher else '↓'}" for h, _, higher in cols}
    note = (
        f"Methods at w = {w:g} (nearest w of each run); means over images; best per severity in bold, second "
        "underlined. " + " ".join(notes)
    )
    return ReportTable(frame, "Comparison (Table 1 layout)", note.strip(), headers, best, second, rules), notes


def report(run: Run, out_dir: str | os.PathLike, formats: Sequence[str], w: float = 0.5, n_faces: int = 4) -> Section:
    out_dir = Path(out_dir)
    section = Section("Paper-style figures and table")
    t, _ = table1(run, w)
    section.tables.append(Table("paper_table1", t, write_table(t, out_dir, "paper_table1", formats)))
    for ckpt in run.checkpoints if wants_figures(formats) else []:
        sevs = order_severities(run.results.loc[run.results.checkpoint == ckpt, "severity"])
        ws = sorted({nearest_w(run.ws, x) for x in GRID_WS})
        ids = sorted(run.results.loc[run.results.checkpoint == ckpt, "image_id"].unique())[:n_faces]
        shown = [s for s in sevs if any_image(run, ckpt, s, ids, ws)]
        if not shown:
            section.notes.append(f"{ckpt}: the run saved no images (run eval with --save-images): no qualitative grid.")
            continue
        sev = shown[-1]
        stem = f"paper_qualitative_{slug(ckpt)}_severity_{slug(sev)}"
        fig = image_grid(run, ckpt, sev, ids, ws, title=f"{ckpt}, severity {sev}")
        section.figures.append(
            Figure(
                stem,
                f"{ckpt}, severity {sev}: LQ | w = {', '.join(f'{x:g}' for x in ws)} | GT.",
                save_figure(fig, out_dir, stem, formats),
            )
        )
    return section
