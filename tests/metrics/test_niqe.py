"""NIQE against BasicSR 1.4.2's golden values (scripts/golden_niqe.py), its building blocks, invariants, bad input."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import cfbench.metrics.niqe as niqe_mod
from cfbench.errors import BadInputError
from cfbench.imageio import read_image
from cfbench.metrics.niqe import NIQE, rgb_to_y_rounded, shrink_half
from cfbench.metrics.registry import get_metric

DATA = Path(__file__).resolve().parents[1] / "data"
FIXTURES = DATA / "metrics"
GOLDEN = json.loads((DATA / "reference" / "niqe_golden.json").read_text())
NAMES = sorted(p.name for p in (FIXTURES / "gt").glob("*.png"))

# Ours against BasicSR's values. Measured max: 7.8e-4 (lq/ffhq_00003.png). BasicSR's own values move by up to 2.0e-3
# between MKL code paths on one machine (golden key basicsr_mkl_compatible): its resize sums in float32 in an order
# MKL chooses. A golden file regenerated on another CPU can therefore shift by that much.
TOL = 1e-3
KEY = re.compile(r"(?P<file>[^@\[]+)(?:@crop(?P<crop>\d+))?(?:\[(?P<r0>\d+):(?P<r1>\d+),(?P<c0>\d+):(?P<c1>\d+)\])?$")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """NIQE is many small tensor operations: a second thread gains nothing (0.05 s per 512x512 image either way)
    and, when other processes share the cores, each operation's thread barrier can make it 50 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _case(key: str) -> tuple[torch.Tensor, int]:
    """The (1, 3, H, W) image and crop_border of a golden key (`file[@crop<k>][r0:r1,c0:c1]`)."""
    m = KEY.fullmatch(key)
    x = read_image(FIXTURES / m["file"])[None]
    if m["r0"] is not None:
        x = x[..., int(m["r0"]) : int(m["r1"]), int(m["c0"]) : int(m["c1"])]
    return x, int(m["crop"] or 0)


@pytest.fixture(scope="module")
def metrics() -> dict[int, NIQE]:
    return {0: NIQE(), 4: NIQE(crop_border=4)}


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """The 4 GT faces, (4, 3, 512, 512)."""
    return torch.stack([read_image(FIXTURES / "gt" / n) for n in NAMES])


@pytest.mark.parametrize("key", sorted(GOLDEN["basicsr"]))
def test_matches_basicsr(metrics, key):
    x, crop = _case(key)
    value = float(metrics[crop](x)[0])
    assert abs(value - GOLDEN["basicsr"][key]) <= TOL, (value, GOLDEN["basicsr"][key])


def test_golden_covers_the_fixtures():
    keys = set(GOLDEN["basicsr"])
    for folder in ("gt", "lq", "real_lq"):
        for p in (FIXTURES / folder).glob("*.png"):
            assert f"{folder}/{p.name}" in keys
    assert any("@crop" in k for k in keys) and any("[" in k for k in keys)
    assert GOLDEN["provenance"]["library"] == "BasicSR" and GOLDEN["provenance"]["version"] == "1.4.2"


def test_degraded_faces_score_worse():
    """For every GT/degraded pair of the fixtures, NIQE of the degraded face is higher (worse), in BasicSR's values
    and ours. The margins: 0.035 for celebahq_063109 (mildest degradation, 1.2x downsample), about 9 to 11 for the
    other three."""
    for n in NAMES:
        assert GOLDEN["basicsr"][f"lq/{n}"] > GOLDEN["basicsr"][f"gt/{n}"]
    lq = torch.stack([read_image(FIXTURES / "lq" / n) for n in NAMES])
    gt = torch.stack([read_image(FIXTURES / "gt" / n) for n in NAMES])
    assert bool((NIQE()(lq) > NIQE()(gt)).all())


def test_batch_size_independence(faces):
    """The same image alone and in a batch of 4, computed 1, 3 + 1 and 4 at a time (`chunk`)."""
    metric = NIQE()
    alone = torch.cat([metric(faces[i : i + 1]) for i in range(len(faces))])
    for chunk in (1, 3, 4):
        metric.chunk = chunk
        together = metric(faces)
        assert together.dtype == torch.float64 and together.shape == (4,)
        torch.testing.assert_close(together, alone, rtol=0, atol=1e-10)


def test_deterministic(metrics, faces):
    x = faces[:2]
    assert torch.equal(metrics[0](x), metrics[0](x))


def test_registry_and_column_name():
    spec = get_metric("niqe")
    assert (spec.family, spec.backend, spec.kind.value, spec.higher_is_better) == (
        "niqe",
        "matlab",
        "no-reference",
        False,
    )
    assert spec.weights == ("niqe_pris_params",) and spec.options == {"crop_border": 0}
    assert "BasicSR 1.4.2" in spec.reference and "1e-3" in spec.reference
    assert spec.build().column_name == "niqe"
    assert spec.build(crop_border=4).column_name == "niqe[crop4]"


@pytest.mark.parametrize(
    ("shape", "crop", "match"),
    [
        ((1, 3, 191, 300), 0, "at least 192x192"),
        ((1, 3, 300, 150), 0, "at least 192x192"),
        ((1, 3, 200, 200), 5, "after crop_border=5"),
    ],
)
def test_too_small(shape, crop, match):
    with pytest.raises(BadInputError, match=match):
        NIQE(crop_border=crop)(torch.full(shape, 0.5))


def test_bad_values_and_shapes():
    x = torch.rand(1, 3, 192, 192)
    nan = x.clone()
    nan[0, 1, 5, 5] = math.nan
    for bad in (nan, x * 1.5, x[:, :1], x[0], (x * 255).to(torch.uint8)):
        with pytest.raises(BadInputError):
            NIQE()(bad)
    for crop in (-1, True, 1.5):
        with pytest.raises(BadInputError, match="crop_border"):
            NIQE(crop_border=crop)


def test_smallest_size_and_flat_image():
    g = torch.Generator().manual_seed(0)
    assert math.isfinite(float(NIQE()(torch.rand(1, 3, 192, 192, generator=g))[0]))
    # a flat image has no negative or positive MSCN coefficient anywhere: every block has a NaN feature, and
    # NIQE is undefined (NaN, as BasicSR)
    assert math.isnan(float(NIQE()(torch.full((1, 3, 192, 192), 0.5))[0]))


def test_luma_is_basicsrs():
    """MATLAB BT.601 Y, rounded after BasicSR's float32 steps (equal to BasicSR on all 2^24 colours, checked when this
    was written). (22, 206, 0) and (35, 47, 39) lie on .5 in float64 (125.49999999999999, 52.50000000000001) and
    round the other way through float32."""
    rgb = torch.tensor([[0, 0, 0], [255, 255, 255], [255, 0, 0], [22, 206, 0], [35, 47, 39]], dtype=torch.float32)
    x = (rgb / 255).T.reshape(1, 3, 1, 5)
    assert rgb_to_y_rounded(x).flatten().tolist() == [16.0, 235.0, 81.0, 126.0, 52.0]


def test_half_size_resize():
    """MATLAB imresize(x, 0.5): weights sum to 1 (a constant stays); a linear ramp is reproduced away from the
    borders (the cubic kernel is symmetric), output pixel i sitting at input coordinate 2i + 0.5."""
    offsets, coefs = niqe_mod._half_size_taps()
    assert offsets == (-3, -2, -1, 0, 1, 2, 3, 4)
    assert [c * 256 for c in coefs] == [-3, -9, 29, 111, 111, 29, -9, -3]
    const = torch.full((1, 16, 24), 0.25, dtype=torch.float64)
    assert torch.equal(shrink_half(const), torch.full((1, 8, 12), 0.25, dtype=torch.float64))
    ramp = torch.arange(32, dtype=torch.float64).expand(1, 8, 32) / 64
    out = shrink_half(ramp)[0, 0]
    expected = (torch.arange(16, dtype=torch.float64) * 2 + 0.5) / 64
    torch.testing.assert_close(out[2:-2], expected[2:-2], rtol=0, atol=1e-7)


def test_aggd_shape_search_equals_full_scan():
    """The binary search picks the index of the release's argmin of (r(a) - x)^2 over the whole grid."""
    tables = niqe_mod._Tables(torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    r = tables.ratio
    values = torch.cat(
        [
            torch.rand(2000, generator=g, dtype=torch.float64) * (r[-1] - r[0]) + r[0],
            (r[:-1] + r[1:]) / 2,  # midpoints: ties go to the first index
            r[::97],
            torch.tensor([0.0, 0.1, 0.9, 1.0], dtype=torch.float64),  # outside the grid
        ]
    )
    full = torch.argmin((r[None] - values[:, None]) ** 2, 1)
    assert torch.equal(tables.nearest(values), full)
    assert int(tables.nearest(torch.tensor([math.nan], dtype=torch.float64))) == 0  # argmin over all-NaN
    assert np.isclose(float(tables.grid[0]), 0.2) and np.isclose(float(tables.grid[-1]), 10.0)
    assert tables.grid.numel() == 9801
