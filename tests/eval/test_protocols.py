"""Protocol runs as users type them: `cfbench eval --dataset celeba-test ...` on a real released-set layout, folder
datasets without demo settings, requested metrics that cannot run, dataset checks, weights status/fetch --for."""

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import pandas as pd
import pytest

from cfbench import weights
from cfbench.cli import main
from cfbench.data import DATASETS, get_dataset
from cfbench.errors import BadInputError, MissingRequirementsError
from cfbench.eval.config import SweepConfig, load_sweep_config
from cfbench.eval.protocols import PROTOCOLS, get_protocol, overrides, parse_protocol, protocol_line
from cfbench.eval.requirements import check_requirements, needed_weights
from cfbench.metrics import get_metric, parse_metric_list

DEMO_GT = Path(__file__).resolve().parents[2] / "cfbench" / "data" / "demo" / "gt"
FIELDS = {f.name for f in dataclasses.fields(SweepConfig)}


def celeba_layout(root: Path, n: int = 5) -> Path:
    """`root`/celeba-test in the released layout: n real 512 GT faces and an LQ made by 4x down- and upsampling."""
    gt_dir, lq_dir = root / "celeba-test" / "celeba_512_validation", root / "celeba-test" / "celeba_512_validation_lq"
    gt_dir.mkdir(parents=True)
    lq_dir.mkdir(parents=True)
    for i, path in enumerate(sorted(DEMO_GT.glob("*.png"))[:n]):
        img = cv2.imread(str(path))
        cv2.imwrite(str(gt_dir / f"{i:08d}.png"), img)
        small = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(lq_dir / f"{i:08d}.png"), cv2.resize(small, (512, 512), interpolation=cv2.INTER_CUBIC))
    return root


@pytest.fixture
def celeba_root(tmp_path, monkeypatch):
    root = celeba_layout(tmp_path / "data")
    monkeypatch.setenv("CFBENCH_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    return root


# --- the protocol files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_every_protocol_names_registered_datasets_metrics_and_sweep_options(name):
    p = get_protocol(name)
    assert p.dataset in DATASETS
    assert set(p.settings) <= FIELDS
    for metric in p.metric_names:
        assert get_metric(metric).name == metric  # exact variants, no alias
    cfg = load_sweep_config(None, protocol=name)
    assert cfg.protocol == name and cfg.dataset == p.dataset and cfg.limit == p.settings.get("limit")
    assert p.expected_images > 0 and p.citation and p.expected_images_source
    assert len(p.version) == 12


def test_the_paper_protocols_are_there_with_their_metrics():
    assert {"celeba-test", "lfw-test", "webphoto-test", "wider-test", "celebchild-test", "demo"} <= set(PROTOCOLS)
    celeba = get_protocol("celeba-test")
    assert set(celeba.metric_names) == {
        "lpips[vgg]",
        "fid[ffhq512]",
        "fid[gt]",
        "niqe",
        "deg[arcface]",
        "lmd[fan]",
        "psnr",
        "ssim",
    }
    assert celeba.settings["severity"] == "none" and celeba.settings["w"] == "0:1:0.1"
    assert celeba.settings["checkpoints"] == ["codeformer"] and celeba.expected_images == 3000
    for name in ("lfw-test", "webphoto-test", "wider-test", "celebchild-test"):
        p = get_protocol(name)
        assert p.metric_names == ["fid[ffhq512]", "niqe"] and p.settings["severity"] == "none"
    counts = {n: get_protocol(n).expected_images for n in ("lfw-test", "webphoto-test", "wider-test")}
    assert counts == {"lfw-test": 1711, "webphoto-test": 407, "wider-test": 970}


def test_a_protocol_file_with_a_wrong_key_is_refused():
    data = {k: v for k, v in get_protocol("demo").to_dict().items() if k != "name"}
    assert parse_protocol("demo", data, "demo.yaml") == get_protocol("demo")
    with pytest.raises(BadInputError, match="unknown keys \\['lq'\\]"):
        parse_protocol("x", {**data, "lq": 1}, "x.yaml")
    with pytest.raises(BadInputError, match="expected_images must be a positive integer"):
        parse_protocol("x", {**data, "expected_images": 0}, "x.yaml")
    with pytest.raises(BadInputError, match="cfbench protocols list"):
        get_protocol("celeba-tset")


# --- where a run's settings come from ------------------------------------------------------------------------


def test_no_demo_setting_reaches_a_named_run(celeba_root, tmp_path):
    demo = load_sweep_config()
    assert (demo.protocol, demo.limit, demo.severity, demo.checkpoints, demo.metrics) == (
        "demo",
        4,
        "0,2",
        ("auto",),
        None,
    )
    named = load_sweep_config(None, dataset="celeba-test")
    protocol = get_protocol("celeba-test").settings
    assert named.limit is None and named.severity == "none" and named.checkpoints == ("codeformer",)
    assert named.metrics == protocol["metrics"] and named.w == "0:1:0.1"
    folder = tmp_path / "mine"
    shutil.copytree(DEMO_GT, folder)
    neutral = load_sweep_config(None, dataset=f"folder:{folder}")
    assert neutral.protocol is None and neutral.limit is None and neutral.checkpoints == ("codeformer",)
    assert neutral.metrics is None and neutral.severity == "0,2"
    paired = tmp_path / "paired"
    shutil.copytree(DEMO_GT, paired / "gt")
    shutil.copytree(DEMO_GT, paired / "lq")
    assert load_sweep_config(None, dataset=f"folder:{paired}").severity == "none"  # the folder's own LQ
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("dataset: celeba-test\nw: '0,1'\n")
    from_file = load_sweep_config(yaml_file, batch_size=2)
    assert (from_file.protocol, from_file.w, from_file.severity, from_file.batch_size) == (
        "celeba-test",
        "0,1",
        "none",
        2,
    )


def test_overrides_and_the_protocol_line():
    p = get_protocol("celeba-test")
    cfg = load_sweep_config(None, dataset="celeba-test", w="0:1:0.5", checkpoints=("codeformer_tiny",))
    changed = overrides(p, cfg.to_dict(), SweepConfig().to_dict())
    assert changed == {"w": "0:1:0.5", "checkpoints": ["codeformer_tiny"]}
    line = protocol_line({"name": p.name, "version": p.version, "overrides": changed})
    assert line == f"protocol celeba-test (v {p.version}), overrides: w=0:1:0.5, checkpoints=codeformer_tiny"
    assert protocol_line({"name": None, "overrides": {}}) == "no protocol (neutral defaults), overrides: none"


# --- requested metrics that cannot run -----------------------------------------------------------------------


def test_celeba_test_without_weights_exits_2_before_any_work_naming_every_file(celeba_root, tmp_path, capsys):
    assert main(["eval", "--dataset", "celeba-test", "--w", "0:1:0.1"]) == 2
    err = capsys.readouterr().err
    for name in ("codeformer", "vgg16", "arcface_resnet18", "fan_wflw", "pt_inception", "fid_stats_ffhq512"):
        assert f"`cfbench weights import {name} FILE`" in err
        assert weights.WEIGHTS.get(name).filename in err
    assert "`cfbench weights fetch codeformer`" in err and str(weights.weights_path("codeformer")) in err
    assert "celeba-test has 5 image(s), but the published celeba-test has 3000" in err
    assert not (tmp_path / "cfbench-runs").exists()


@pytest.mark.slow
def test_celeba_test_skip_missing_evaluates_every_pair_from_the_released_lq(celeba_root, tmp_path, capsys):
    args = ["eval", "--dataset", "celeba-test", "--checkpoint", "codeformer_tiny", "--skip-missing", "--w", "0:1:0.5"]
    assert main([*args, "--run-dir", str(tmp_path / "run")]) == 0
    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(rows) == 5 * 3 and set(rows["severity"]) == {"none"} and rows["image_id"].nunique() == 5
    assert {"psnr", "ssim", "niqe"} <= set(rows.columns)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    protocol = manifest["provenance"]["protocol"]
    assert protocol["name"] == "celeba-test" and protocol["version"] == get_protocol("celeba-test").version
    assert protocol["overrides"] == {"w": "0:1:0.5", "checkpoints": ["codeformer_tiny"], "skip_missing": True}
    assert set(manifest["skipped_metrics"]) == {"lpips[vgg]", "deg[arcface]", "lmd[fan]", "fid[ffhq512]", "fid[gt]"}
    assert manifest["provenance"]["dataset"]["expected_images"] == 3000
    assert manifest["provenance"]["dataset"]["n"] == 5
    table = (tmp_path / "run" / "table.md").read_text()
    assert "protocol celeba-test (v " in table and "Not measured in this run: lpips[vgg]" in table
    assert "eval: protocol celeba-test" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "report"), "--format", "md"]) == 0
    caption = (tmp_path / "report" / "fidelity_quality_table.md").read_text()
    assert f"protocol celeba-test (v {protocol['version']}), overrides: w=0:1:0.5" in caption


@pytest.mark.slow
def test_a_folder_dataset_gives_every_face_at_every_w_and_severity(tmp_path):
    folder = tmp_path / "faces"
    shutil.copytree(DEMO_GT, folder)
    for path in sorted(folder.iterdir())[:4]:  # keep 4 of the 8 demo faces
        path.unlink()
    args = ["eval", "--dataset", f"folder:{folder}", "--w", "0:1:0.5", "--checkpoint", "codeformer_tiny"]
    assert main([*args, "--metrics", "psnr", "--run-dir", str(tmp_path / "run")]) == 0
    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(rows) == 4 * 3 * 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["provenance"]["protocol"]["name"] is None


def test_a_named_metric_that_cannot_run_is_an_error_unless_skipped(tmp_path):
    cfg = load_sweep_config(None, dataset="demo", metrics="psnr,fid[ffhq512]", checkpoints=("codeformer_tiny",))
    with pytest.raises(MissingRequirementsError) as info:
        check_requirements(cfg, True, "cpu")
    assert "pt_inception (for fid[ffhq512])" in str(info.value) and "fid_stats_ffhq512" in str(info.value)
    out = check_requirements(dataclasses.replace(cfg, skip_missing=True), True, "cpu")
    assert [m.column for m in out.metrics] == ["psnr"] and set(out.skipped) == {"fid[ffhq512]"}
    demo = check_requirements(load_sweep_config(), True, "cpu")  # the demo: every available metric, no error
    assert not demo.named and "fid" in demo.skipped and "psnr" in [m.column for m in demo.metrics]
    lq_only = load_sweep_config(None, dataset="demo-lq", metrics="niqe,psnr", checkpoints=("codeformer_tiny",))
    with pytest.raises(MissingRequirementsError, match="psnr: dataset 'demo-lq' has no GT faces"):
        check_requirements(lq_only, False, "cpu")


def test_baseline_and_regress_never_skip(tmp_path, capsys):
    out = tmp_path / "b.json"
    args = ["baseline", "--checkpoint", "codeformer_tiny", "--metrics", "psnr,fid", "--out", str(out)]
    assert main([*args, "--skip-missing"]) == 2  # no such flag: usage error
    assert main(args) == 2 and not out.exists()
    assert "pt_inception (for fid)" in capsys.readouterr().err
    baseline = json.loads((Path(__file__).parents[1] / "data" / "regress" / "codeformer_tiny_demo.json").read_text())
    baseline["config"]["metrics"] += ",lpips[vgg]"
    baseline["metrics"]["lpips[vgg]"] = {
        **next(iter(baseline["metrics"].values())),
        **{"spec": "lpips[vgg]", "higher_is_better": False},
    }
    baseline["rows"] += [{**r, "metric": "lpips[vgg]"} for r in baseline["rows"] if r["metric"] == "psnr"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(baseline))
    assert main(["regress", "--baseline", str(edited), "--checkpoint", "codeformer_tiny"]) == 2
    assert "vgg16 (for lpips[vgg])" in capsys.readouterr().err


def test_needed_weights_of_a_protocol():
    need = needed_weights(load_sweep_config(None, protocol="celeba-test"))
    assert need["codeformer"] == ["checkpoint"] and need["pt_inception"] == ["fid[ffhq512]", "fid[gt]"]
    assert need["fid_stats_ffhq512"] == ["fid[ffhq512]"] and need["fan_wflw"] == ["lmd[fan]"]
    assert [s.name for s in parse_metric_list("fid")] == ["fid"]
    assert get_metric("fid").required_weights({"ref": "ffhq512"}) == ("pt_inception", "fid_stats_ffhq512")


# --- dataset checks -------------------------------------------------------------------------------------------


def test_unpaired_files_are_warned_and_strict_refuses(celeba_root, capsys):
    lq = celeba_root / "celeba-test" / "celeba_512_validation_lq"
    (lq / "00000004.png").rename(lq / "extra.png")
    ds = get_dataset("celeba-test")
    assert len(ds) == 4 and ds.unmatched.only_gt == ["00000004.png"] and ds.unmatched.only_lq == ["extra.png"]
    assert main(["eval", "--dataset", "celeba-test", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "has 4 image(s), but the published celeba-test has 3000" in err and "00000004.png" in err
    assert "extra.png" in err and "--strict" in err


def test_a_released_lq_image_of_another_size_is_an_error_naming_it(celeba_root, capsys):
    lq = celeba_root / "celeba-test" / "celeba_512_validation_lq" / "00000002.png"
    cv2.imwrite(str(lq), cv2.resize(cv2.imread(str(lq)), (128, 128)))
    assert main(["eval", "--dataset", "celeba-test", "--checkpoint", "codeformer_tiny", "--skip-missing"]) == 2
    assert "00000002.png (128x128)" in capsys.readouterr().err
    with pytest.raises(BadInputError, match="00000002.png is 128x128, but this set's LQ faces are 512x512"):
        get_dataset("celeba-test").load(2)


def test_real_lq_sets_read_lq_or_the_folder_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("CFBENCH_DATA", str(tmp_path))
    with pytest.raises(BadInputError, match="wider-test not found.*wider-test/lq/"):
        get_dataset("wider-test")
    shutil.copytree(DEMO_GT, tmp_path / "wider-test")
    ds = get_dataset("wider-test")
    assert len(ds) == 8 and ds.has_lq and not ds.has_gt
    shutil.copytree(DEMO_GT, tmp_path / "lfw-test" / "lq")
    assert len(get_dataset("lfw-test")) == 8


# --- weights status / fetch --for ----------------------------------------------------------------------------


def test_weights_status_for_a_protocol(capsys):
    assert main(["weights", "status", "--for", "wider-test", "--json"]) == 1
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["codeformer"]["status"] == "missing" and rows["codeformer"]["needed_by"] == ["checkpoint"]
    assert rows["niqe_pris_params"]["status"] == "present" and rows["fid_stats_ffhq512"]["needed_by"] == [
        "fid[ffhq512]"
    ]
    assert main(["weights", "status", "--for", "nope"]) == 2


def test_a_resume_that_would_measure_other_metrics_is_refused(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "faces"
    shutil.copytree(DEMO_GT, folder)
    base = ["eval", "--dataset", f"folder:{folder}", "--checkpoint", "codeformer_tiny", "--w", "1", "--severity", "2"]
    run = ["--run-dir", str(tmp_path / "run"), "--limit", "1"]
    assert main([*base, *run, "--metrics", "psnr,fid", "--skip-missing"]) == 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert set(manifest["provenance"]["metrics"]) == {"psnr"} and "fid" in manifest["skipped_metrics"]
    seconds = manifest["timings"]["seconds"]
    assert {"load", "degrade", "encode", "decode", "psnr", "write", "total"} <= set(seconds)
    assert all(v >= 0 for v in seconds.values())
    # the same command once the weights of fid are there (simulated: the preflight now builds a second metric)
    from cfbench.eval import runner

    def with_ssim(config, has_gt, device):
        out = check_requirements(config, has_gt, device)
        out.metrics += check_requirements(dataclasses.replace(config, metrics="ssim"), has_gt, device).metrics
        return out

    monkeypatch.setattr(runner, "check_requirements", with_ssim)
    assert main([*base, *run, "--metrics", "psnr,fid", "--skip-missing"]) == 2
    assert "holds a run measuring ['psnr'], but this run would measure ['psnr', 'ssim']" in capsys.readouterr().err


def test_also_reported_metrics_are_registered_and_leave_the_required_sets_alone():
    celeba = get_protocol("celeba-test")
    assert celeba.metric_names == [
        "psnr",
        "ssim",
        "lpips[vgg]",
        "deg[arcface]",
        "lmd[fan]",
        "fid[ffhq512]",
        "fid[gt]",
        "niqe",
    ]
    assert celeba.also_reported_names == []
    for name in ("lfw-test", "webphoto-test", "wider-test", "celebchild-test"):
        p = get_protocol(name)
        assert p.metric_names == ["fid[ffhq512]", "niqe"]
        assert {"musiq", "fid[ffhq70k]"} <= set(p.also_reported_names)
        if importlib.util.find_spec("pyiqa") is not None:
            assert all(get_metric(m).kind.value != "full-reference" for m in p.also_reported_names)  # no GT there


def test_also_reported_must_name_metrics_and_source():
    data = {k: "x" for k in ("title", "citation", "expected_images_source")}
    data.update(expected_images=1, settings={"dataset": "d"}, also_reported={"metrics": "musiq"})
    with pytest.raises(BadInputError, match="also_reported must be a mapping"):
        parse_protocol("p", data, "p.yaml")
