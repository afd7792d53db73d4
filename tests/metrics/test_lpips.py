"""LPIPS v0.1 against the `lpips` package (same random backbone in both), invariants and weight errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision

from cfbench.errors import BadInputError, CheckpointError, MissingWeightsError
from cfbench.imageio import read_image
from cfbench.metrics.lpips import LPIPS, LPIPSNet
from cfbench.metrics.registry import get_metric
from cfbench.weights import weights_path

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"
NAMES = sorted(p.name for p in (DATA / "gt").glob("*.png"))
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def _seeded_features(net: str) -> dict[str, torch.Tensor]:
    """A seeded random backbone in torchvision's `features.<i>` layout (no ImageNet weights needed)."""
    torch.manual_seed(1234)
    if net == "alex":
        features = torchvision.models.alexnet(weights=None).features
    else:  # only the features part: building all of VGG16 (its 120M-parameter classifier) takes seconds
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    return {f"features.{k}": v for k, v in features.state_dict().items()}


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    for net, filename in BACKBONE_FILES.items():
        torch.save(_seeded_features(net), home / "hub" / "checkpoints" / filename)
    return home


@pytest.fixture
def backbones(torch_home, monkeypatch) -> Path:
    """$TORCH_HOME holds the seeded backbones (CFBENCH_HOME is already an empty temp dir, see conftest)."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    return torch_home


@pytest.fixture(scope="module")
def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """(restored, gt): the 4 degraded test faces and their GT, (4, 3, 512, 512) in [0, 1]."""
    lq = torch.stack([read_image(DATA / "lq" / n) for n in NAMES])
    gt = torch.stack([read_image(DATA / "gt" / n) for n in NAMES])
    return lq, gt


def _center(x: torch.Tensor, size: int) -> torch.Tensor:
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size].contiguous()


def _package_model(net: str, monkeypatch):
    lpips = pytest.importorskip("lpips")
    if net == "vgg":  # the package builds all of VGG16 and keeps `.features`; skip the slow classifier
        features_only = SimpleNamespace(features=torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"]))
        monkeypatch.setattr(lpips.pretrained_networks.tv, "vgg16", lambda **_: features_only)
    ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # heads from the package, backbone random
    state = _seeded_features(net)
    with torch.no_grad():
        for name, param in ref.net.named_parameters():  # slice<k>.<features index>.<weight|bias>
            _, index, kind = name.split(".")
            param.copy_(state[f"features.{index}.{kind}"])
    return ref.eval()


# the package asks torchvision for `alexnet(pretrained=False)`, which torchvision warns about
@pytest.mark.filterwarnings("ignore:The parameter 'pretrained' is deprecated", "ignore:Arguments other than a weight")
@pytest.mark.parametrize(("net", "n", "size"), [("alex", 4, 512), ("vgg", 2, 256)])
def test_matches_the_lpips_package(backbones, pairs, net, n, size, monkeypatch):
    pred, gt = (_center(x[:n], size) for x in pairs)
    ours = LPIPS("cpu", net=net)(pred, gt)
    with torch.no_grad():
        ref = _package_model(net, monkeypatch)(pred * 2 - 1, gt * 2 - 1).flatten().double()
    assert ours.shape == (n,) and ours.dtype == torch.float64
    assert (ref > 0).all()
    assert (ours - ref).abs().max() < 1e-5
    assert ((ours - ref).abs() / ref).max() < 1e-4  # the random backbone gives small values: check relative too


@pytest.mark.parametrize(("net", "n", "size"), [("alex", 4, 512), ("vgg", 2, 128)])
def test_batch_size_independent(backbones, pairs, net, n, size):
    pred, gt = (_center(x[:n], size) for x in pairs)
    metric = LPIPS("cpu", net=net)
    together = metric(pred, gt)
    alone = torch.cat([metric(pred[i : i + 1], gt[i : i + 1]) for i in range(n)])
    torch.testing.assert_close(together, alone, rtol=1e-6, atol=1e-7)


def test_identical_images_give_zero(backbones, pairs):
    x = _center(pairs[1][:2], 128)
    assert LPIPS("cpu", net="alex")(x, x).abs().max() < 1e-7


def test_registry_entries(backbones):
    spec = get_metric("lpips")
    assert spec.name == "lpips[vgg]" and not spec.higher_is_better
    assert spec.weights == ("vgg16", "lpips_vgg_lin")
    alex = get_metric("lpips[alex]")
    assert alex.weights == ("alexnet", "lpips_alex_lin") and alex.value_range == (0.0, float("inf"))
    metric = alex.build("cpu")
    assert metric.column_name == "lpips[alex]" and metric.spec is alex


def test_missing_backbone_names_the_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    with pytest.raises(MissingWeightsError) as err:
        LPIPS("cpu", net="alex")
    assert "alexnet-owt-7be5be79.pth" in str(err.value)
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in str(err.value)


def test_head_file_with_wrong_keys_raises_checkpoint_error(backbones):
    bad = weights_path("lpips_alex_lin")  # the cache is looked in before the lpips package
    bad.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"lin{i}.weight": torch.zeros(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}, bad)
    with pytest.raises(CheckpointError, match=r"missing \(5\): lin0\.model\.1\.weight") as err:
        LPIPS("cpu", net="alex")
    assert "\n" not in str(err.value)


def test_backbone_with_wrong_shapes_raises_checkpoint_error(tmp_path):
    state = _seeded_features("alex")
    state["features.0.weight"] = state["features.0.weight"][:32]
    torch.save(state, tmp_path / "alex.pth")
    heads = {f"lin{i}.model.1.weight": torch.zeros(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(heads, tmp_path / "heads.pth")
    with pytest.raises(CheckpointError, match=r"wrong shape \(1\): features\.0\.weight \(32, 3, 11, 11\) != \(64,"):
        LPIPSNet("alex").load(tmp_path / "alex.pth", tmp_path / "heads.pth")


def test_rejects_bad_input(backbones):
    metric = LPIPS("cpu", net="alex")
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(BadInputError):
        metric(x * 2 - 1, x)  # [-1, 1] input: the package's convention, not ours
    with pytest.raises(BadInputError):
        metric(x, torch.rand(1, 3, 64, 32))


@pytest.mark.gpu
def test_cuda_equals_cpu(backbones, pairs):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pred, gt = (_center(x[:2], 256) for x in pairs)
    cpu = LPIPS("cpu", net="vgg")(pred, gt)
    gpu = LPIPS("cuda", net="vgg")(pred, gt).cpu()
    assert (cpu - gpu).abs().max() < 1e-5
