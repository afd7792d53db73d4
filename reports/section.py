"""What each report returns: a titled section with its tables, figures and notes, for the HTML page and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reports.tabular import ReportTable


@dataclass
class Figure:
    stem: str
    caption: str
    paths: list[Path]


@dataclass
class Table:
    stem: str
    table: ReportTable
    paths: list[Path]


@dataclass
class Section:
    title: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [p for f in self.figures for p in f.paths] + [p for t in self.tables for p in t.paths]
