"""A small table type for the reports, with cells marked best (bold) or second (underlined), written as markdown, CSV
(plain numbers) and LaTeX booktabs by `cfbench.tabular`, the writer of the fidelity-vs-quality table too."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cfbench.tabular import (
    MISSING,
    TABLE_FORMATS,
    csv_text,
    latex_escape,
    latex_header,
    latex_table,
    markdown_escape,
    markdown_table,
    number,
    setting,
    write_table_files,
)


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
        """`value` as text: a w as typed, other floats as measured numbers, "–" for a missing value."""
        if column == "w" and isinstance(value, float) and math.isfinite(value):
            return setting(value)  # a fidelity weight is a setting, shown as typed (0.5), not as a measurement
        if isinstance(value, float):
            return number(value)
        if isinstance(value, (int,)) and not isinstance(value, bool):
            return str(value)
        if value is None:
            return MISSING
        return str(value)

    def right(self) -> list[bool]:
        """Numeric columns right-aligned, the others left-aligned."""
        return [pd.api.types.is_numeric_dtype(self.frame[c]) for c in self.frame.columns]

    def marked(self, i: int, column: str, text: str, best: str, second: str) -> str:
        """`text` of cell (`i`, `column`) in the `best` or `second` format (with {} for the text) if it is marked."""
        if (i, column) in self.best:
            return best.format(text)
        if (i, column) in self.second:
            return second.format(text)
        return text


def to_markdown(t: ReportTable) -> str:
    """The table in markdown: best in bold, second underlined, the note below."""
    cols = list(t.frame.columns)
    rows = [
        [t.marked(i, c, markdown_escape(t.cell(v, c)), "**{}**", "<u>{}</u>") for c, v in zip(cols, row, strict=True)]
        for i, row in enumerate(t.frame.itertuples(index=False))
    ]
    return markdown_table([markdown_escape(t.header(c)) for c in cols], t.right(), rows, [t.note] if t.note else [])


def to_csv(t: ReportTable) -> str:
    """The table's values as CSV (numbers unformatted)."""
    return csv_text(t.frame)


def to_latex(t: ReportTable) -> str:
    """The table as a booktabs tabular: best in bold, second underlined, a \\midrule before each block."""
    cols = list(t.frame.columns)
    blocks: list[list[list[str]]] = [[]]
    for i, row in enumerate(t.frame.itertuples(index=False)):
        if i in t.rule_before and i > 0:
            blocks.append([])
        blocks[-1].append(
            [
                t.marked(i, c, latex_escape(t.cell(v, c)), "\\textbf{{{}}}", "\\underline{{{}}}")
                for c, v in zip(cols, row, strict=True)
            ]
        )
    return latex_table([latex_header(t.header(c)) for c in cols], t.right(), blocks, comment=t.note)


def write_table(t: ReportTable, out_dir: str | os.PathLike, stem: str, formats: Sequence[str]) -> list[Path]:
    """`stem`.md/.csv/.tex (those in `formats`) in `out_dir`, each written atomically."""
    writers = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
    texts = {ext: writers[ext](t) for ext in TABLE_FORMATS if ext in formats}
    return list(write_table_files(out_dir, stem, texts).values())


def rank_marks(values: Sequence[float], higher_is_better: bool) -> tuple[list[int], list[int]]:
    """Positions of the best and the second-best finite values (ties share a rank)."""
    finite = sorted({v for v in values if isinstance(v, float) and math.isfinite(v)}, reverse=higher_is_better)
    if not finite:
        return [], []
    best = [i for i, v in enumerate(values) if v == finite[0]]
    second = [i for i, v in enumerate(values) if len(finite) > 1 and v == finite[1]]
    return best, second
