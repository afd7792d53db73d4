"""Reports of `cfbench eval` run directories: fidelity vs quality, codebook usage, side faces, paper-style
figures and tables, and an HTML page. They read only run dirs (`reports.load`), never run models.

`build_report(run_dirs, out_dir, formats)` writes every report and returns the paths; `cfbench report` calls it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cfbench.errors import BadInputError

FORMATS = ("md", "csv", "tex", "png", "pdf", "html")


def parse_formats(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``md,csv,png`` -> ('md', 'csv', 'png'); BadInputError naming an unknown format."""
    if text is None:
        return FORMATS
    items = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    bad = [s for s in items if s not in FORMATS]
    if bad or not items:
        raise BadInputError(
            f"unknown report format(s) {bad or text!r}; use a comma-separated subset of {','.join(FORMATS)}"
        )
    return tuple(dict.fromkeys(items))


def build_report(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    formats: str | Sequence[str] | None = None,
    *,
    n_boot: int = 1000,
    worst_k: int = 4,
    paper_w: float = 0.5,
    codebook_size: int | None = None,
) -> list[Path]:
    """Write every report for `run_dirs` into `out_dir`; the written files, report.html last when asked for."""
    from reports import codebook, codebook_nn, fidelity_quality, html, paper, side_face
    from reports.load import combine, load_run

    fmts = parse_formats(formats)
    if not run_dirs:
        raise BadInputError("give at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    run = combine(runs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    # the HTML page embeds the PNGs, so asking for html writes them too
    files = fmts + ("png",) if "html" in fmts and "png" not in fmts else fmts
    sections = [
        fidelity_quality.report(run, out, files, n_boot=n_boot),
        codebook.report(run, out, files, size=codebook_size),
        codebook_nn.report(run, out, files),
        side_face.report(run, out, files, k=worst_k),
        paper.report(run, out, files, w=paper_w),
    ]
    paths = [p for s in sections for p in s.paths]
    if "html" in fmts:
        paths.append(html.write_html(runs, sections, out))
    return paths


__all__ = ["FORMATS", "build_report", "parse_formats"]
