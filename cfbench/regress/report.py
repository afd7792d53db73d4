"""The gate's outputs: a rich terminal table, a markdown summary for a pull-request comment, and JUnit XML (one
testcase per (severity, w, metric); a regression is a <failure> with its message)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from cfbench.atomic import atomic_write_bytes
from cfbench.regress.compare import Check, failures


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def _interval(c: Check) -> str:
    return "" if c.ci_low is None or c.ci_high is None else f"[{c.ci_low:.4f}, {c.ci_high:.4f}]"


def _arrow(c: Check) -> str:
    return "↑" if c.higher_is_better else "↓"


def _tol(c: Check) -> str:
    if c.tolerance.kind == "bootstrap" and c.ci_low is not None and c.ci_high is not None:
        return f"CI [{c.ci_low:.4g}, {c.ci_high:.4g}]"
    return c.tolerance.describe()


def rich_table(checks: Sequence[Check], title: str = "cfbench regress") -> Table:
    """Status, severity, w, metric (with its direction), baseline, new, change and tolerance per check."""
    table = Table(title=title)
    for col in ("status", "sev", "w", "metric", "baseline", "new", "change", "tolerance"):
        table.add_column(col, justify="right" if col in ("w", "baseline", "new", "change") else "left")
    for c in checks:
        status = "[green]pass[/]" if c.passed else "[bold red]FAIL[/]"
        table.add_row(
            status,
            c.severity,
            f"{c.w:g}",
            f"{c.metric} {_arrow(c)}",
            "n/a" if c.baseline is None else f"{c.baseline:.5g}",
            "n/a" if c.new is None else f"{c.new:.5g}",
            "n/a" if c.change is None else f"{c.change:+.3g}",
            _tol(c),
        )
    return table


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(checks: Sequence[Check], checkpoint: str, baseline_name: str, baseline_checkpoint: str) -> str:
    """A summary ready to post as a pull-request comment."""
    failed = failures(checks)
    verdict = f"❌ {len(failed)} of {len(checks)} checks regressed" if failed else f"✅ all {len(checks)} checks passed"
    lines = [
        f"### cfbench regression gate: {verdict}",
        "",
        f"Checkpoint `{checkpoint}` against baseline `{baseline_name}` (checkpoint `{baseline_checkpoint}`).",
        "",
    ]
    if failed:
        lines += ["**Regressed:**", ""] + [
            f"- {_md_cell(c.message)} (severity {c.severity}, w {c.w:g})" for c in failed
        ]
        lines.append("")
    lines += [
        "| status | severity | w | metric | baseline | interval | new | change | tolerance |",
        "|---|---|--:|---|--:|--:|--:|--:|---|",
    ]
    for c in checks:
        lines.append(
            "| "
            + " | ".join(
                [
                    "✅ pass" if c.passed else "❌ **fail**",
                    c.severity,
                    f"{c.w:g}",
                    _md_cell(f"{c.metric} {_arrow(c)}"),
                    _fmt(c.baseline),
                    _interval(c),
                    _fmt(c.new),
                    _fmt(c.change, signed=True),
                    c.tolerance.describe(),
                ]
            )
            + " |"
        )
    lines += ["", "↑ higher is better, ↓ lower is better; interval: the baseline's bootstrap interval of the mean."]
    return "\n".join(lines) + "\n"


def junit_xml(checks: Sequence[Check], suite: str = "cfbench.regress", seconds: float = 0.0) -> bytes:
    failed = failures(checks)
    root = ET.Element("testsuites", tests=str(len(checks)), failures=str(len(failed)), errors="0")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(checks)),
        failures=str(len(failed)),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    for c in checks:
        case = ET.SubElement(ts, "testcase", classname=f"{suite}.severity_{c.severity}.w_{c.w:g}", name=c.metric)
        case.set("time", "0")
        if not c.passed:
            fail = ET.SubElement(case, "failure", message=c.message, type="regression")
            fail.text = (
                f"baseline {_fmt(c.baseline)} {_interval(c)}, new {_fmt(c.new)}, change {_fmt(c.change, True)}, "
                f"tolerance {c.tolerance.describe()}"
            )
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_markdown(text: str, path: str | os.PathLike) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_junit(checks: Sequence[Check], path: str | os.PathLike, seconds: float = 0.0) -> Path:
    return atomic_write_bytes(path, junit_xml(checks, seconds=seconds))
