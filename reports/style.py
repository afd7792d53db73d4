"""One figure style for every report: matplotlib (Agg), column-width sizes, a colour per w and per severity,
metric labels with units and the direction of "better", and saving every figure as PNG and PDF."""

from __future__ import annotations

import math
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cfbench.atomic import atomic_path  # noqa: E402

COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper
PAGE_WIDTH = 7.0
FIGURE_FORMATS = ("png", "pdf")

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "savefig.dpi": 150,
    "pdf.fonttype": 42,  # TrueType in PDFs, so text stays editable/searchable
    "figure.dpi": 100,
}


@dataclass(frozen=True)
class MetricFacts:
    """What a report shows of a metric, as the run manifest records it from the metric's registry entry: display
    `label`, `unit` ("" when unitless) and `role` ("fidelity", "quality" or "")."""

    label: str
    unit: str = ""
    role: str = ""


# columns of a run that are not metrics
TIMING_FACTS = {"model_ms_per_face": MetricFacts("model time", "ms/face")}


def family(column: str) -> str:
    return column.split("[", 1)[0]


def metric_label(
    column: str, higher_is_better: bool | None = None, short: bool = False, facts: MetricFacts | None = None
) -> str:
    """``LMD [dlib] (px, ↓ better)``: display name, variant, unit and direction; `facts` from the run manifest
    (`Run.facts`), else the column's family and no unit."""
    facts = facts or TIMING_FACTS.get(column) or MetricFacts(family(column))
    name, unit = facts.label, facts.unit
    variant = column[len(family(column)) :]
    text = f"{name} {variant}" if variant and not short else name
    extra = [u for u in (unit,) if u]
    if higher_is_better is not None:
        extra.append("↑ better" if higher_is_better else "↓ better")
    return f"{text} ({', '.join(extra)})" if extra else text


def slug(text: str) -> str:
    """A file-name-safe form of a metric or checkpoint name: ``identity_cos[dlib]`` -> ``identity_cos-dlib``."""
    return re.sub(r"[^A-Za-z0-9.+_-]+", "-", str(text)).strip("-._") or "x"


def w_colors(ws: Sequence[float]) -> dict[float, tuple]:
    """w -> colour on one fixed scale (viridis over [0, 1]), so a w has the same colour in every figure."""
    cmap = plt.get_cmap("viridis")
    return {float(w): cmap(0.9 * float(np.clip(w, 0, 1))) for w in ws}


SEVERITY_CMAP = "plasma"


def severity_colors(severities: Sequence[str]) -> dict[str, tuple]:
    """severity label -> colour: mild (light/yellow) to severe (dark/purple) in the given order."""
    cmap = plt.get_cmap(SEVERITY_CMAP)
    n = len(severities)
    return {s: cmap(0.8 - 0.7 * (i / max(n - 1, 1))) for i, s in enumerate(severities)}


def severity_label(severity: str) -> str:
    return f"severity {severity}"


def figure(ncols: int = 1, nrows: int = 1, width: float | None = None, aspect: float = 0.75, **kw):
    """A figure of `ncols` x `nrows` panels at column width (one panel) or page width (several)."""
    plt.rcParams.update(RC)
    width = width or (COLUMN_WIDTH if ncols == 1 else PAGE_WIDTH)
    panel_w = width / ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, panel_w * aspect * nrows + 0.3), squeeze=False, layout="constrained", **kw
    )
    return fig, axes


def metric_panels(n: int):
    """A figure with one panel per metric, at most 3 per row: (fig, the n axes in row-major order); the panels
    that fill the last row are hidden."""
    ncols = min(3, n)
    fig, axes = figure(ncols=ncols, nrows=math.ceil(n / ncols), aspect=0.8)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def set_title(ax, text: str, width: int = 50) -> None:
    """A panel title wrapped to lines of at most `width` characters (about what a column-width panel holds at
    8 pt), so long checkpoint and metric names do not run off the figure."""
    ax.set_title("\n".join(textwrap.wrap(text, width)))


# offsets (points) of the w labels beside each severity's points, so the curves' labels do not sit on each other
LABEL_OFFSETS = ((4, 4), (4, -9), (-24, 4), (-24, -9))


def wants_figures(formats: Sequence[str]) -> bool:
    return any(f in formats for f in FIGURE_FORMATS)


def save_figure(fig, out_dir: str | os.PathLike, stem: str, formats: Sequence[str]) -> list[Path]:
    """`stem`.png and `stem`.pdf (those in `formats`) in `out_dir`, written atomically; closes the figure."""
    out = []
    for ext in FIGURE_FORMATS:
        if ext in formats:
            path = Path(out_dir) / f"{stem}.{ext}"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
            out.append(path)
    plt.close(fig)
    return out
