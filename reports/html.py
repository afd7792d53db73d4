"""report.html: one self-contained page (PNG figures embedded as data URIs, PDFs and table files linked beside it)
with the manifest summary (config, versions, metric backends, weights hashes), every table and every figure."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cfbench.atomic import atomic_write_bytes
from reports.load import Run, run_protocol_line
from reports.section import Section
from reports.tabular import ReportTable

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1em}
th,td{padding:.2em .6em;border-bottom:1px solid #e4e4e4;text-align:right}th{border-bottom:2px solid #999}
td.t,th.t{text-align:left}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}.files{font-size:.8em}
pre{background:#f6f6f6;padding:.6em;font-size:.8em;overflow:auto;max-height:22em}
nav a{margin-right:1em}.wide{overflow-x:auto;max-width:100%}.wide td{white-space:nowrap}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def table_html(t: ReportTable) -> str:
    frame = t.frame
    text_cols = {c for c in frame.columns if frame[c].dtype.kind not in "iuf"}
    head = "".join(f'<th class="{"t" if c in text_cols else ""}">{_e(t.header(c))}</th>' for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for c, v in zip(frame.columns, row, strict=True):
            text = _e(t.cell(v, c))
            if (i, c) in t.best:
                text = f"<b>{text}</b>"
            elif (i, c) in t.second:
                text = f"<u>{text}</u>"
            cells.append(f'<td class="{"t" if c in text_cols else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{_e(t.note)}</p>' if t.note else ""
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="wide">{table}</div>{note}'  # a wide table scrolls by itself, not the page


def _links(paths: Sequence[Path], out_dir: Path) -> str:
    return " ".join(f'<a href="{_e(os.path.relpath(p, out_dir))}">{_e(p.suffix[1:])}</a>' for p in paths)


def _metric_entry(name: str, entry: dict) -> str:
    hashes = ", ".join(f"{n} {h[:12]}…" for n, h in (entry.get("weights_sha256") or {}).items())
    return f"{name}: {entry.get('backend')} ({hashes or 'no weights'})"


def manifest_html(runs: Sequence[Run]) -> str:
    parts = []
    for run in runs:
        m, prov = run.manifest, run.manifest.get("provenance") or {}
        rows = [
            ("run dir", str(run.run_dir)),
            ("protocol", run_protocol_line(run) or "not recorded"),
            ("status", f"{m.get('status')} (started {m.get('started')}, finished {m.get('finished')})"),
            ("cfbench", f"{prov.get('cfbench')} (git {prov.get('git_revision')})"),
            ("python / torch / numpy", f"{prov.get('python')} / {prov.get('torch')} / {prov.get('numpy')}"),
            ("device", f"{prov.get('device')} ({prov.get('device_name')})"),
            ("dataset", "; ".join(f"{k}: {v}" for k, v in (prov.get("dataset") or {}).items())),
            (
                "checkpoints",
                "; ".join(
                    f"{k}: sha256 {v.get('sha256', '?')[:16]}…" for k, v in (prov.get("checkpoints") or {}).items()
                ),
            ),
            ("metrics", "; ".join(_metric_entry(k, v) for k, v in (prov.get("metrics") or {}).items())),
            ("skipped metrics", json.dumps(m.get("skipped_metrics") or {})),
            ("GT pose", str(prov.get("gt_pose"))),
            ("w / severities / seed", f"{prov.get('ws')} / {prov.get('severities')} / {prov.get('seed')}"),
        ]
        body = "".join(f'<tr><th class="t">{_e(k)}</th><td class="t">{_e(v)}</td></tr>' for k, v in rows)
        parts.append(
            f"<h3>{_e(run.run_dir)}</h3><table>{body}</table>"
            f"<details><summary>full config</summary><pre>{_e(json.dumps(m.get('config'), indent=2))}</pre></details>"
        )
    return "".join(parts)


def write_html(runs: Sequence[Run], sections: Sequence[Section], out_dir: str | os.PathLike) -> Path:
    out_dir = Path(out_dir)
    nav = "".join(f'<a href="#s{i}">{_e(s.title)}</a>' for i, s in enumerate(sections))
    body = [f"<h1>cfbench report</h1><nav>{nav}</nav><h2>Run</h2>", manifest_html(runs)]
    for i, s in enumerate(sections):
        body.append(f'<h2 id="s{i}">{_e(s.title)}</h2>')
        body += [f'<p class="note">{_e(n)}</p>' for n in s.notes]
        for t in s.tables:
            body.append(f"<h3>{_e(t.table.title)}</h3>{table_html(t.table)}")
            body.append(f'<p class="files">{_e(t.stem)}: {_links(t.paths, out_dir)}</p>')
        for f in s.figures:
            png = next((p for p in f.paths if p.suffix == ".png"), None)
            img = ""
            if png is not None:
                data = base64.b64encode(png.read_bytes()).decode()
                img = f'<img alt="{_e(f.stem)}" src="data:image/png;base64,{data}">'
            body.append(
                f'<figure>{img}<figcaption>{_e(f.caption)} <span class="files">{_e(f.stem)}: '
                f"{_links(f.paths, out_dir)}</span></figcaption></figure>"
            )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>cfbench report</title>'
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
    path = out_dir / "report.html"
    atomic_write_bytes(path, page.encode())
    return path
