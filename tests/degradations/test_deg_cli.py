"""``cfbench degrade`` and `degrade_folder`: byte-identical re-runs, completion, workers, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cfbench.cli import degrade as degrade_cli
from degradations import derive_seed, load_preset
from degradations.folder import PARAMS_FILE, degrade_folder, read_image
from tests.degradations.helpers import bundled_face_paths


@pytest.fixture()
def gt_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "gt"
    folder.mkdir()
    for path in bundled_face_paths():
        shutil.copy(path, folder / path.name)
    return folder


def _app() -> typer.Typer:
    app = typer.Typer()
    degrade_cli.register(app)

    @app.callback()
    def _root() -> None:  # a callback keeps 'degrade' a named subcommand, as in the cfbench app
        pass

    return app


def _run(*args: str) -> object:
    return CliRunner().invoke(_app(), ["degrade", *args])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_cli_twice_gives_byte_identical_files(gt_dir: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        result = _run(str(gt_dir), "--preset", "celeba-test", "--seed", "3", "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        runs.append(_snapshot(tmp_path / name))
    assert runs[0] == runs[1]
    assert sorted(runs[0]) == ["celebahq_015248.png", "celebahq_074075.png", "ffhq_00000.png", PARAMS_FILE]
    records = [json.loads(line) for line in runs[0][PARAMS_FILE].decode().splitlines()]
    assert [r["id"] for r in records] == ["celebahq_015248", "celebahq_074075", "ffhq_00000"]
    for r in records:
        assert r["seed"] == derive_seed(3, "gt", r["id"], None)
        assert r["pipeline"] == "celeba-test" and r["backend"] == "cpu" and r["base_seed"] == 3
        assert r == {**r, **load_preset("celeba-test").sample(r["seed"])}  # every sampled value is recorded


def test_outputs_replay_from_params(gt_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(str(gt_dir), "--severity", "3", "--seed", "1", "--out", str(out)).exit_code == 0
    records = [json.loads(line) for line in (out / PARAMS_FILE).read_text().splitlines()]
    assert all(r["pipeline"] == "severity-scale" and r["severity"] == "3" for r in records)
    pipe = load_preset("severity-scale", 3)
    for r in records:
        lq = pipe.apply(read_image(gt_dir / r["file"]), r)
        assert (lq == read_image(out / f"{r['id']}.png")).all()


def test_existing_dir_is_completed_not_overwritten(gt_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(gt_dir), "--seed", "5", "--out", str(out)]
    assert _run(*args).exit_code == 0
    before = _snapshot(out)
    kept = out / "ffhq_00000.png"
    kept_stat = kept.stat()
    (out / "celebahq_015248.png").unlink()
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert "wrote 1 LQ image(s), kept 2" in result.output
    assert _snapshot(out) == before
    assert kept.stat().st_ino == kept_stat.st_ino and kept.stat().st_mtime_ns == kept_stat.st_mtime_ns


def test_other_arguments_into_an_existing_dir_need_overwrite(gt_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(str(gt_dir), "--seed", "5", "--out", str(out)).exit_code == 0
    result = _run(str(gt_dir), "--seed", "6", "--out", str(out))
    assert isinstance(result.exception, ValueError)
    assert "written with other arguments" in str(result.exception) and "--overwrite" in str(result.exception)
    result = _run(str(gt_dir), "--seed", "6", "--out", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert "wrote 3 LQ image(s)" in result.output
    fresh = tmp_path / "fresh"
    assert _run(str(gt_dir), "--seed", "6", "--out", str(fresh)).exit_code == 0
    assert _snapshot(out) == _snapshot(fresh)


def test_worker_counts_and_batch_sizes_give_identical_files(gt_dir: Path, tmp_path: Path) -> None:
    degrade_folder(gt_dir, tmp_path / "w0", preset="codeformer-train", seed=2, workers=0, batch_size=3)
    degrade_folder(gt_dir, tmp_path / "w2", preset="codeformer-train", seed=2, workers=2, batch_size=1)
    assert _snapshot(tmp_path / "w0") == _snapshot(tmp_path / "w2")


def test_torch_backend_writes_its_name_and_close_images(gt_dir: Path, tmp_path: Path) -> None:
    degrade_folder(gt_dir, tmp_path / "cpu", seed=4)
    degrade_folder(gt_dir, tmp_path / "torch", seed=4, backend="torch", device="cpu", batch_size=3)
    records = [json.loads(line) for line in (tmp_path / "torch" / PARAMS_FILE).read_text().splitlines()]
    assert {r["backend"] for r in records} == {"torch"}
    for r in records:
        a, b = (
            read_image(tmp_path / "cpu" / f"{r['id']}.png"),
            read_image(tmp_path / "torch" / f"{r['id']}.png"),
        )
        assert float((a - b).abs().mean()) < 2 / 255


def test_bad_cli_input_raises_one_line_errors(gt_dir: Path, tmp_path: Path) -> None:
    result = _run(str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert isinstance(result.exception, FileNotFoundError) and "missing" in str(result.exception)
    (gt_dir / "clip.mp4").write_bytes(b"x")
    result = _run(str(gt_dir), "--out", str(tmp_path / "o"))
    assert isinstance(result.exception, ValueError) and "clip.mp4 is not an image" in str(result.exception)
    (gt_dir / "clip.mp4").unlink()
    (gt_dir / "broken.png").write_bytes(b"not a png")
    result = _run(str(gt_dir), "--out", str(tmp_path / "o"))
    assert isinstance(result.exception, ValueError) and "broken.png" in str(result.exception)
    (gt_dir / "broken.png").unlink()
    result = _run(str(gt_dir), "--preset", "celeba", "--out", str(tmp_path / "o"))
    assert isinstance(result.exception, ValueError) and "unknown degradation preset 'celeba'" in str(result.exception)
    result = _run(str(gt_dir), "--severity", "7", "--out", str(tmp_path / "o"))
    assert isinstance(result.exception, ValueError) and "e.g." in str(result.exception)
    result = _run(str(gt_dir), "--severity", "1,2", "--out", str(tmp_path / "o"))
    assert isinstance(result.exception, ValueError) and "one severity per run" in str(result.exception)
    result = _run(str(gt_dir), "--out", str(gt_dir))
    assert isinstance(result.exception, ValueError) and "is the GT folder" in str(result.exception)


def test_cfbench_main_maps_bad_input_to_exit_code_2(gt_dir: Path, tmp_path: Path) -> None:
    try:
        from cfbench.cli import main
    except ImportError as exc:  # the other commands of the app may still be in progress
        pytest.skip(f"cfbench.cli does not import yet: {exc}")
    assert main(["degrade", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert main(["degrade", str(gt_dir), "--out", str(tmp_path / "o"), "--seed", "1"]) == 0
