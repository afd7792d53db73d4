"""`cfbench report` on the committed small run dir (tests/data/run_small/run, made by its make.py with a real
eval run): every promised file, table numbers equal pandas, bad run dirs fail with one line and exit 2."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from cfbench.cli.report import register
from cfbench.errors import BadInputError
from cfbench.hashing import sha256_path
from reports import build_report, codebook, codebook_nn
from reports.load import combine, load_run

RUN = Path(__file__).resolve().parents[1] / "data" / "run_small" / "run"
CKPT = "codeformer_tiny"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    build_report([RUN], out, n_boot=200)
    return out


def _stems(out: Path) -> set[str]:
    return {p.name for p in out.iterdir()}


TABLES = [
    "fidelity_quality_table",
    "fidelity_quality_summary",
    "codebook_stats",
    "side_face_bins",
    "side_face_counts",
    "side_face_no_pose",
    "side_face_frontal_vs_profile",
    f"side_face_worst_{CKPT}",
    "paper_table1",
    "codebook_nn_agreement",
]


def test_every_promised_file_exists_in_every_format(out):
    names = _stems(out)
    run = load_run(RUN)
    tables = TABLES
    figures = [
        f"fidelity_quality_pareto_{CKPT}_identity_cos-dlib_vs_niqe",
        f"fidelity_quality_pareto_{CKPT}_psnr_vs_niqe",
        f"fidelity_quality_metric_vs_w_{CKPT}",
        *[f"fidelity_quality_heatmap_{CKPT}_{m.replace('[', '-').replace(']', '')}" for m in run.directions],
        f"codebook_usage_{CKPT}",
        f"codebook_shift_{CKPT}",
        f"codebook_spatial_change_{CKPT}",
        f"side_face_metrics_vs_yaw_{CKPT}",
        f"side_face_worst_{CKPT}",
        f"paper_qualitative_{CKPT}_severity_2",
        "codebook_nn_agreement",
    ]
    expected = [f"{t}.{e}" for t in tables for e in ("md", "csv", "tex")]
    expected += [f"{f}.{e}" for f in figures for e in ("png", "pdf")]
    expected.append("report.html")
    missing = [n for n in expected if n not in names]
    assert not missing, missing
    for n in expected:
        assert (out / n).stat().st_size > 0, n
    for f in figures:
        with Image.open(out / f"{f}.png") as im:
            im.verify()
        pdf = (out / f"{f}.pdf").read_bytes()  # a complete one-page PDF: header, a page object, the trailer
        assert (
            pdf[:5] == b"%PDF-"
            and len(re.findall(rb"/Type /Page\b(?!s)", pdf)) == 1
            and pdf.rstrip().endswith(b"%%EOF")
        ), f
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list(out.glob("*.png")))
    assert "sha256" in html and "codeformer_tiny" in html


def test_table_numbers_equal_pandas(out):
    results = pd.read_parquet(RUN / "results.parquet")
    table = pd.read_csv(out / "fidelity_quality_table.csv", dtype={"severity": str})
    want = results.groupby(["checkpoint", "severity", "w"])["psnr"].mean()
    for _, row in table.iterrows():
        assert row["psnr"] == pytest.approx(want[(row["checkpoint"], row["severity"], row["w"])], rel=1e-9)
    t1 = pd.read_csv(out / "paper_table1.csv", dtype={"severity": str})
    for _, row in t1.iterrows():
        sel = results[(results.severity == row["severity"]) & (results.w == row["w"])]
        assert row["PSNR"] == pytest.approx(sel["psnr"].mean(), rel=1e-9)
        assert row["NIQE"] == pytest.approx(sel["niqe"].mean(), rel=1e-9)
    counts = pd.read_csv(out / "side_face_counts.csv")
    assert counts["faces"].sum() == results["image_id"].nunique()
    codes = np.load(RUN / "codes.npz")
    stats = pd.read_csv(out / "codebook_stats.csv", dtype={"severity": str})
    assert stats["tokens"].sum() == int((codes["codes"] >= 0).sum())
    for _, row in stats.iterrows():
        sel = codes["codes"][codes["severity"] == row["severity"]]
        assert (
            row["used codes"] == len(np.unique(sel)) and row["dead codes"] == row["codebook size"] - row["used codes"]
        )


def test_side_face_bins_equal_pandas(out):
    results = pd.read_parquet(RUN / "results.parquet")
    bins = pd.read_csv(out / "side_face_bins.csv", dtype={"severity": str})
    yaw = results["gt_yaw"].abs()
    results["bin"] = pd.cut(
        yaw, [0, 15, 30, 45, 60, np.inf], right=False, labels=["0-15", "15-30", "30-45", "45-60", ">60"]
    )
    want = results.groupby(["severity", "w", "bin"], observed=True)["lmd[dlib]"].agg(["mean", "count"])
    for _, row in bins.iterrows():
        key = (row["severity"], row["w"], row["|yaw| bin (deg)"])
        if key in want.index:
            assert row["lmd[dlib]"] == pytest.approx(want.loc[key, "mean"], rel=1e-12)
            assert row["n"] == want.loc[key, "count"]
        else:
            assert row["n"] == 0 and np.isnan(row["lmd[dlib]"])
    assert bins.groupby(["severity", "w"])["n"].sum().eq(results["image_id"].nunique()).all()


def test_nn_agreement_equals_numpy_on_the_stored_codes(out):
    z = np.load(RUN / "codes.npz")
    table = pd.read_csv(out / "codebook_nn_agreement.csv").set_index("input")
    for sev in ("0", "2"):
        rows = z["severity"] == sev
        want = (z["codes"][rows] == z["nn_codes"][rows]).mean()
        assert table.loc[f"severity {sev}", "transformer = nearest"] == pytest.approx(want, rel=1e-12)
        want = (z["nn_codes"][rows] == z["hq_nn_codes"][rows]).mean()
        assert table.loc[f"severity {sev}", "nearest = HQ nearest"] == pytest.approx(want, rel=1e-12)
    first = z["severity"] == "0"  # the GT codes of each image, once
    want = (z["hq_codes"][first] == z["hq_nn_codes"][first]).mean()
    assert table.loc["HQ (GT face)", "transformer = nearest"] == pytest.approx(want, rel=1e-12)
    assert table["images"].tolist() == [2, 2, 2]


def test_a_run_without_nn_codes_marks_the_agreement_absent(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("images"))
    with np.load(run / "codes.npz") as z:
        kept = {k: z[k] for k in ("checkpoint", "severity", "image_id", "codes", "n_tokens")}
    np.savez(run / "codes.npz", **kept)
    section = codebook_nn.report(load_run(run), tmp_path, ("md", "csv", "png"))
    assert not section.paths and not list(tmp_path.glob("codebook_nn_agreement*"))
    assert section.notes[0].startswith("codebook_nn_agreement: absent") and "--store-nn-codes" in section.notes[0]
    assert codebook.report(load_run(run), tmp_path, ("md",)).paths  # the rest of the codebook report is there


def test_formats_subset_and_html_only(tmp_path):
    build_report([RUN], tmp_path / "a", "csv,pdf", n_boot=10)
    names = _stems(tmp_path / "a")
    assert "fidelity_quality_summary.csv" in names and not any(
        n.endswith((".md", ".tex", ".png", ".html")) for n in names
    )
    with pytest.raises(BadInputError, match="unknown report format"):
        build_report([RUN], tmp_path / "b", "md,jpeg")


def test_a_missing_metric_is_marked_absent(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("images"))
    results = pd.read_parquet(run / "results.parquet").drop(columns=["niqe"])
    results.to_parquet(run / "results.parquet", index=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["outputs"]["results"]["sha256"] = sha256_path(run / "results.parquet")  # as finalize would record it
    del manifest["directions"]["niqe"]
    manifest["skipped_metrics"] = {"niqe": "weights missing"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    build_report([run], tmp_path / "out", "md,csv", n_boot=10)
    summary = (tmp_path / "out" / "fidelity_quality_summary.md").read_text()
    assert "Not measured in this run: niqe" in summary
    assert "NIQE" in (tmp_path / "out" / "paper_table1.md").read_text().split("Not measured:")[1]
    assert "niqe" not in pd.read_csv(tmp_path / "out" / "fidelity_quality_table.csv").columns
    for stem in TABLES:  # every table is still there
        assert (tmp_path / "out" / f"{stem}.md").stat().st_size > 0, stem


def _cli():
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, so the command is called by name as under `cfbench`
        pass

    return app


def test_cli_writes_files_and_rejects_non_run_dirs(tmp_path):
    runner = CliRunner()
    res = runner.invoke(_cli(), ["report", str(RUN), "--out", str(tmp_path / "o"), "--format", "md", "--n-boot", "10"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "fidelity_quality_table.md").is_file()
    bad = tmp_path / "not_a_run"
    bad.mkdir()
    (bad / "x.txt").write_text("hi")
    res = runner.invoke(_cli(), ["report", str(bad), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a cfbench eval run directory" in lines[0]
    with pytest.raises(BadInputError):
        load_run(bad)


def test_combined_runs_keep_the_code_sets_of_the_runs_that_stored_them(tmp_path):
    run = tmp_path / "old"
    shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("images"))
    with np.load(run / "codes.npz") as z:
        np.savez(run / "codes.npz", **{k: z[k] for k in ("checkpoint", "severity", "image_id", "codes", "n_tokens")})
    merged = combine([load_run(RUN), load_run(run)])
    n = len(load_run(RUN).codes["image_id"])
    assert merged.codes["nn_codes"].shape == merged.codes["codes"].shape == (2 * n, 256)
    assert (merged.codes["nn_codes"][n:] == -1).all()
    np.testing.assert_array_equal(merged.codes["nn_codes"][:n], load_run(RUN).codes["nn_codes"])
    frame, missing = codebook_nn.table(merged.codes)
    assert missing == [f"old/{CKPT}"] and set(frame["checkpoint"]) == {f"run/{CKPT}"}


def test_a_corrupted_results_file_is_one_clear_error(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("images"))
    (run / "results.parquet").write_bytes(b"not parquet")
    with pytest.raises(BadInputError, match="results.parquet was changed after `cfbench eval` finished"):
        load_run(run)
    # a run finished before finalize recorded the outputs' sha256: the file itself is found unreadable
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["outputs"]["results"]["sha256"], manifest["outputs"]["groups"]["sha256"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match="results.parquet is unreadable"):
        load_run(run)
    (run / "results.parquet").unlink()
    with pytest.raises(BadInputError, match="has no results.parquet"):
        load_run(run)
    shutil.copy(RUN / "results.parquet", run / "results.parquet")
    (run / "groups.parquet").unlink()
    with pytest.raises(BadInputError, match="has no groups.parquet"):
        load_run(run)
    shutil.copy(RUN / "groups.parquet", run / "groups.parquet")
    (run / "codes.npz").write_bytes(b"PK not a zip")
    with pytest.raises(BadInputError, match="codes.npz is unreadable"):
        load_run(run)
