"""The `cfbench` command line: version, help, restore end to end on a small checkpoint, and bad input."""

import numpy as np
import pytest
import torch

from cfbench import __version__
from cfbench.cli import main
from cfbench.imageio import read_image, write_image
from cfbench.models import build_model, save_checkpoint


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """A randomly initialised 512px CodeFormer with few channels, saved as safetensors."""
    torch.manual_seed(0)
    model = build_model("codeformer_mini", nf=32, ch_mult=[1, 1, 1, 1, 1, 1], n_layers=1, dim_embd=64)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "small.safetensors")


@pytest.fixture
def faces(tmp_path):
    g = torch.Generator().manual_seed(0)
    folder = tmp_path / "in"
    for name in ("a.png", "b.png"):
        write_image(folder / name, torch.rand(3, 512, 512, generator=g))
    return folder


def run_restore(inputs, checkpoint, out, *extra):
    """`cfbench restore` on the CPU; returns the exit code."""
    return main(
        ["restore", *map(str, inputs), "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu", *extra]
    )


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cfbench {__version__}"


def test_help_lists_every_command_group(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in ("eval", "degrade", "train", "report", "regress", "weights", "datasets", "restore", "bench"):
        assert group in out


@pytest.mark.slow
def test_restore_writes_one_file_per_input_with_the_same_name(faces, small_checkpoint, tmp_path):
    out = tmp_path / "out"
    rc = run_restore([faces], small_checkpoint, out, "--w", "0.5", "--batch-size", "2")
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    img = read_image(out / "a.png")
    assert img.shape == (3, 512, 512) and 0 <= float(img.min()) and float(img.max()) <= 1


@pytest.mark.slow
def test_restore_cli_equals_the_python_api(faces, small_checkpoint, tmp_path):
    from cfbench.restoration import restore

    out = tmp_path / "out"
    assert run_restore([faces / "a.png"], small_checkpoint, out, "--w", "0.3", "--nn-lookup") == 0
    api = restore(read_image(faces / "a.png")[None], w=0.3, model=small_checkpoint, lookup="nearest", device="cpu")
    from_file = read_image(out / "a.png")
    np.testing.assert_allclose(from_file.numpy(), api[0].numpy(), atol=0.5 / 255 + 1e-6)


def test_restore_wrong_size_is_refused_unless_resize(tmp_path, small_checkpoint, capsys):
    write_image(tmp_path / "small.png", torch.rand(3, 100, 120))
    rc = run_restore([tmp_path / "small.png"], small_checkpoint, tmp_path / "o", "--aligned")
    err = capsys.readouterr().err
    assert rc == 2 and "small.png is 120x100" in err and "--resize" in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@pytest.mark.parametrize(
    "args,message",
    [
        (["--w", "1.5"], "--w must be in [0, 1]"),
        (["--checkpoint", "/nonexistent.pth"], "neither a registered weights name"),
        (["--checkpoint", "codeformer"], "weights 'codeformer' are missing"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_restore_bad_options(faces, tmp_path, capsys, args, message):
    rc = main(["restore", str(faces), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_restore_corrupt_image(tmp_path, small_checkpoint, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rc = run_restore([tmp_path / "broken.png"], small_checkpoint, tmp_path / "o")
    assert rc == 2
    assert "cannot decode" in capsys.readouterr().err


def test_restore_wrong_checkpoint_kind(faces, tmp_path, capsys):
    disc = save_checkpoint(build_model("vqgan_disc"), tmp_path / "disc.safetensors")
    rc = run_restore([faces], disc, tmp_path / "o")
    assert rc == 2
    assert "not a CodeFormer" in capsys.readouterr().err


def test_weights_list_json(capsys):
    import json

    assert main(["weights", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["codeformer"]["url"].endswith("/v0.1.0/codeformer.pth")
    assert rows["codeformer"]["present"] is False


def test_weights_import_then_verify(tmp_path, capsys):
    """An unpinned name takes a file only when it loads as what the name must be (tests/reliability has more)."""
    src = tmp_path / "codeformer.pth"
    src.write_bytes(b"pretend weights")
    assert main(["weights", "import", "codeformer", str(src)]) == 2
    heads = tmp_path / "lpips_v0.1_vgg.pth"
    torch.save(
        {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}, heads
    )
    assert main(["weights", "import", "lpips_vgg_lin", str(heads)]) == 0
    assert main(["weights", "verify", "lpips_vgg_lin"]) == 0
    assert "lpips_vgg_lin: ok" in capsys.readouterr().err


def test_eval_baseline_and_regress_flags_are_the_sweep_config_fields():
    """Every SweepConfig field has an `eval` flag and every flag is a field (besides --config, --json and --rehash,
    which act on one invocation and are not settings of the run); baseline and regress take a subset, and the gate
    never skips."""
    import dataclasses

    import typer

    from cfbench.cli import app
    from cfbench.eval.config import SweepConfig

    fields = {f.name for f in dataclasses.fields(SweepConfig)}
    commands = typer.main.get_command(app).commands

    def params(name):
        return {{"checkpoint": "checkpoints"}.get(p.name, p.name) for p in commands[name].params}

    assert params("eval") - {"config", "as_json", "rehash"} == fields
    assert params("baseline") - {"out", "config"} < fields and "skip_missing" not in params("baseline")
    assert params("regress") - {"baseline", "tolerances", "report_md", "junit"} < fields
    assert "skip_missing" not in params("regress")


def _boom(*args, **kwargs):
    return 1 / 0


@pytest.mark.parametrize("debug", [False, True])
def test_a_programming_error_is_an_internal_error_with_a_logged_traceback(tmp_path, monkeypatch, capsys, debug):
    from cfbench.cli import degrade
    from cfbench.errors import EXIT_INTERNAL
    from cfbench.weights import cfbench_home

    monkeypatch.setattr(degrade, "list_images", _boom)
    if debug:
        monkeypatch.setenv("CFBENCH_DEBUG", "1")
    assert main(["degrade", str(tmp_path), "--out", str(tmp_path / "o")]) == EXIT_INTERNAL == 3
    err = capsys.readouterr().err
    logs = list((cfbench_home() / "logs").glob("internal-*.log"))
    assert len(logs) == 1
    log = logs[0].read_text()
    assert "Traceback" in log and "ZeroDivisionError" in log and "_boom" in log and "cfbench degrade" in log
    last = err.strip().splitlines()[-1]
    assert last.startswith("internal error, please report it") and str(logs[0]) in last
    assert "ZeroDivisionError: division by zero" in last
    if debug:
        assert "Traceback" in err and "_boom" in err
    else:
        assert len(err.strip().splitlines()) == 1


def test_a_plain_value_error_is_internal_not_bad_input(tmp_path, monkeypatch, capsys):
    from cfbench.cli import degrade

    def fail(*args, **kwargs):
        raise ValueError("a bug, not the user's input")

    monkeypatch.setattr(degrade, "list_images", fail)
    assert main(["degrade", str(tmp_path), "--out", str(tmp_path / "o")]) == 3
    assert capsys.readouterr().err.startswith("internal error")


@pytest.mark.parametrize("debug", [False, True])
def test_a_user_mistake_exits_2_with_one_line(tmp_path, monkeypatch, capsys, debug):
    from cfbench.weights import cfbench_home

    if debug:
        monkeypatch.setenv("CFBENCH_DEBUG", "1")
    assert main(["degrade", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: GT folder")
    assert ("Traceback" in err) == debug and (len(err.strip().splitlines()) == 1) != debug
    assert not (cfbench_home() / "logs").exists()


@pytest.mark.parametrize("command", [["train", "stage1", "--config"], ["eval", "--config"]])
def test_a_malformed_yaml_config_is_bad_input(tmp_path, capsys, command):
    (tmp_path / "bad.yaml").write_text("foo: [")
    assert main([*command, str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml is not valid YAML" in err
