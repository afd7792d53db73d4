"""`cfbench eval`: the w x severity sweep specs, the results store of a run, and its fidelity-vs-quality tables."""

from __future__ import annotations

from cfbench.eval.config import NON_RESULT_KEYS
from cfbench.eval.spec import parse_severity_spec, parse_w_spec
from cfbench.eval.store import GroupKey, PartKey, RunStore, StoreError, config_differences
from cfbench.eval.tables import FidelityTable, build_table, load_table, rich_table, terminal_rows, write_tables

__all__ = [
    "NON_RESULT_KEYS",
    "FidelityTable",
    "GroupKey",
    "PartKey",
    "RunStore",
    "StoreError",
    "build_table",
    "config_differences",
    "load_table",
    "parse_severity_spec",
    "parse_w_spec",
    "rich_table",
    "terminal_rows",
    "write_tables",
]
