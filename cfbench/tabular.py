"""The one writer of result tables (markdown, CSV, LaTeX booktabs), used by the fidelity-vs-quality table
(`cfbench.eval.tables`) and the reports' tables (`reports.tabular`).

Callers give the cells as text they have formatted and marked (bold best values...); this module owns how numbers
are written (`number`: about four significant digits, "–" when not finite), the escaping of the two markups, and
the layout of each format. CSV is pandas' plain numbers (`csv_text`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from cfbench.atomic import atomic_write_bytes

TABLE_FORMATS = ("md", "csv", "tex")
MISSING = "–"  # a value that is not finite (a metric that failed, a missing group)

_MD_SPECIAL = {"\\": "\\\\", "|": "\\|", "*": "\\*", "`": "\\`"}
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # a cell that starts with [ right after \\ or \midrule would be read as their optional argument
    "[": "{[}",
    "]": "{]}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def decimals(x: float) -> int:
    """About four significant digits, at most four decimals: 31.52, 0.8123, 123.5, 1234."""
    if not math.isfinite(x) or x == 0:
        return 4
    return int(min(4, max(0, 3 - math.floor(math.log10(abs(x))))))


def number(x: float, places: int | None = None) -> str:
    """A measured value with `places` decimals (default `decimals(x)`), or "–" when it is not finite."""
    if not math.isfinite(x):
        return MISSING
    return f"{x:.{decimals(x) if places is None else places}f}"


def setting(value: float) -> str:
    """A setting (a fidelity weight w) as typed: 0.5, 1, not as a measurement."""
    return f"{value:g}"


def markdown_escape(text: str) -> str:
    """`text` as literal markdown table text (backslash, pipe, star and backtick escaped)."""
    return "".join(_MD_SPECIAL.get(c, c) for c in str(text))


def latex_escape(text: str) -> str:
    """`text` as literal LaTeX text: the ten special characters, and brackets braced."""
    return "".join(_TEX_SPECIAL.get(c, c) for c in str(text))


def latex_header(text: str) -> str:
    """A column header as LaTeX: escaped, with the direction arrows and the degree sign as math."""
    return latex_escape(text).replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("°", r"$^\circ$")


def markdown_table(
    header: Sequence[str], right: Sequence[bool], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
) -> str:
    """A markdown table of ready cells; `right[i]` right-aligns column i; `notes` are lines after a blank line."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if r else ":---" for r in right) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def latex_table(
    header: Sequence[str], right: Sequence[bool], blocks: Sequence[Sequence[Sequence[str]]], comment: str = ""
) -> str:
    """A booktabs tabular (needs ``\\usepackage{booktabs}``) of ready cells: a \\midrule above each block of rows;
    "–" in a cell becomes LaTeX's --; `comment` (arrows spelled out) goes in a % line above."""
    lines = []
    if comment:
        lines.append("% " + comment.replace("↑", "(up)").replace("↓", "(down)").replace("\n", " "))
    spec = "".join("r" if r else "l" for r in right)
    lines += [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(header) + r" \\"]
    for block in blocks:
        lines.append(r"\midrule")
        lines += [" & ".join(cell.replace(MISSING, "--") for cell in cells) + r" \\" for cells in block]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def csv_text(frame: pd.DataFrame) -> str:
    """`frame` as CSV: plain numbers, no index, "\\n" line ends."""
    return frame.to_csv(index=False, lineterminator="\n")


def write_table_files(out_dir: str | os.PathLike, stem: str, texts: Mapping[str, str]) -> dict[str, Path]:
    """`stem`.<format> in `out_dir` for each (format, text) of `texts`, each written atomically; the paths."""
    paths = {}
    for ext, text in texts.items():
        paths[ext] = Path(out_dir) / f"{stem}.{ext}"
        atomic_write_bytes(paths[ext], text.encode())
    return paths
