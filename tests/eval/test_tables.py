"""Fidelity-vs-quality tables: best w per direction, bootstrap intervals, escaping, and the three files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfbench.eval.store import PartKey, RunStore
from cfbench.eval.tables import (
    bootstrap_interval,
    build_table,
    load_table,
    rich_table,
    terminal_rows,
    to_latex,
    to_markdown,
    write_tables,
)
from cfbench.tabular import latex_escape, markdown_escape

WS = (0.0, 0.5, 1.0)
DIRECTIONS = {"psnr[y]": True, "lpips[vgg]": False, "fid[gt]": False, "niqe": False}


def make_results(n: int = 30, seed: int = 0) -> pd.DataFrame:
    """psnr rises with w, lpips falls with w (so the best w is 1 for both), identity is noise."""
    rng = np.random.default_rng(seed)
    records = []
    for checkpoint in ("official", "my_ckpt"):
        for severity in ("0", "2"):
            for w in WS:
                for i in range(n):
                    records.append(
                        {
                            "checkpoint": checkpoint,
                            "severity": severity,
                            "w": w,
                            "image_id": f"img{i:03d}",
                            "psnr[y]": 24 + 2 * w + rng.normal(0, 0.5),
                            "lpips[vgg]": 0.4 - 0.2 * w + rng.normal(0, 0.02),
                        }
                    )
    return pd.DataFrame(records)


def make_groups(results: pd.DataFrame) -> pd.DataFrame:
    groups = results.groupby(["checkpoint", "severity", "w"]).agg(n_images=("image_id", "nunique")).reset_index()
    groups["fid[gt]"] = 50 - 20 * (groups["w"] - 0.5) ** 2  # lowest (best) at both ends: a tie
    return groups


@pytest.fixture(scope="module")
def table():
    results = make_results()
    return build_table(results, make_groups(results), DIRECTIONS, n_boot=500, seed=0)


def test_columns_and_skipped(table):
    assert [m.name for m in table.metrics] == ["psnr[y]", "lpips[vgg]", "fid[gt]"]
    assert [m.kind for m in table.metrics] == ["per-image", "per-image", "distribution"]
    assert table.skipped == ["niqe"]
    assert len(table.frame) == 2 * 2 * len(WS) and (table.frame["n_images"] == 30).all()


def test_best_w_honours_direction(table):
    frame = table.frame
    for _, block in frame.groupby(["checkpoint", "severity"]):
        assert block.loc[block["psnr[y]_best"], "w"].tolist() == [1.0]  # higher is better
        assert block.loc[block["lpips[vgg]_best"], "w"].tolist() == [1.0]  # lower is better
        assert block.loc[block["fid[gt]_best"], "w"].tolist() == [0.0, 1.0]  # ties both marked
    flipped = build_table(make_results(), make_groups(make_results()), {"psnr[y]": False, "lpips[vgg]": True})
    for _, block in flipped.frame.groupby(["checkpoint", "severity"]):
        assert block.loc[block["psnr[y]_best"], "w"].tolist() == [0.0]
        assert block.loc[block["lpips[vgg]_best"], "w"].tolist() == [0.0]


def test_means_equal_direct_computation(table):
    results = make_results()
    direct = results.groupby(["checkpoint", "severity", "w"])[["psnr[y]", "lpips[vgg]"]].mean()
    got = table.frame.set_index(["checkpoint", "severity", "w"])
    np.testing.assert_allclose(got.loc[direct.index, "psnr[y]"], direct["psnr[y]"], rtol=1e-12)
    np.testing.assert_allclose(got.loc[direct.index, "lpips[vgg]"], direct["lpips[vgg]"], rtol=1e-12)
    assert got["fid[gt]_ci_low"].isna().all()


def test_bootstrap_interval_contains_mean_and_is_reproducible(table):
    frame = table.frame
    for m in ("psnr[y]", "lpips[vgg]"):
        assert (frame[f"{m}_ci_low"] <= frame[m]).all() and (frame[m] <= frame[f"{m}_ci_high"]).all()
        assert (frame[f"{m}_ci_low"] < frame[f"{m}_ci_high"]).all()
    values = np.random.default_rng(5).normal(10, 2, 200)
    a, b = bootstrap_interval(values, 1000, seed=7), bootstrap_interval(values, 1000, seed=7)
    assert a == b and a[1] < a[0] < a[2]
    assert bootstrap_interval(values, 1000, seed=8) != a
    # about the normal-theory interval mean +- 1.96 sd / sqrt(n)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert abs((a[2] - a[1]) / 2 - half) < 0.15 * half
    again = build_table(make_results(), make_groups(make_results()), DIRECTIONS, n_boot=500, seed=0)
    pd.testing.assert_frame_equal(again.frame, frame)


def test_bootstrap_edge_cases():
    assert bootstrap_interval(np.array([3.0])) == (3.0, 3.0, 3.0)
    assert all(np.isnan(bootstrap_interval(np.array([np.nan, np.nan]))))
    mean, low, high = bootstrap_interval(np.array([1.0, np.nan, 3.0, 2.0]))
    assert mean == 2.0 and 1.0 <= low <= mean <= high <= 3.0


def test_latex_escaping():
    assert latex_escape("lpips[vgg]") == "lpips{[}vgg{]}"
    assert latex_escape("identity_cos[arcface]") == r"identity\_cos{[}arcface{]}"
    assert latex_escape(r"a&b%c$d#e{f}g~h^i\j") == (
        r"a\&b\%c\$d\#e\{f\}g\textasciitilde{}h\textasciicircum{}i\textbackslash{}j"
    )
    assert markdown_escape("a|b*c") == r"a\|b\*c"


def test_markdown_and_latex_content(table):
    md = to_markdown(table)
    assert "| psnr[y] ↑ | lpips[vgg] ↓ | fid[gt] ↓ |" in md
    row = next(line for line in md.splitlines() if line.startswith("| my_ckpt | 2 | 1 |"))
    assert row.count("**") == 6  # psnr, lpips and fid are best at w = 1
    assert "Not measured in this run: niqe." in md

    tex = to_latex(table)
    lines = tex.splitlines()
    assert lines[1].startswith(r"\begin{tabular}{llrrrrr}") and lines[2] == r"\toprule"
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"] and tex.count(r"\midrule") == 4
    assert r"psnr{[}y{]} $\uparrow$" in tex and r"lpips{[}vgg{]} $\downarrow$" in tex
    assert r"my\_ckpt" in tex and "my_ckpt" not in tex.replace(r"my\_ckpt", "")
    assert tex.count(r"\textbf{") == md.count("**") // 2
    body = "\n".join(line for line in lines if not line.startswith("%"))
    assert "[" not in body.replace("{[}", "")  # no bare bracket that \\ or \midrule could swallow


def test_terminal_rows_escape_markup(table):
    headers, rows = terminal_rows(table)
    assert headers[4] == r"psnr\[y] ↑" and len(rows) == len(table.frame)
    assert any("[bold]" in c for r in rows for c in r)
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(rich_table(table))
    text = console.export_text()
    assert "psnr[y] ↑" in text and "[bold]" not in text


def test_write_tables_from_a_run_dir(tmp_path):
    store = RunStore(tmp_path)
    store.open({"w": list(WS)}, {})
    results = make_results(n=8)
    for (checkpoint, severity), rows in results.groupby(["checkpoint", "severity"]):
        store.write_part(PartKey(checkpoint, severity, 0), rows)
    groups = make_groups(results)
    dist = groups[["checkpoint", "severity", "w", "fid[gt]"]].to_dict("records")
    store.finalize(dist, metric_columns=["psnr[y]", "lpips[vgg]"])
    table = load_table(tmp_path, DIRECTIONS, n_boot=200, seed=1)
    paths = write_tables(table, tmp_path)
    assert sorted(p.name for p in paths.values()) == ["table.csv", "table.md", "table.tex"]
    assert all(p.is_file() for p in paths.values())
    assert not list(tmp_path.glob(".*.tmp"))
    csv = pd.read_csv(paths["csv"], dtype={"severity": str})
    assert list(csv.columns[:8]) == [
        "checkpoint",
        "severity",
        "w",
        "n_images",
        "psnr[y]",
        "psnr[y]_ci_low",
        "psnr[y]_ci_high",
        "psnr[y]_best",
    ]
    direct = results.groupby(["checkpoint", "severity", "w"])["psnr[y]"].mean().reset_index()
    merged = csv.merge(direct, on=["checkpoint", "severity", "w"], suffixes=("", "_direct"))
    np.testing.assert_allclose(merged["psnr[y]"], merged["psnr[y]_direct"], rtol=1e-12)
    assert paths["md"].read_text().startswith("| checkpoint |")
    assert r"\toprule" in paths["tex"].read_text()
