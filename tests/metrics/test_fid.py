"""FID against pytorch-fid 0.3.0 (network, features, distance) and clean-fid 0.1.35 (the 'clean' resize).

The real FID Inception weights cannot be downloaded here, so a seeded random initialisation (He-normal convs,
BatchNorm near identity with non-trivial statistics) is written under a temporary TORCH_HOME with the official file
name; pytorch-fid's `fid_inception_v3` finds it there and loads it (downloading is patched to fail), and cfbench's
FID finds it through `cfbench.weights` (torch hub folder). Both networks therefore hold the same weights.

pytorch-fid's `calculate_frechet_distance` (scipy `sqrtm` of a 2048 x 2048 product) takes about 40 s on two cores,
so the GT-vs-LQ comparison hands it the same statistics expressed in an orthonormal basis of the subspace that
holds both sets' centred features and the mean difference: FID is invariant to rotations and nothing lies outside
that subspace, so the value is the same. Set CFBENCH_FID_FULL_CHECK=1 to also run it on the full 2048-d statistics.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from cfbench.errors import BadInputError, CheckpointError, MissingWeightsError
from cfbench.imageio import read_image
from cfbench.metrics import fid
from cfbench.metrics.base import FeatureStatistics, MetricKind
from cfbench.metrics.inception import (
    load_fid_inception,
    seeded_inception_state,
)
from cfbench.weights import WEIGHTS, sha256_file

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = WEIGHTS.get("pt_inception").urls[0]
FFHQ_STATS_FILE = "inception_FFHQ_512-f7b384ab.pth"

torch.set_num_threads(min(2, torch.get_num_threads()))

# pytorch-fid 0.3.0 passes scipy's deprecated `disp` argument to sqrtm
pytestmark = pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")


@pytest.fixture(scope="module")
def fid_homes(tmp_path_factory) -> SimpleNamespace:
    """TORCH_HOME holding the seeded weights under the official name, and an empty CFBENCH_HOME."""
    torch_home = tmp_path_factory.mktemp("fid_torch_home")
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(seeded_inception_state(), checkpoints / INCEPTION_FILE)
    return SimpleNamespace(torch=torch_home, cfbench=tmp_path_factory.mktemp("fid_cfbench_home"))


@pytest.fixture(autouse=True)
def fid_env(fid_homes, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(fid_homes.torch))


@pytest.fixture(scope="module")
def fid_no_download():
    """pytorch-fid must find the file in TORCH_HOME; any download attempt fails the test."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"pytorch-fid tried to download {url}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.hub, "download_url_to_file", refuse)
        yield


@pytest.fixture(scope="module")
def fid_images() -> SimpleNamespace:
    """The 4 committed GT faces and their 4 degraded copies (512 x 512)."""

    def load(folder: str) -> torch.Tensor:
        return torch.stack([read_image(p) for p in sorted((DATA / folder).glob("*.png"))])

    return SimpleNamespace(gt=load("gt"), lq=load("lq"))


@pytest.fixture(scope="module")
def fid_run(fid_homes, fid_images, fid_no_download) -> SimpleNamespace:
    """Features of GT and LQ from cfbench (legacy_pytorch) and from pytorch-fid, computed once."""
    pytorch_fid_inception = pytest.importorskip("pytorch_fid.inception")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(fid_homes.torch))
        mp.setenv("CFBENCH_HOME", str(fid_homes.cfbench))
        metric = fid.FID("cpu", resize="legacy_pytorch", batch_size=8)
        network = pytorch_fid_inception.fid_inception_v3()  # loads the seeded file from TORCH_HOME
        mp.setattr(pytorch_fid_inception, "fid_inception_v3", lambda: network)  # build it once
        reference = pytorch_fid_inception.InceptionV3([3], resize_input=True, normalize_input=True).eval()
    ours = {k: metric.features(getattr(fid_images, k)) for k in ("gt", "lq")}
    with torch.no_grad():
        theirs = {k: reference(getattr(fid_images, k))[0].flatten(1) for k in ("gt", "lq")}
    return SimpleNamespace(metric=metric, network=network, reference=reference, ours=ours, theirs=theirs)


def _stats(features: torch.Tensor) -> FeatureStatistics:
    stats = FeatureStatistics(features.shape[1])
    stats.add(features)
    return stats


# --------------------------------------------------------------------------------------------------------------
# Network


def test_state_dict_keys_and_shapes_equal_pytorch_fid(fid_run):
    theirs = fid_run.network.state_dict()
    ours = fid_run.metric.model.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)  # both loaded the same file
    # pytorch-fid really loaded our seeded file, not some other weights
    seeded = torch.load(Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / INCEPTION_FILE, weights_only=True)
    assert all(torch.equal(seeded[k], theirs[k]) for k in theirs)


def test_features_match_pytorch_fid(fid_run):
    for k in ("gt", "lq"):
        ours, theirs = fid_run.ours[k], fid_run.theirs[k]
        assert ours.shape == (4, 2048) and ours.dtype == torch.float32
        scale = float(theirs.abs().max())
        assert float((ours - theirs).abs().max()) <= 1e-6 * scale
    # the seeded network is not degenerate: features vary between images
    assert float(fid_run.ours["gt"].std(0).mean()) > 1e-2 * float(fid_run.ours["gt"].abs().mean())


def test_feature_batch_size_independence(fid_run, fid_images):
    one_by_one = copy.copy(fid_run.metric)
    one_by_one.batch_size = 1
    single = one_by_one.features(fid_images.gt[:4])
    batched = fid_run.ours["gt"]  # computed in one batch of 4
    assert float((single - batched).abs().max()) <= 1e-5 * float(batched.abs().max())


def test_clean_mode_features_match_pytorch_fid_on_clean_fid_resized_images(fid_run, fid_images, fid_homes):
    make_resizer = pytest.importorskip("cleanfid.resize").make_resizer
    resizer = make_resizer("PIL", False, "bicubic", (299, 299))
    images = fid_images.gt[:2]
    u8 = (images * 255).round().to(torch.uint8)  # they came from 8-bit PNGs: exact
    assert torch.equal(u8.float() / 255, images)
    resized = np.stack([resizer(im.permute(1, 2, 0).numpy()) for im in u8])
    x = torch.from_numpy(resized).permute(0, 3, 1, 2) / 255
    with torch.no_grad():
        fid_run.reference.resize_input = False
        try:
            theirs = fid_run.reference(x)[0].flatten(1)
        finally:
            fid_run.reference.resize_input = True
    clean = copy.copy(fid_run.metric)
    clean.resize = "clean"
    ours = clean.features(images)
    assert float((ours - theirs).abs().max()) <= 1e-5 * float(theirs.abs().max())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_features_match_cpu(fid_run, fid_images):
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    for resize in ("legacy_pytorch", "clean"):
        cpu = copy.copy(fid_run.metric)
        cpu.resize = resize
        gpu = copy.copy(cpu)
        gpu.device, gpu.model = torch.device("cuda"), copy.deepcopy(cpu.model).cuda()
        want = cpu.features(fid_images.gt[:2])
        got = gpu.features(fid_images.gt[:2]).cpu()
        assert float((got - want).abs().max()) <= 1e-4 * float(want.abs().max()), resize
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == tf32  # restored


def test_checkpoint_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match=r"missing \(\d+\): Conv2d_1a_3x3.conv.weight") as info:
        load_fid_inception(bad)
    assert "unexpected (1): foo" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth is neither a PyTorch"):
        load_fid_inception(tmp_path / "junk.pth")
    state = seeded_inception_state()
    state["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(state, tmp_path / "fc.pth")
    with pytest.raises(CheckpointError, match=r"fc.weight \(1000, 2048\) != \(1008, 2048\)"):
        load_fid_inception(tmp_path / "fc.pth")
    # files from old PyTorch versions without num_batches_tracked load
    state = {k: v for k, v in seeded_inception_state().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    load_fid_inception(tmp_path / "old.pth")


# --------------------------------------------------------------------------------------------------------------
# Distance


@pytest.mark.parametrize("dim", [8, 64, 200])
def test_frechet_distance_matches_pytorch_fid(dim):
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    rng = np.random.default_rng(dim)
    a = rng.standard_normal((4 * dim, dim))
    b = rng.standard_normal((4 * dim, dim)) @ (np.eye(dim) + 0.1 * rng.standard_normal((dim, dim))) + 0.3
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    want = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
    got = fid.frechet_distance(mu1, s1, mu2, s2)
    assert abs(got - want) <= 1e-6 * want
    assert abs(fid.frechet_distance(mu2, s2, mu1, s1) - want) <= 1e-6 * want  # symmetric
    assert fid.frechet_distance(mu1, s1, mu1, s1) <= 1e-9 * want


def _rotated(mu_a, s_a, mu_b, s_b, basis):
    return basis.T @ mu_a, basis.T @ s_a @ basis, basis.T @ mu_b, basis.T @ s_b @ basis


def test_fid_gt_vs_lq_matches_pytorch_fid(fid_run):
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    ours = fid_run.metric.distance(
        _stats(fid_run.ours["lq"]), _stats(fid_run.ours["gt"]).mean, _stats(fid_run.ours["gt"]).cov
    )
    act = {k: v.numpy() for k, v in fid_run.theirs.items()}
    mu = {k: np.mean(a, axis=0) for k, a in act.items()}
    sigma = {k: np.cov(a, rowvar=False) for k, a in act.items()}
    # orthonormal basis of everything the statistics contain (see the module docstring)
    span = np.concatenate([(act["lq"] - mu["lq"]).T, (act["gt"] - mu["gt"]).T, (mu["lq"] - mu["gt"])[:, None]], 1)
    basis = np.linalg.qr(span.astype(np.float64))[0]
    small = _rotated(mu["lq"], sigma["lq"], mu["gt"], sigma["gt"], basis)
    want = fid_score.calculate_frechet_distance(*small)
    assert want > 1.0
    assert abs(ours - want) <= 1e-6 * want  # measured 9e-9
    if os.environ.get("CFBENCH_FID_FULL_CHECK") == "1":
        # scipy sqrtm of the singular 2048 x 2048 product is itself off by ~2e-6 relative here
        full = fid_score.calculate_frechet_distance(mu["lq"], sigma["lq"], mu["gt"], sigma["gt"])
        assert abs(ours - full) <= 1e-4 * full


def test_fid_of_a_set_with_itself_is_zero(fid_run):
    gt, lq = _stats(fid_run.ours["gt"]), _stats(fid_run.ours["lq"])
    between = fid_run.metric.distance(lq, gt.mean, gt.cov)
    assert 0 <= fid_run.metric.distance(gt, gt.mean, gt.cov) <= 1e-6 * between


def test_frechet_distance_rejects_bad_statistics():
    with pytest.raises(BadInputError, match="dimensions differ"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(BadInputError, match=r"covariance \(D, D\)"):
        fid.frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
    with pytest.raises(BadInputError, match="NaN"):
        fid.frechet_distance(np.full(3, np.nan), np.eye(3), np.zeros(3), np.eye(3))


# --------------------------------------------------------------------------------------------------------------
# Resize


def test_clean_resize_matches_clean_fid():
    make_resizer = pytest.importorskip("cleanfid.resize").make_resizer
    resizer = make_resizer("PIL", False, "bicubic", (299, 299))
    faces = [np.asarray(read_image(p).mul(255).round().byte().permute(1, 2, 0)) for p in sorted(DATA.glob("*/*.png"))]
    crops = [
        faces[0],  # 512 -> 299
        faces[1][:384],  # non-square
        faces[2][100:228, 50:178],  # upsampling
        faces[3][:299, :299],  # no-op
        faces[4][:300, :301],  # barely larger
        np.concatenate([faces[5], faces[6]], 1),  # 512 x 1024
    ]
    worst = 0.0
    for crop in crops:
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255  # what read_image gives
        ours = fid.resize_for_inception(x, "clean")[0].permute(1, 2, 0).numpy() * 255
        ours_255 = fid.pil_bicubic_resize(x * 255)[0].permute(1, 2, 0).numpy()
        want = resizer(crop)
        assert ours.shape == want.shape == (299, 299, 3)
        worst = max(worst, float(np.abs(ours_255 - want).max()))
        assert np.abs(ours - want).max() <= 1e-4
    assert worst <= 1e-4
    # arbitrary float values (not from 8-bit files) and a range overshoot that the clip must catch
    rng = np.random.default_rng(0)
    noise = (rng.random((97, 411, 3)) * 255).astype(np.float32)
    ours = fid.pil_bicubic_resize(torch.from_numpy(noise).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - resizer(noise)).max() <= 1e-4


def test_legacy_resize_is_pytorch_fid_bilinear():
    x = torch.rand(2, 3, 64, 80)
    want = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert torch.equal(fid.resize_for_inception(x, "legacy_pytorch"), want)


# --------------------------------------------------------------------------------------------------------------
# Reference statistics


def test_npz_statistics_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    mean, a = rng.standard_normal(8), rng.standard_normal((20, 8))
    cov = np.cov(a, rowvar=False)
    np.savez(tmp_path / "pfid.npz", mu=mean.astype(np.float32), sigma=cov)  # pytorch-fid / clean-fid keys
    np.savez(tmp_path / "ours.npz", mean=mean, cov=cov)
    for name in ("pfid.npz", "ours.npz"):
        got_mean, got_cov = fid.load_reference_statistics(tmp_path / name, dim=None)
        assert got_mean.dtype == got_cov.dtype == np.float64
        np.testing.assert_allclose(got_mean, mean, rtol=1e-6)
        np.testing.assert_array_equal(got_cov, cov)


def test_basicsr_pth_statistics_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    mean, cov = rng.standard_normal(8).astype(np.float32), np.cov(rng.standard_normal((20, 8)), rowvar=False)
    torch.save({"name": "FFHQ", "size": 512, "mean": mean, "cov": cov}, tmp_path / "stats.pth")
    got_mean, got_cov = fid.load_reference_statistics(tmp_path / "stats.pth", dim=None)
    np.testing.assert_array_equal(got_mean, mean.astype(np.float64))
    np.testing.assert_array_equal(got_cov, cov)
    torch.save({"mean": torch.from_numpy(mean), "cov": torch.from_numpy(cov)}, tmp_path / "tensors.pt")
    np.testing.assert_array_equal(fid.load_reference_statistics(tmp_path / "tensors.pt", dim=None)[1], cov)


_EXECUTED = []


def _payload():
    _EXECUTED.append(True)
    return "payload ran"


class _Evil:
    def __reduce__(self):
        return (_payload, ())


@pytest.mark.parametrize("extra", [os.getcwd, _Evil(), pickle.dumps], ids=["callable", "reduce", "function"])
def test_pth_statistics_with_pickled_objects_are_refused(tmp_path, extra):
    path = tmp_path / "evil.pth"
    torch.save({"mean": np.zeros(8), "cov": np.eye(8), "extra": extra}, path)
    with pytest.raises(BadInputError, match="refusing FID statistics file") as info:
        fid.load_reference_statistics(path, dim=None)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not _EXECUTED


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    np.savez(tmp / "only_mu.npz", mu=np.zeros(8))
    np.savez(tmp / "shapes.npz", mu=np.zeros(8), sigma=np.zeros(8))
    np.savez(tmp / "small.npz", mu=np.zeros(8), sigma=np.eye(8))
    np.savez(tmp / "nan.npz", mu=np.full(2048, np.nan), sigma=np.eye(2048, dtype=np.float32))
    np.savez(tmp / "objects.npz", mu=np.array([object()] * 8, dtype=object), sigma=np.eye(8))
    torch.save(np.zeros(3), tmp / "array.pth")
    torch.save({"mean": "FFHQ", "cov": np.eye(8)}, tmp / "strings.pth")
    (tmp / "text.npz").write_text("mu,sigma\n")
    (tmp / "text.pth").write_text("definitely not a checkpoint")
    (tmp / "stats.txt").write_text("0 0 0")
    return {
        "missing keys": (tmp / "only_mu.npz", "need 'mu' and 'sigma'"),
        "wrong shapes": (tmp / "shapes.npz", r"must be \(D,\)"),
        "wrong dim": (tmp / "small.npz", "8-d features; FID Inception pool3 needs 2048"),
        "nan": (tmp / "nan.npz", "NaN"),
        "object arrays": (tmp / "objects.npz", "not a .npz FID statistics file"),
        "not a dict": (tmp / "array.pth", "not a dict of FID statistics"),
        "not numeric": (tmp / "strings.pth", "must be a numeric array"),
        "npz garbage": (tmp / "text.npz", "not a .npz FID statistics file"),
        "pth garbage": (tmp / "text.pth", "not a torch-saved FID statistics file"),
        "suffix": (tmp / "stats.txt", "must be a .npz or .pth file"),
        "absent": (tmp / "absent.npz", "not found"),
    }


def test_bad_statistics_files_raise_one_line_errors(tmp_path):
    for case, (path, message) in _bad_files(tmp_path).items():
        with pytest.raises(BadInputError, match=message) as info:
            fid.load_reference_statistics(path)
        assert str(path) in str(info.value), case
        assert "\n" not in str(info.value), case


def test_named_and_file_references(fid_homes, monkeypatch, tmp_path):
    monkeypatch.setenv("CFBENCH_HOME", str(fid_homes.cfbench))
    rng = np.random.default_rng(3)
    mean, cov = rng.standard_normal(2048), np.eye(2048) * 0.5
    weights_dir = fid_homes.cfbench / "weights"
    weights_dir.mkdir(exist_ok=True)
    torch.save({"name": "FFHQ", "size": 512, "mean": mean, "cov": cov}, weights_dir / FFHQ_STATS_FILE)
    try:
        got = fid.load_reference_statistics("ffhq512")
        np.testing.assert_array_equal(got[0], mean)
        metric = fid.FID("cpu", ref="ffhq512")
        assert metric.resize == "legacy_pytorch" and metric.column_name == "fid[ffhq512]"
        np.testing.assert_array_equal(metric.reference_statistics()[1], cov)
        with pytest.raises(BadInputError, match="'legacy_pytorch' resize"):
            fid.FID("cpu", ref="ffhq512", resize="clean")
        shutil.copy(weights_dir / FFHQ_STATS_FILE, tmp_path / "celeba_test.pth")
        from_file = fid.FID("cpu", ref=tmp_path / "celeba_test.pth", resize="clean")
        assert from_file.column_name == "fid[celeba_test]" and from_file.resize == "clean"
        np.testing.assert_array_equal(from_file.reference_statistics()[0], mean)
    finally:
        (weights_dir / FFHQ_STATS_FILE).unlink()


def test_reference_rules():
    gt = fid.ReferenceSource.parse("gt")
    assert (gt.label, gt.resolve_resize("auto"), gt.resolve_resize(None)) == ("gt", "clean", "clean")
    assert gt.resolve_resize("legacy_pytorch") == "legacy_pytorch"
    assert fid.ReferenceSource.parse("ffhq512").resolve_resize("auto") == "legacy_pytorch"
    with pytest.raises(BadInputError, match="unknown FID reference 'ffhq1024'"):
        fid.ReferenceSource.parse("ffhq1024")
    with pytest.raises(BadInputError, match="not found"):
        fid.ReferenceSource.parse("missing_stats.npz")
    with pytest.raises(BadInputError, match="unknown FID resize mode 'bicubic'"):
        gt.resolve_resize("bicubic")


# --------------------------------------------------------------------------------------------------------------
# Metric object, registry, errors


def test_spec_and_cache_key(fid_run):
    from cfbench.metrics.registry import get_metric

    spec = get_metric("fid")
    assert spec is fid.SPEC is fid.FID.spec
    assert spec.kind is MetricKind.DISTRIBUTION and spec.direction == "lower"
    assert spec.weights == ("pt_inception",) and spec.options == {"ref": "gt", "resize": "auto"}
    assert spec.value_range == (0.0, float("inf"))
    metric = fid_run.metric
    assert metric.column_name == "fid[gt]" and metric.dim == 2048
    key = metric.cache_key()
    assert key["weights_sha256"] == sha256_file(metric.weights_path)
    assert key["resize"] == "legacy_pytorch" and "299" in key["resolution"]
    clean = copy.copy(metric)
    clean.resize = "clean"
    assert clean.cache_key() != key


def test_missing_weights_name_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    with pytest.raises(MissingWeightsError) as info:
        fid.FID("cpu")
    assert INCEPTION_FILE in str(info.value) and INCEPTION_URL in str(info.value)
    with pytest.raises(MissingWeightsError, match=FFHQ_STATS_FILE):
        fid.FID("cpu", ref="ffhq512")


def test_bad_images_raise(fid_run):
    good = torch.rand(2, 3, 64, 64)
    nan = good.clone()
    nan[0, 0, 0, 0] = float("nan")
    cases = {
        "NaN": nan,
        r"\(N, 3, H, W\)": good[:, :1],
        r"must lie in \[0, 1\]": good * 2,
        "float tensor": (good * 255).byte(),
    }
    for message, images in cases.items():
        with pytest.raises(BadInputError, match=message):
            fid_run.metric.features(images)
    assert fid_run.metric.features(good[:0]).shape == (0, 2048)


# --------------------------------------------------------------------------------------------------------------
# Through the harness, the CLI and the sweep (FID must work end to end, not only as a class)


def test_cli_fid_against_the_gt_folder_equals_the_direct_value_and_caches_gt(fid_run, fid_images, tmp_path, capsys):
    from cfbench.cli import main

    out = tmp_path / "scores.csv"
    args = [
        "metrics",
        str(DATA / "lq"),
        str(DATA / "gt"),
        "--metrics",
        "fid",
        "--fid-resize",
        "legacy_pytorch",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--json",
    ]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)["distribution"][0]
    want = fid.frechet_distance(*_mean_cov(fid_run.ours["lq"]), *_mean_cov(fid_run.ours["gt"]))
    assert first["metric"] == "fid[gt]" and first["reference"] == "gt"
    assert first["value"] == pytest.approx(want, rel=1e-9)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)["distribution"][0]
    assert second["reference"] == "gt (cached)" and second["value"] == first["value"]
    assert (tmp_path / "scores_distribution.csv").is_file()


@pytest.mark.slow
def test_sweep_reports_fid_per_group(tmp_path):
    from cfbench.eval.runner import FidelityWeightSweep
    from tests.eval.sweeps import face_folder, sweep_config

    cfg = sweep_config(face_folder(tmp_path, 2), tmp_path / "run", metrics="fid", batch_size="auto")
    result = FidelityWeightSweep(cfg, log=lambda _: None).run()
    groups = pd.read_parquet(result.run_dir / "groups.parquet")
    assert list(groups["w"]) == [0.0, 1.0] and np.isfinite(groups["fid[gt]"]).all() and (groups["fid[gt]"] > 0).all()
    assert "fid[gt]" in (result.run_dir / "table.md").read_text()


def _mean_cov(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    stats = _stats(features)
    return stats.mean, stats.cov
