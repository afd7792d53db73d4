"""Datasets: the registry, folder / celeba-test / hf / demo datasets, the resize cache and synthesized LQ."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import cfbench.data.faces as faces
from cfbench.data import DegradedDataset, get_dataset, open_dataset
from cfbench.data.demo import demo_dir, demo_lq_paths
from cfbench.errors import BadInputError


def write_face(path: Path, size: int | tuple[int, int] = 16, seed: int = 0, channels: int = 3) -> Path:
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rng.integers(0, 256, shape, dtype=np.uint8))
    return path


def check_face(t: torch.Tensor | None) -> None:
    assert t is not None and t.dtype == torch.float32 and tuple(t.shape) == (3, 512, 512)
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0


# --- demo ---------------------------------------------------------------------------------------------------


def test_demo_has_eight_gt_faces_two_side_with_licences():
    ds = get_dataset("demo")
    assert len(ds) == 8 and ds.has_gt and not ds.has_lq
    sources = (demo_dir() / "SOURCES.md").read_text(encoding="utf-8")
    assert "non-commercial" in sources
    for sample in ds:
        check_face(sample.gt)
        assert sample.lq is None
        assert f"{sample.id}.png" in sources
    info = ds.describe()
    assert info["images"] == 8 and "non-commercial" in info["licence"]


def test_demo_lq_is_lq_only_and_restore_paths_unchanged():
    ds = get_dataset("demo-lq")
    assert len(ds) == len(demo_lq_paths()) == 4
    assert ds.has_lq and not ds.has_gt
    sample = ds.load("cf_0143")
    check_face(sample.lq)
    assert sample.gt is None


# --- folder -------------------------------------------------------------------------------------------------


def test_folder_pairs_by_stem(tmp_path):
    for i, stem in enumerate(["b", "a", "c"]):
        write_face(tmp_path / "gt" / f"{stem}.png", seed=i)
        write_face(tmp_path / "lq" / f"{stem}.jpg", seed=10 + i)
    (tmp_path / "lq" / "README.md").write_text("sidecar files are ignored")
    ds = get_dataset(f"folder:{tmp_path}")
    assert ds.ids == ["a", "b", "c"] and ds.has_gt and ds.has_lq
    sample = ds.load("b")
    check_face(sample.gt)
    check_face(sample.lq)
    assert sample.meta["gt_source"].endswith("b.png") and sample.meta["lq_source"].endswith("b.jpg")
    assert ds.load(1).id == "b" and ds.load(-1).id == "c"
    with pytest.raises(BadInputError, match="no image with id 'zz'"):
        ds.load("zz")


def test_folder_unmatched_names_are_listed(tmp_path):
    for stem in ("a", "b", "only_gt"):
        write_face(tmp_path / "gt" / f"{stem}.png")
    for stem in ("a", "b", "only_lq"):
        write_face(tmp_path / "lq" / f"{stem}.png")
    with pytest.raises(BadInputError, match="do not match") as info:
        get_dataset(f"folder:{tmp_path}")
    assert "only_gt.png" in str(info.value) and "only_lq.png" in str(info.value)
    assert "\n" not in str(info.value)


def test_folder_of_gt_images_and_channel_conversion(tmp_path):
    write_face(tmp_path / "gray.png", channels=1)
    write_face(tmp_path / "rgba.png", channels=4)
    ds = get_dataset(f"folder:{tmp_path}")
    assert ds.has_gt and not ds.has_lq and ds.ids == ["gray", "rgba"]
    gray = ds.load("gray").gt
    check_face(gray)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    check_face(ds.load("rgba").gt)


def test_missing_folder_errors(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        get_dataset(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(BadInputError, match="needs a path"):
        get_dataset("folder:")


def test_corrupt_image_error_names_the_file(tmp_path):
    write_face(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    ds = get_dataset(f"folder:{tmp_path}")
    check_face(ds.load("good").gt)
    with pytest.raises(BadInputError, match="broken.png"):
        ds.load("broken")


def test_non_square_face_is_refused(tmp_path):
    write_face(tmp_path / "wide.png", size=(16, 24))
    with pytest.raises(BadInputError, match="wide.png is 24x16, not square"):
        get_dataset(f"folder:{tmp_path}").load(0)


# --- resize policy and its cache -------------------------------------------------------------------------------


def test_1024_gt_is_resized_once_then_read_from_cache(tmp_path, monkeypatch):
    src = write_face(tmp_path / "faces" / "big.png", size=1024, seed=3)
    calls = []
    real_resize = faces.resize_face

    def counting(img, *args, **kwargs):
        calls.append(tuple(img.shape))
        return real_resize(img, *args, **kwargs)

    monkeypatch.setattr(faces, "resize_face", counting)
    first = get_dataset(f"folder:{tmp_path / 'faces'}").load("big")
    assert calls == [(3, 1024, 1024)]
    check_face(first.gt)
    # INTER_AREA on the 8-bit image, as cv2.resize(cv2.imread(...)) gives
    expected = cv2.resize(cv2.imread(str(src)), (512, 512), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    assert torch.equal(first.gt, torch.from_numpy(expected.copy()).permute(2, 0, 1).float() / 255.0)
    digest = faces.sha256_bytes(src.read_bytes())
    cached = faces.resize_cache_path(digest)
    assert cached.is_file() and str(faces.resize_cache_dir()).startswith(str(Path(faces.cfbench_home())))

    second = get_dataset(f"folder:{tmp_path / 'faces'}").load("big")  # a fresh dataset object
    assert calls == [(3, 1024, 1024)], "the second access must read the cached 512 file"
    assert torch.equal(first.gt, second.gt)


def test_small_faces_are_upscaled_with_cubic(tmp_path):
    src = write_face(tmp_path / "small.png", size=64)
    got = get_dataset(f"folder:{tmp_path}").load(0).gt
    expected = cv2.resize(cv2.imread(str(src)), (512, 512), interpolation=cv2.INTER_CUBIC)[:, :, ::-1]
    assert torch.equal(got, torch.from_numpy(expected.copy()).permute(2, 0, 1).float() / 255.0)


# --- content hash -----------------------------------------------------------------------------------------------


def test_content_hash_is_stable_and_follows_the_files(tmp_path):
    for i, stem in enumerate("ab"):
        write_face(tmp_path / f"{stem}.png", seed=i)
    h1 = get_dataset(f"folder:{tmp_path}").content_hash()
    assert h1 == get_dataset(f"folder:{tmp_path}").content_hash() and len(h1) == 64
    write_face(tmp_path / "b.png", seed=9)
    assert get_dataset(f"folder:{tmp_path}").content_hash() != h1
    demo = get_dataset("demo")
    assert DegradedDataset(demo, 1).content_hash() == demo.content_hash()


# --- celeba-test ------------------------------------------------------------------------------------------------


def test_celeba_test_missing_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CFBENCH_DATA", str(tmp_path))
    with pytest.raises(BadInputError) as info:
        get_dataset("celeba-test")
    msg = str(info.value)
    assert "$CFBENCH_DATA" in msg and str(tmp_path / "celeba-test") in msg
    assert "celeba_512_validation/" in msg and "celeba_512_validation_lq/" in msg and "\n" not in msg


def test_celeba_test_released_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("CFBENCH_DATA", str(tmp_path))
    root = tmp_path / "celeba-test"
    for i in range(3):
        write_face(root / "celeba_512_validation" / f"{i:08d}.png", seed=i)
        write_face(root / "celeba_512_validation_lq" / f"{i:08d}.png", size=512, seed=5 + i)
    ds = get_dataset("celeba-test")
    assert ds.ids == ["00000000", "00000001", "00000002"] and ds.has_gt and ds.has_lq
    sample = ds.load(2)
    check_face(sample.gt)
    check_face(sample.lq)
    assert ds.describe()["root"] == str(root.resolve())


def test_celeba_test_gt_lq_layout_from_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("CFBENCH_DATA", raising=False)
    for i in range(3):
        write_face(tmp_path / "gt" / f"{i}.png", seed=i)
        write_face(tmp_path / "lq" / f"{i}.png", size=512, seed=i)
    ds = get_dataset("celeba-test", data_root=tmp_path)
    assert len(ds) == 3 and ds.has_lq
    assert len(get_dataset("celeba-test", data_root=tmp_path.parent / tmp_path.name)) == 3


# --- Hugging Face ---------------------------------------------------------------------------------------------


def test_hf_from_save_to_disk(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="the optional `datasets` package (cfbench[data]) is absent")
    from PIL import Image

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    features = datasets.Features(
        {"photo": datasets.Image(), "id": datasets.Value("string"), "label": datasets.Value("int32")}
    )
    data = {"photo": imgs, "id": ["x", "y", "z"], "label": [0, 1, 2]}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(data, features=features)}).save_to_disk(tmp_path / "hf")
    ds = get_dataset(f"hf:{tmp_path / 'hf'}")
    assert ds.ids == ["x", "y", "z"] and ds.has_gt and not ds.has_lq
    sample = ds.load("y")
    check_face(sample.gt)
    expected = cv2.resize(np.asarray(imgs[1]), (512, 512), interpolation=cv2.INTER_CUBIC)
    assert torch.equal(sample.gt, torch.from_numpy(expected).permute(2, 0, 1).float() / 255.0)
    assert len(ds.content_hash()) == 64
    with pytest.raises(BadInputError, match="no split 'train'"):
        get_dataset(f"hf:{tmp_path / 'hf'}:train")


def test_hf_gt_and_lq_columns(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the optional `datasets` package (cfbench[data]) is absent")
    from PIL import Image

    rng = np.random.default_rng(1)
    imgs = [Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(4)]
    features = datasets.Features({"lq": datasets.Image(), "gt": datasets.Image()})
    datasets.Dataset.from_dict({"lq": imgs[:2], "gt": imgs[2:]}, features=features).save_to_disk(tmp_path / "hf")
    ds = get_dataset(f"hf:{tmp_path / 'hf'}")
    assert ds.ids == ["00000", "00001"] and ds.has_gt and ds.has_lq
    sample = ds.load(0)
    assert not torch.equal(sample.gt, sample.lq)


# --- synthesized LQ ---------------------------------------------------------------------------------------------


def test_synthesized_lq_is_deterministic_and_order_free():
    demo = get_dataset("demo")
    ids = demo.ids[:3]
    forward = DegradedDataset(demo, 2, seed=7)
    a = {i: forward.load(i) for i in ids}
    backward = DegradedDataset(get_dataset("demo"), "2", seed=7)
    b = {i: backward.load(i) for i in reversed(ids)}
    for i in ids:
        check_face(a[i].lq)
        assert torch.equal(a[i].lq, b[i].lq)
        assert torch.equal(a[i].gt, demo.load(i).gt)
        assert a[i].meta["degradation"] == b[i].meta["degradation"]
        json.dumps(a[i].meta)  # JSON-able
    assert a[ids[0]].meta["degradation"]["pipeline"] == "severity-scale"
    assert not torch.equal(a[ids[0]].lq, a[ids[1]].lq)
    other = DegradedDataset(demo, 4, seed=7).load(ids[0])
    assert not torch.equal(other.lq, a[ids[0]].lq)
    assert other.meta["degradation"]["severity"] == "4"
    record = forward.params(ids[0])
    assert record is not None and all(a[ids[0]].meta["degradation"][k] == v for k, v in record.items())


def test_synthesized_lq_celeba_protocol_and_fraction():
    demo = get_dataset("demo")
    std = DegradedDataset(demo, "celeba-test", seed=0)
    assert std.preset == "celeba-test" and std.describe()["severity"] == "celeba-test"
    sample = std.load(0)
    check_face(sample.lq)
    assert sample.meta["degradation"]["pipeline"] == "celeba-test"
    frac = open_dataset("demo", severity=0.5, seed=0)
    assert isinstance(frac, DegradedDataset) and frac.severity == 0.5
    assert open_dataset("demo") is not None and not open_dataset("demo").has_lq


def test_severity_none(tmp_path):
    with pytest.raises(BadInputError, match="has no LQ images"):
        DegradedDataset(get_dataset("demo"), "none")
    own = DegradedDataset(get_dataset("demo-lq"), "none")
    assert torch.equal(own.load(0).lq, get_dataset("demo-lq").load(0).lq)
    with pytest.raises(BadInputError, match="no GT images"):
        DegradedDataset(get_dataset("demo-lq"), 1)
    with pytest.raises(BadInputError, match="severity"):
        DegradedDataset(get_dataset("demo"), 9)


# --- registry and CLI -----------------------------------------------------------------------------------------


def test_unknown_dataset_suggests_close_match():
    with pytest.raises(BadInputError, match="did you mean 'celeba-test'"):
        get_dataset("celeba_test")
    with pytest.raises(BadInputError, match="known: .*demo"):
        get_dataset("zzz")


def _cli_app() -> typer.Typer:
    from cfbench.cli import datasets as datasets_cli

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    datasets_cli.register(app)
    return app


def test_cli_datasets_list_json(tmp_path, monkeypatch):
    monkeypatch.setenv("CFBENCH_DATA", str(tmp_path))
    result = CliRunner().invoke(_cli_app(), ["datasets", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["demo"]["available"] is True and rows["demo"]["images"] == 8
    assert rows["demo-lq"]["images"] == 4
    assert rows["celeba-test"]["available"] is False and "CFBENCH_DATA" in rows["celeba-test"]["reason"]
    assert {"folder:PATH", "hf:NAME[:split]"} <= set(rows)


def test_cli_datasets_show(tmp_path):
    write_face(tmp_path / "gt" / "a.png", size=32)
    result = CliRunner().invoke(_cli_app(), ["datasets", "show", f"folder:{tmp_path}", "--json", "--hash"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["images"] == 1 and info["has_gt"] and not info["has_lq"]
    assert info["first"][0]["id"] == "a" and info["first"][0]["gt"]["size"] == [32, 32]
    assert len(info["content_hash"]) == 64


def test_datasets_pickle_for_spawned_workers(tmp_path):
    import pickle

    degraded = DegradedDataset(get_dataset("demo"), 1, seed=2)
    copy = pickle.loads(pickle.dumps(degraded))
    assert torch.equal(copy.load(0).lq, degraded.load(0).lq)
    write_face(tmp_path / "a.png")
    folder = get_dataset(f"folder:{tmp_path}")
    assert torch.equal(pickle.loads(pickle.dumps(folder)).load(0).gt, folder.load(0).gt)
