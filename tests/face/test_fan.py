"""AdaptiveWing FAN (WFLW 98 points) and lmd[fan]: structure against the manifest, heatmap decoding with its quirks,
and the metric with seeded weights (the real alignment_WFLW_4HG.pth cannot be downloaded here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cfbench.errors import CheckpointError, MissingWeightsError
from cfbench.metrics.registry import get_metric
from tests.face.conftest import seeded_bn_state

DATA = Path(__file__).resolve().parents[1] / "data"
MANIFEST = DATA / "faces_analysis" / "manifest_fan_wflw.json"
ALIGNED = DATA / "metrics" / "gt"


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def seeded_state() -> dict[str, torch.Tensor]:
    from cfbench.face.fan import FAN

    torch.manual_seed(0)
    return seeded_bn_state(FAN())


@pytest.fixture(scope="module")
def lmd_fan(seeded_state):
    from cfbench.metrics.landmarks import FanLandmarkDistance

    return FanLandmarkDistance(state_dict=seeded_state, batch_size=2)


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    from cfbench.imageio import read_image

    names = sorted(p.name for p in ALIGNED.glob("*.png"))[:2]
    return torch.stack([read_image(ALIGNED / n) for n in names])


# -- structure -------------------------------------------------------------------------------------------------------


def test_structure_matches_manifest():
    from cfbench.face.fan import FAN

    manifest = json.loads(MANIFEST.read_text())
    sd = FAN().state_dict()
    assert list(sd) == list(manifest["state_dict"])  # keys and order
    for k, (shape, dtype) in manifest["state_dict"].items():
        assert list(sd[k].shape) == shape and str(sd[k].dtype) == f"torch.{dtype}", k
    assert len(sd) == manifest["num_state_dict_entries"] == 1137
    assert sum(p.numel() for p in FAN().parameters()) == manifest["num_parameters"]
    assert sum(b.numel() for b in FAN().buffers()) == manifest["num_buffer_elements"]


def test_forward_shapes_and_input_check(seeded_state):
    from cfbench.face.fan import load_fan

    net = load_fan(seeded_state)
    assert not net.training
    with torch.no_grad():
        outs = net(torch.rand(1, 3, 256, 256))
    assert len(outs) == 4 and all(o.shape == (1, 99, 64, 64) for o in outs)
    assert all(torch.isfinite(o).all() for o in outs)
    with pytest.raises(ValueError, match="256"):
        net(torch.rand(1, 3, 128, 128))


def test_coordinate_channels_order():
    """The first coordinate channel runs along the height (upstream's 'xx'), the second along the width."""
    from cfbench.face.fan import _coord_channels

    a, b = _coord_channels(1, 4, 4, torch.zeros(1))
    assert torch.allclose(a[0, 0, :, 0], torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))
    assert (a[0, 0, 0] == -1).all() and (b[0, 0, :, 0] == -1).all()


def test_preprocess_is_uint8_cv2_resize_in_unit_range():
    import cv2
    import numpy as np

    from cfbench.face.fan import preprocess

    img = torch.rand(2, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    x = preprocess(img)
    assert x.shape == (2, 3, 256, 256) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    u8 = (img[1] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    want = cv2.resize(u8, (256, 256), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal((x[1] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), want)


# -- decoding --------------------------------------------------------------------------------------------------------


def _maps(peaks, n: int = 64, neighbours: dict | None = None) -> torch.Tensor:
    """(1, P, n, n) zero maps with value 1 at each (x, y) peak and extra values {(p, x, y): v}."""
    m = torch.zeros(1, len(peaks), n, n)
    for p, (x, y) in enumerate(peaks):
        m[0, p, y, x] = 1.0
    for (p, x, y), v in (neighbours or {}).items():
        m[0, p, y, x] = v
    return m


def test_decode_peak_and_half_pixel_and_scale():
    from cfbench.face.fan import decode_heatmaps

    # interior peaks, neighbours all zero: no shift; + 0.5 then x 8 for a 512 image
    out = decode_heatmaps(_maps([(10, 20), (40, 5)]), 512, 512)
    assert out.dtype == torch.float64 and out.shape == (1, 2, 2)
    assert out[0].tolist() == [[10.5 * 8, 20.5 * 8], [40.5 * 8, 5.5 * 8]]
    # non-square image: x by W / 64, y by H / 64
    assert decode_heatmaps(_maps([(10, 20)]), 640, 320)[0, 0].tolist() == [10.5 * 10, 20.5 * 5]


def test_decode_quarter_pixel_shift():
    from cfbench.face.fan import decode_heatmaps

    # right neighbour > left: +0.25 in x; upper neighbour (y - 1) > lower: -0.25 in y
    m = _maps([(10, 20)], neighbours={(0, 11, 20): 0.5, (0, 10, 19): 0.4})
    assert decode_heatmaps(m, 64, 64)[0, 0].tolist() == [10.75, 20.25]
    m = _maps([(10, 20)], neighbours={(0, 9, 20): 0.5, (0, 10, 21): 0.4})
    assert decode_heatmaps(m, 64, 64)[0, 0].tolist() == [10.25, 20.75]


def test_decode_x_has_no_row_wrap_check():
    """A peak at the end of a row compares with the first pixel of the next row."""
    from cfbench.face.fan import decode_heatmaps

    m = _maps([(63, 30)], neighbours={(0, 0, 31): 0.5})
    assert decode_heatmaps(m, 64, 64)[0, 0].tolist() == [63.75, 30.5]


def test_decode_edge_quirk_applies_to_all_landmarks_of_the_image():
    from cfbench.face.fan import decode_heatmaps

    # landmark 0 is interior with a larger lower neighbour (y + 1): alone it shifts down by 0.25
    nb = {(0, 10, 21): 0.5}
    assert decode_heatmaps(_maps([(10, 20), (30, 30)], neighbours=nb), 64, 64)[0, 0].tolist() == [10.5, 20.75]
    # landmark 1 in the bottom row: "y + 1" of ALL landmarks becomes their map's last pixel (0 here): no shift
    got = decode_heatmaps(_maps([(10, 20), (30, 63)], neighbours=nb), 64, 64)[0]
    assert got[0].tolist() == [10.5, 20.5]
    # and with the last pixel of map 0 set, landmark 0 shifts down again (the value comes from flat index 4095)
    got = decode_heatmaps(_maps([(10, 20), (30, 63)], neighbours={**nb, (0, 63, 63): 0.7}), 64, 64)[0]
    assert got[0].tolist() == [10.5, 20.75]
    # top quirk uses <=: a peak at flat index 64 (x 0, y 1) makes "y - 1" of ALL landmarks their first pixel
    nb_up = {(0, 10, 19): 0.5}
    assert decode_heatmaps(_maps([(10, 20), (30, 30)], neighbours=nb_up), 64, 64)[0, 0].tolist() == [10.5, 20.25]
    got = decode_heatmaps(_maps([(10, 20), (0, 1)], neighbours=nb_up), 64, 64)[0]
    assert got[0].tolist() == [10.5, 20.5]


def test_decode_quirk_is_per_image_not_per_batch():
    from cfbench.face.fan import decode_heatmaps

    nb = {(0, 10, 21): 0.5}
    a = _maps([(10, 20), (30, 30)], neighbours=nb)
    b = _maps([(10, 20), (30, 63)], neighbours=nb)
    both = decode_heatmaps(torch.cat([a, b]), 64, 64)
    assert torch.equal(both[0], decode_heatmaps(a, 64, 64)[0])
    assert torch.equal(both[1], decode_heatmaps(b, 64, 64)[0])


def test_decode_corners_do_not_crash():
    """Upstream wraps m[i - 1] at i = 0 to the last pixel and raises at i = 4095; both wrap here."""
    from cfbench.face.fan import decode_heatmaps

    out = decode_heatmaps(_maps([(0, 0), (63, 63)]), 64, 64)[0]
    # both quirks fire: "y - 1" is each map's first pixel and "y + 1" its last, so each peak compares with itself
    assert out[0].tolist() == [0.5, 0.25]  # m[4095] (0) - m[0] (1, the peak) < 0
    assert out[1].tolist() == [63.5, 63.75]  # m[4095] (1, the peak) - m[0] (0) > 0; m[4096] wrapped to m[0]


# -- the metric ------------------------------------------------------------------------------------------------------


def test_spec_registered_next_to_dlib():
    from cfbench.metrics.registry import parse_metric_list

    spec = get_metric("lmd[fan]")
    assert spec.family == "lmd" and spec.backend == "fan" and not spec.higher_is_better and spec.unit == "px"
    assert spec.weights == ("fan_wflw",)
    assert [s.name for s in parse_metric_list("lmd[dlib],lmd[fan]")] == ["lmd[dlib]", "lmd[fan]"]


@pytest.mark.slow
def test_self_is_zero_and_batch_independent(lmd_fan, faces):
    both = lmd_fan.fan.landmarks(faces)  # one batch of 2
    assert both.shape == (2, 98, 2) and both.dtype == torch.float64
    assert ((both >= 0) & (both <= 512)).all()
    single = torch.cat([lmd_fan.fan.landmarks(faces[i : i + 1]) for i in range(2)])
    assert torch.equal(both, single)
    out = lmd_fan(faces, faces)
    assert out.dtype == torch.float64 and out.shape == (2,) and out.abs().max() == 0


@pytest.mark.slow
def test_distance_is_mean_euclidean_of_the_landmarks(lmd_fan, faces):
    shifted = torch.roll(faces[:1], shifts=16, dims=3)
    got = float(lmd_fan(shifted, faces[:1])[0])
    a, b = lmd_fan.fan.landmarks(shifted), lmd_fan.fan.landmarks(faces[:1])
    assert got == pytest.approx(float((a - b).norm(dim=2).mean()))


def test_checkpoint_errors(seeded_state):
    from cfbench.face.fan import load_fan

    bad = dict(seeded_state)
    bad.pop("l3.bias")
    with pytest.raises(CheckpointError) as err:
        load_fan(bad)
    assert "missing (1): l3.bias" in str(err.value) and "\n" not in str(err.value)
    wrong = {**seeded_state, "l3.bias": torch.zeros(68)}
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_fan(wrong)


def test_real_checkpoint_format_loads(seeded_state, tmp_path, monkeypatch):
    """A file like alignment_WFLW_4HG.pth ({'state_dict': ...}) placed in the cache is found and loaded strictly."""
    from cfbench import weights
    from cfbench.face.fan import load_fan

    path = weights.weights_path("fan_wflw")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": seeded_state}, path)
    net = load_fan()
    assert torch.equal(net.state_dict()["l3.bias"], seeded_state["l3.bias"])
    torch.save({"params": seeded_state}, path)
    with pytest.raises(CheckpointError, match=r"holds no state_dict \(looked for state_dict; found \['params'\]\)"):
        load_fan()


def test_missing_weights_names_file_and_url():
    with pytest.raises(MissingWeightsError) as err:
        get_metric("lmd[fan]").build()
    msg = str(err.value)
    assert "alignment_WFLW_4HG.pth" in msg
    assert "https://github.com/xinntao/facexlib/releases/download/v0.1.0/alignment_WFLW_4HG.pth" in msg
