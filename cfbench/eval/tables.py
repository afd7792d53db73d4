"""The fidelity-vs-quality table of an eval run: per checkpoint and severity, a row per w.

Each per-image metric gets its mean over the images of the group and a percentile bootstrap interval of that mean
(Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13): the images of a group are resampled with
replacement `n_boot` times with ``numpy.random.default_rng(seed)``, and the interval is the (1 - confidence) / 2 and
(1 + confidence) / 2 percentiles of the resampled means. The generator is re-seeded for every group and metric,
so a cell does not depend on which other groups are in the table, and groups with the same images (the w values of
one checkpoint and severity) are resampled identically, i.e. paired. NaN values (a metric that failed on an
image) are left out of that metric's mean and interval. Distribution metrics (FID) have one value per group, read
from groups.parquet, without an interval. For every checkpoint, severity and metric the best w is marked, using the
metric's direction (`{column: higher_is_better}`, from its `MetricSpec`); ties are all marked.

Writers: `to_markdown` (best in bold), `to_csv` (plain numbers, ``<metric>_ci_low``/``_ci_high`` and
``<metric>_best`` columns), `to_latex` (booktabs; best in \\textbf), `write_tables` (all three into a run dir),
and `terminal_rows` / `rich_table` for the terminal.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cfbench.errors import BadInputError
from cfbench.eval.store.schema import GROUP_COLUMNS, GROUPS, N_IMAGES, RESULTS
from cfbench.tabular import (
    csv_text,
    decimals,
    latex_escape,
    latex_header,
    latex_table,
    markdown_escape,
    markdown_table,
    number,
    setting,
    write_table_files,
)

PER_IMAGE = "per-image"
DISTRIBUTION = "distribution"


@dataclass(frozen=True)
class TableMetric:
    name: str
    higher_is_better: bool
    kind: str  # PER_IMAGE or DISTRIBUTION

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


@dataclass
class FidelityTable:
    """`frame`: one row per (checkpoint, severity, w) with ``n_images``, and per metric its value (mean, or the
    distribution value), ``<m>_ci_low``, ``<m>_ci_high`` (NaN for distribution metrics) and ``<m>_best``."""

    frame: pd.DataFrame
    metrics: list[TableMetric]
    n_boot: int
    seed: int
    confidence: float
    skipped: list[str] = field(default_factory=list)  # metrics in the directions that the run did not measure
    caption: str = ""  # what was measured: the protocol line of the run (`cfbench.eval.protocols.protocol_line`)

    def blocks(self) -> list[tuple[tuple[str, str], pd.DataFrame]]:
        """The rows per (checkpoint, severity), in table order."""
        return [(key, block) for key, block in self.frame.groupby(["checkpoint", "severity"], sort=False)]

    def note(self) -> str:
        pct = f"{self.confidence * 100:g}%"
        return (
            (f"{self.caption}. " if self.caption else "")
            + f"Mean over images [{pct} percentile bootstrap interval, {self.n_boot} resamples, seed {self.seed}]; "
            "best w per checkpoint, severity and metric in bold; ↑ higher is better, ↓ lower is better."
        )


def bootstrap_interval(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the finite `values` and its percentile bootstrap interval."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    boot = v[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [100 * alpha, 100 * (1 - alpha)])
    return mean, float(low), float(high)


def _read(frame_or_path: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    return frame_or_path if isinstance(frame_or_path, pd.DataFrame) else pd.read_parquet(frame_or_path)


def build_table(
    results: pd.DataFrame | str | os.PathLike,
    groups: pd.DataFrame | str | os.PathLike,
    directions: Mapping[str, bool],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> FidelityTable:
    """The table from results.parquet and groups.parquet (frames or paths). `directions` maps each metric column
    to show, in order, to higher_is_better; metrics in it that neither file has are listed in `skipped`."""
    if not 0 < confidence < 1:
        raise BadInputError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise BadInputError(f"n_boot must be >= 1, got {n_boot}")
    results, groups = _read(results), _read(groups)
    metrics: list[TableMetric] = []
    skipped: list[str] = []
    for name, higher in directions.items():
        if name in results.columns:
            metrics.append(TableMetric(name, bool(higher), PER_IMAGE))
        elif name in groups.columns:
            metrics.append(TableMetric(name, bool(higher), DISTRIBUTION))
        else:
            skipped.append(name)

    keys = list(GROUP_COLUMNS)
    results = results.sort_values([*keys, "image_id"], kind="mergesort")
    group_values = groups.set_index(keys) if len(groups) else None
    records: list[dict[str, Any]] = []
    for (checkpoint, severity, w), rows in results.groupby(keys, sort=False):
        record: dict[str, Any] = {"checkpoint": checkpoint, "severity": severity, "w": float(w)}
        stored = None
        if group_values is not None and (checkpoint, severity, w) in group_values.index:
            stored = group_values.loc[(checkpoint, severity, w)]
        record[N_IMAGES] = (
            int(stored[N_IMAGES]) if stored is not None and N_IMAGES in stored else rows["image_id"].nunique()
        )
        for m in metrics:
            if m.kind == PER_IMAGE:
                mean, low, high = bootstrap_interval(rows[m.name].to_numpy(np.float64), n_boot, seed, confidence)
            else:
                mean = float(stored[m.name]) if stored is not None else math.nan
                low = high = math.nan
            record.update({m.name: mean, f"{m.name}_ci_low": low, f"{m.name}_ci_high": high})
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        frame = pd.DataFrame(columns=[*keys, N_IMAGES])
    for m in metrics:
        best = pd.Series(False, index=frame.index)
        for _, block in frame.groupby(["checkpoint", "severity"], sort=False):
            vals = block[m.name].astype(np.float64)
            if vals.notna().any():
                target = vals.max() if m.higher_is_better else vals.min()
                best.loc[block.index] = vals == target
        frame[f"{m.name}_best"] = best.astype(bool)
    return FidelityTable(frame, metrics, n_boot, seed, confidence, skipped)


def load_table(run_dir: str | os.PathLike, directions: Mapping[str, bool], **kwargs: Any) -> FidelityTable:
    """`build_table` from the results.parquet and groups.parquet of a finished run dir."""
    run_dir = Path(run_dir)
    return build_table(run_dir / RESULTS, run_dir / GROUPS, directions, **kwargs)


# ------------------------------------------------------------------------------------------------ formatting


def metric_cell(row: pd.Series, m: TableMetric) -> tuple[str, str | None, bool]:
    """The cell of metric `m` in a row of `FidelityTable.frame`: (value, interval or None, is best) as plain text."""
    value = float(row[m.name])
    d = decimals(value)
    ci = None
    if m.kind == PER_IMAGE and math.isfinite(value):
        ci = f"{number(float(row[f'{m.name}_ci_low']), d)}, {number(float(row[f'{m.name}_ci_high']), d)}"
    return number(value, d), ci, bool(row[f"{m.name}_best"])


def _right(table: FidelityTable) -> list[bool]:
    """Checkpoint and severity left-aligned, w, n and the metrics right-aligned."""
    return [False, False, True, True] + [True] * len(table.metrics)


def to_markdown(table: FidelityTable) -> str:
    """The table in markdown: the best values in bold, each interval in brackets, the note and skipped metrics."""
    header = ["checkpoint", "severity", "w", "n"] + [f"{markdown_escape(m.name)} {m.arrow}" for m in table.metrics]
    rows = []
    for _, row in table.frame.iterrows():
        cells = [markdown_escape(row["checkpoint"]), markdown_escape(row["severity"]), setting(row["w"])]
        cells.append(str(row[N_IMAGES]))
        for m in table.metrics:
            value, ci, best = metric_cell(row, m)
            value = f"**{value}**" if best else value
            cells.append(f"{value} [{ci}]" if ci else value)
        rows.append(cells)
    notes = [table.note()]
    if table.skipped:
        notes.append(f"Not measured in this run: {', '.join(markdown_escape(s) for s in table.skipped)}.")
    return markdown_table(header, _right(table), rows, notes)


def to_csv(table: FidelityTable) -> str:
    """The table's numbers: per metric its value, ``_ci_low``, ``_ci_high`` and ``_best`` columns."""
    columns = ["checkpoint", "severity", "w", N_IMAGES]
    for m in table.metrics:
        columns += [m.name, f"{m.name}_ci_low", f"{m.name}_ci_high", f"{m.name}_best"]
    return csv_text(table.frame[columns])


def to_latex(table: FidelityTable) -> str:
    """A booktabs tabular (needs ``\\usepackage{booktabs}``); a \\midrule between checkpoint/severity blocks."""
    header = ["checkpoint", "severity", "$w$", "$n$"] + [latex_header(f"{m.name} {m.arrow}") for m in table.metrics]
    blocks = []
    for _key, block in table.blocks():
        rows = []
        for _, row in block.iterrows():
            cells = [latex_escape(row["checkpoint"]), latex_escape(row["severity"]), setting(row["w"])]
            cells.append(str(row[N_IMAGES]))
            for m in table.metrics:
                value, ci, best = metric_cell(row, m)
                value = f"\\textbf{{{value}}}" if best else value
                cells.append(f"{value}\\,{{\\scriptsize {{[}}{ci}{{]}}}}" if ci else value)
            rows.append(cells)
        blocks.append(rows)
    return latex_table(header, _right(table), blocks, comment=table.note())


def write_tables(table: FidelityTable, out_dir: str | os.PathLike) -> dict[str, Path]:
    """table.md, table.csv and table.tex in `out_dir`, each written atomically."""
    texts = {"md": to_markdown(table), "csv": to_csv(table), "tex": to_latex(table)}
    return write_table_files(out_dir, "table", texts)


def terminal_rows(table: FidelityTable) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) in rich markup: text escaped, the best values in bold, intervals dimmed."""
    from rich.markup import escape

    headers = ["checkpoint", "severity", "w", "n"] + [f"{escape(m.name)} {m.arrow}" for m in table.metrics]
    rows = []
    for _, row in table.frame.iterrows():
        cells = [escape(str(row["checkpoint"])), escape(str(row["severity"])), setting(row["w"]), str(row[N_IMAGES])]
        for m in table.metrics:
            value, ci, best = metric_cell(row, m)
            value = f"[bold]{value}[/bold]" if best else value
            cells.append(f"{value} [dim]{escape(f'[{ci}]')}[/dim]" if ci else value)
        rows.append(cells)
    return headers, rows


def rich_table(table: FidelityTable, title: str | None = "fidelity vs quality") -> Any:
    """A `rich.table.Table` of `terminal_rows`, a section line between checkpoint/severity blocks."""
    from rich.markup import escape
    from rich.table import Table

    headers, rows = terminal_rows(table)
    out = Table(title=title, caption=escape(table.note()))
    for i, h in enumerate(headers):
        out.add_column(h, justify="left" if i < 2 else "right")
    previous = None
    for cells, (_, row) in zip(rows, table.frame.iterrows(), strict=True):
        block = (row["checkpoint"], row["severity"])
        if previous is not None and block != previous:
            out.add_section()
        previous = block
        out.add_row(*cells)
    return out


__all__ = [
    "DISTRIBUTION",
    "PER_IMAGE",
    "FidelityTable",
    "TableMetric",
    "bootstrap_interval",
    "build_table",
    "load_table",
    "metric_cell",
    "rich_table",
    "terminal_rows",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_tables",
]
