"""A small table type for the reports and its writers: markdown, CSV (plain numbers) and LaTeX booktabs, with
cells marked best (bold) or second (underlined). The fidelity-vs-quality table itself is written by
`cfbench.eval.tables`; this covers the reports' other tables with the same number formatting and escaping."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cfbench.atomic import atomic_write_bytes
from cfbench.eval.tables import _decimals, _num, latex_escape, markdown_escape

TABLE_FORMATS = ("md", "csv", "tex")


@dataclass
class ReportTable:
    """`frame`: the values (numbers stay numbers, for CSV); `headers`: display names per column (default the
    column names); `best`/`second`: (row position, column) cells to mark; `note`: a sentence under the table."""

    frame: pd.DataFrame
    title: str
    note: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    best: set[tuple[int, str]] = field(default_factory=set)
    second: set[tuple[int, str]] = field(default_factory=set)
    rule_before: set[int] = field(default_factory=set)  # row positions that start a new block (\midrule)

    def header(self, col: str) -> str:
        return self.headers.get(col, col)

    def cell(self, value, column: str | None = None) -> str:
        if column == "w" and isinstance(value, float) and math.isfinite(value):
            return f"{value:g}"  # a fidelity weight is a setting, shown as typed (0.5), not as a measurement
        if isinstance(value, float):
            return number(value)
        if isinstance(value, (int,)) and not isinstance(value, bool):
            return str(value)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return str(value)


def number(value: float) -> str:
    """A measured value as every report table writes it (`cfbench.eval.tables` digits; – when not finite)."""
    return _num(value, _decimals(value)) if math.isfinite(value) else "–"


def to_markdown(t: ReportTable) -> str:
    cols = list(t.frame.columns)
    numeric = [pd.api.types.is_numeric_dtype(t.frame[c]) for c in cols]
    lines = [
        "| " + " | ".join(markdown_escape(t.header(c)) for c in cols) + " |",
        "|" + "|".join("---:" if n else ":---" for n in numeric) + "|",
    ]
    for i, row in enumerate(t.frame.itertuples(index=False)):
        cells = []
        for c, v in zip(cols, row, strict=True):
            text = markdown_escape(t.cell(v, c))
            if (i, c) in t.best:
                text = f"**{text}**"
            elif (i, c) in t.second:
                text = f"<u>{text}</u>"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    if t.note:
        lines += ["", t.note]
    return "\n".join(lines) + "\n"


def to_csv(t: ReportTable) -> str:
    return t.frame.to_csv(index=False, lineterminator="\n")


def to_latex(t: ReportTable) -> str:
    cols = list(t.frame.columns)
    spec = "".join("r" if pd.api.types.is_numeric_dtype(t.frame[c]) else "l" for c in cols)
    lines = []
    if t.note:
        lines.append("% " + t.note.replace("↑", "(up)").replace("↓", "(down)").replace("\n", " "))
    lines += [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(_tex_header(t.header(c)) for c in cols) + r" \\"]
    lines.append(r"\midrule")
    for i, row in enumerate(t.frame.itertuples(index=False)):
        if i in t.rule_before and i > 0:
            lines.append(r"\midrule")
        cells = []
        for c, v in zip(cols, row, strict=True):
            text = latex_escape(t.cell(v, c)).replace("–", "--")
            if (i, c) in t.best:
                text = f"\\textbf{{{text}}}"
            elif (i, c) in t.second:
                text = f"\\underline{{{text}}}"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _tex_header(text: str) -> str:
    return latex_escape(text).replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("°", r"$^\circ$")


def write_table(t: ReportTable, out_dir: str | os.PathLike, stem: str, formats: Sequence[str]) -> list[Path]:
    """`stem`.md/.csv/.tex (those in `formats`) in `out_dir`, each written atomically."""
    writers = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
    out = []
    for ext in TABLE_FORMATS:
        if ext in formats:
            path = Path(out_dir) / f"{stem}.{ext}"
            atomic_write_bytes(path, writers[ext](t).encode())
            out.append(path)
    return out


def rank_marks(values: Sequence[float], higher_is_better: bool) -> tuple[list[int], list[int]]:
    """Positions of the best and the second-best finite values (ties share a rank)."""
    finite = sorted({v for v in values if isinstance(v, float) and math.isfinite(v)}, reverse=higher_is_better)
    if not finite:
        return [], []
    best = [i for i, v in enumerate(values) if v == finite[0]]
    second = [i for i, v in enumerate(values) if len(finite) > 1 and v == finite[1]]
    return best, second
