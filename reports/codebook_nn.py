"""The paper's motivation check: how often the transformer's code agrees with the nearest-neighbour codebook
lookup of the same encoder feature, for the HQ (GT) face and at each severity.

CodeFormer (Zhou et al., NeurIPS 2022) replaces the nearest-neighbour lookup by a transformer because, for
degraded inputs, the nearest code of the LQ feature is often not the code of the HQ face. The run
stores the indices this needs when it was made with `cfbench eval --store-nn-codes` (codes.npz: `nn_codes` of
the LQ feature, `hq_codes` and `hq_nn_codes` of the GT face; see docs/eval.md). Per checkpoint and input (the
GT face, then each severity), over all token positions both compared sets hold (index >= 0):

- transformer = nearest: the share of tokens where the transformer's code equals the nearest code of the same
  input's encoder feature (for the GT face: `hq_codes` vs `hq_nn_codes`; at a severity: `codes` vs `nn_codes`);
- transformer = HQ nearest: the share where the transformer's code for the input equals the nearest code of
  the GT face's feature (the paper's "ground-truth" code);
- nearest = HQ nearest: the same for the nearest-neighbour lookup of the input.

"HQ nearest" uses the checkpoint's own encoder on the GT face; the official training targets (idx_gt) come
from the fixed stage-I VQGAN encoder instead, which an eval run does not load, so the two differ where stage II
changed the encoder. The GT face's codes are stored beside every severity's rows; the HQ row uses each image
once (the rows of its mildest severity). A run without these arrays gets a note, not files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from reports.load import Run, order_severities
from reports.section import Figure, Section, Table
from reports.style import metric_panels, save_figure, severity_label, wants_figures
from reports.tabular import ReportTable, write_table

STEM = "codebook_nn_agreement"
HQ = "HQ (GT face)"
# column -> (the input's code set, the set it is compared with) at a severity, and for the GT face
PAIRS = {
    "transformer = nearest": (("codes", "nn_codes"), ("hq_codes", "hq_nn_codes")),
    "transformer = HQ nearest": (("codes", "hq_nn_codes"), ("hq_codes", "hq_nn_codes")),
    "nearest = HQ nearest": (("nn_codes", "hq_nn_codes"), ("hq_nn_codes", "hq_nn_codes")),
}
STYLE = {  # column -> (colour, marker, legend text)
    "transformer = nearest": ("C0", "o", "transformer = nearest code of the same input"),
    "transformer = HQ nearest": ("C2", "s", "transformer = nearest code of the GT face (↑ better)"),
    "nearest = HQ nearest": ("C3", "^", "nearest of the input = nearest of the GT face (↑ better)"),
}


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(share of positions where `a` equals `b`, number of positions) over the positions where both are >= 0
    (-1 pads); NaN share when there are none."""
    a, b = np.asarray(a), np.asarray(b)
    valid = (a >= 0) & (b >= 0)
    n = int(valid.sum())
    return (float(((a == b) & valid).sum() / n) if n else math.nan), n


def _has(codes: dict[str, np.ndarray], keep: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Rows of `keep` whose arrays `names` are all stored (not all -1)."""
    ok = keep.copy()
    for name in names:
        ok &= (codes[name] >= 0).any(axis=1) if name in codes else False
    return ok


def _row(codes: dict[str, np.ndarray], rows: np.ndarray, ckpt: str, label: str, hq: bool) -> dict:
    out: dict = {"checkpoint": ckpt, "input": label, "images": int(rows.sum())}
    for col, pairs in PAIRS.items():
        a, b = pairs[1] if hq else pairs[0]
        share, n = agreement(codes[a][rows], codes[b][rows]) if a in codes and b in codes else (math.nan, 0)
        out[col] = share
        if col == "transformer = nearest":
            out["tokens"] = n
    return out


def table(codes: dict[str, np.ndarray]) -> tuple[pd.DataFrame, list[str]]:
    """(one row per checkpoint and input, the module docstring's columns; the checkpoints without the arrays)."""
    rows, missing = [], []
    for ckpt in sorted(set(codes["checkpoint"].tolist())):
        mine = codes["checkpoint"] == ckpt
        if not _has(codes, mine, ["nn_codes"]).any():
            missing.append(ckpt)
            continue
        sevs = order_severities(codes["severity"][mine])
        hq = _has(codes, mine, ["hq_codes", "hq_nn_codes"])
        if hq.any():
            first = np.zeros_like(hq)  # each image once: its row at the mildest severity with GT codes
            seen: set[str] = set()
            for sev in sevs:
                for i in np.flatnonzero(hq & (codes["severity"] == sev)):
                    if codes["image_id"][i] not in seen:
                        seen.add(str(codes["image_id"][i]))
                        first[i] = True
            rows.append(_row(codes, first, ckpt, HQ, hq=True))
        for sev in sevs:
            sel = _has(codes, mine & (codes["severity"] == sev), ["nn_codes"])
            if sel.any():
                rows.append(_row(codes, sel, ckpt, severity_label(sev), hq=False))
    columns = ["checkpoint", "input", "images", "tokens", *PAIRS]
    return pd.DataFrame.from_records(rows, columns=columns), missing


def agreement_figure(frame: pd.DataFrame):
    ckpts = list(dict.fromkeys(frame["checkpoint"]))
    fig, axes = metric_panels(len(ckpts))
    for ax, ckpt in zip(axes, ckpts, strict=True):
        sub = frame[frame["checkpoint"] == ckpt]
        x = np.arange(len(sub))
        for col, (color, marker, text) in STYLE.items():
            ax.plot(x, sub[col], "-", marker=marker, color=color, label=text)
        ax.set_xticks(x, [s.replace("severity ", "sev. ").replace(" face", "") for s in sub["input"]])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("input (HQ = undegraded GT face)")
        ax.set_ylabel("share of tokens with the same code")
        ax.set_title(ckpt)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=1)
    return fig


def report(run: Run, out_dir: str | os.PathLike, formats: Sequence[str]) -> Section:
    """codebook_nn_agreement.* in `out_dir`, or a note when the run stored no nearest-neighbour codes."""
    section = Section("Codebook: transformer vs nearest-neighbour lookup")
    why = "re-run `cfbench eval --store-nn-codes` to store them"
    if run.codes is None or "nn_codes" not in run.codes:
        section.notes.append(f"{STEM}: absent: the run dir stores no nearest-neighbour codes; {why}.")
        return section
    frame, missing = table(run.codes)
    if missing:
        section.notes.append(f"{STEM}: absent for {', '.join(missing)} (no nearest-neighbour codes stored); {why}.")
    if frame.empty:
        return section
    t = ReportTable(
        frame,
        "Transformer vs nearest-neighbour code lookup",
        "Share of token positions with the same code index. transformer = nearest: the transformer's code vs the "
        "nearest codebook entry of the same encoder feature; ... = HQ nearest: vs the nearest entry of the GT "
        "face's feature. HQ = the undegraded GT face (each image once). Codes do not depend on w.",
    )
    section.tables.append(Table(STEM, t, write_table(t, out_dir, STEM, formats)))
    if wants_figures(formats):
        paths = save_figure(agreement_figure(frame), Path(out_dir), STEM, formats)
        section.figures.append(
            Figure(STEM, "Agreement of the transformer's codes with the nearest-neighbour lookup by input.", paths)
        )
    return section
