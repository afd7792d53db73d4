"""lmd[dlib]: identity, known shifts, size scaling, missing faces, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cfbench.errors import BadInputError, MissingWeightsError
from cfbench.imageio import read_image
from cfbench.metrics.registry import get_metric

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"
NAMES = sorted(p.name for p in (DATA / "gt").glob("*.png"))


@pytest.fixture(scope="module")
def gt() -> torch.Tensor:
    return torch.stack([read_image(DATA / "gt" / n) for n in NAMES])


@pytest.fixture(scope="module")
def lmd():
    pytest.importorskip("dlib")
    try:
        return get_metric("lmd[dlib]").build()
    except MissingWeightsError:
        pytest.skip("face-recognition-models is not installed")


def _shift(images: torch.Tensor, dx: int) -> torch.Tensor:
    out = images.clone()
    out[..., dx:] = images[..., :-dx]
    return out


def test_spec():
    spec = get_metric("lmd[dlib]")
    assert not spec.higher_is_better and spec.unit == "px"


def test_self_is_zero(lmd, gt):
    out = lmd(gt, gt)
    assert out.dtype == torch.float64 and out.shape == (4,)
    assert out.abs().max() == 0


def test_grows_with_known_shift(lmd, gt):
    """A 3-pixel horizontal shift moves the landmarks by about 3 px (observed 2.97-3.22), 6 px by about 6."""
    three, six = lmd(_shift(gt, 3), gt), lmd(_shift(gt, 6), gt)
    assert ((three - 3).abs() < 1).all(), three
    assert ((six - 6).abs() < 1.5).all(), six
    assert (six > three).all()


def test_scaled_to_512(lmd, gt):
    """At 256x256 the same relative shift (1.5 px there) reads about 3 px at 512 scale."""
    small = torch.nn.functional.interpolate(gt, size=(256, 256), mode="area")
    small_shift = torch.nn.functional.interpolate(_shift(gt, 4), size=(256, 256), mode="area")
    out = lmd(small_shift, small)
    assert ((out - 4).abs() < 2.5).all(), out


def test_missing_face_is_nan_and_counted(lmd, gt):
    blank = torch.full_like(gt[:1], 0.3)
    before = lmd.missing
    out = lmd(torch.cat([gt[:1], blank]), torch.cat([gt[:1], blank]))
    assert out[0] == 0 and math.isnan(out[1])
    assert lmd.missing == before + 1
    each = get_metric("lmd[dlib]").build(boxes="each")
    assert each.column_name == "lmd[dlib,each]"
    assert math.isnan(each(blank, gt[:1])[0])


def test_bad_input(lmd, gt):
    with pytest.raises(BadInputError):
        lmd(gt[:1], gt[:2])
    with pytest.raises(BadInputError):
        lmd(gt.half().float() - 1, gt)


# -- lmd[fan] (the architecture, decoding and seeded-weight tests are in tests/face/test_fan.py) ---------------------


def test_fan_variant_is_registered_beside_dlib():
    from cfbench.metrics.registry import parse_metric_list

    fan, dlib = get_metric("lmd[fan]"), get_metric("lmd[dlib]")
    assert (fan.family, fan.unit, fan.higher_is_better) == (dlib.family, dlib.unit, dlib.higher_is_better)
    assert fan.weights == ("fan_wflw",) and "VQFR" in fan.reference
    assert [s.name for s in parse_metric_list("lmd[fan],lmd[dlib]")] == ["lmd[fan]", "lmd[dlib]"]


def test_fan_variant_without_weights_names_file_and_url():
    with pytest.raises(MissingWeightsError, match="alignment_WFLW_4HG.pth") as err:
        get_metric("lmd[fan]").build()
    assert "https://github.com/xinntao/facexlib/releases/download/v0.1.0/alignment_WFLW_4HG.pth" in str(err.value)
