"""The contract every registered metric keeps (ours, and a sample of pyiqa's weight-free ones), checked on real faces:

- a batch of 4 gives the values of 4 batches of 1;
- the declared direction holds on a clean vs a degraded face;
- input outside [0, 1], NaN and a wrong shape are refused with a one-line BadInputError;
- identical images give the metric's declared identity value (`MetricSpec.identity`), where it has one;
- values are finite and inside the declared range (face metrics may give NaN when no face is found: never here).

A metric whose weights are not on this machine is skipped with the reason; the CI machines hold them.
"""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cfbench import weights
from cfbench.errors import BadInputError
from cfbench.metrics import METRICS, DistributionMetric, get_metric

FACES = sorted((Path(__file__).resolve().parents[1] / "data" / "metrics" / "gt").glob("*.png"))
PYIQA_SAMPLE = ("fsim", "vif", "gmsd", "ms_ssim", "nlpd", "piqe")
# the smallest size each family accepts (NIQE: two 96-px blocks; MS-SSIM: five scales of an 11-px window; the
# face metrics detect the face first; PIQE, a blind metric on 16-px blocks, ranks 64-px faces at random); the others
# run at 64 x 64
SIZES = {"niqe": 192, "pyiqa:ms_ssim": 176, "pyiqa:piqe": 192, "identity_cos": 512, "deg": 512, "lmd": 512}
HAS_PYIQA = importlib.util.find_spec("pyiqa") is not None


def _cases():
    ours = [n for n in METRICS.names() if get_metric(n).backend != "pyiqa"]  # pyiqa's: the sample only
    names = ours + ([f"pyiqa:{n}" for n in PYIQA_SAMPLE] if HAS_PYIQA else [])
    slow = ("dlib", "pyiqa", "arcface", "insightface", "fan", "inception")
    return [pytest.param(n, marks=pytest.mark.slow) if get_metric(n).backend in slow else n for n in names]


def _size(spec) -> int:
    return SIZES.get(spec.name, SIZES.get(spec.family, 64))


def _faces(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean, mild, degraded): 4 real faces at `size`, the same with a little noise, and the same blurred, noised
    and slightly darkened."""
    from cfbench.imageio import read_image

    clean = torch.stack([read_image(p) for p in (FACES * 4)[:4]])
    clean = F.interpolate(clean, size=size, mode="area") if size != clean.shape[-1] else clean
    gen = torch.Generator().manual_seed(0)
    blurred = F.avg_pool2d(F.pad(clean, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    degraded = (0.9 * blurred + 0.08 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
    mild = (clean + 0.01 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
    return clean, mild, degraded


@pytest.fixture(params=_cases())
def built(request):
    spec = get_metric(request.param)
    missing = [n for n in spec.required_weights() if weights.locate(n) is None]
    if missing:
        pytest.skip(f"{spec.name}: weights not here ({', '.join(missing)})")
    return spec, spec.build("cpu")


def _score(spec, metric, pred, gt):
    return metric(pred, gt if spec.needs_gt else None)


def test_batch_of_4_equals_4_batches_of_1(built):
    spec, metric = built
    clean, mild, degraded = _faces(_size(spec))
    if isinstance(metric, DistributionMetric):
        whole = metric.features(degraded)
        parts = torch.cat([metric.features(degraded[i : i + 1]) for i in range(4)])
        torch.testing.assert_close(whole, parts, rtol=1e-4, atol=1e-5)
        return
    whole = _score(spec, metric, degraded, clean)
    parts = torch.cat([_score(spec, metric, degraded[i : i + 1], clean[i : i + 1]) for i in range(4)])
    assert whole.shape == (4,) and whole.dtype == torch.float64
    torch.testing.assert_close(whole, parts, rtol=1e-5, atol=1e-6)


def test_direction_holds_on_clean_vs_degraded(built):
    spec, metric = built
    if isinstance(metric, DistributionMetric):
        pytest.skip("a distribution metric compares groups (its tests compare with pytorch-fid and clean-fid)")
    clean, mild, degraded = _faces(_size(spec))
    if spec.needs_gt:  # against the clean face: a mildly noised copy is better than a degraded one
        good, bad = metric(mild[:2], clean[:2]), metric(degraded[:2], clean[:2])
    else:
        good, bad = metric(clean[:2]), metric(degraded[:2])
    assert torch.isfinite(good).all() and torch.isfinite(bad).all()
    low, high = spec.value_range
    assert ((bad >= low) & (bad <= high)).all(), (spec.name, bad, spec.value_range)
    better = good > bad if spec.higher_is_better else good < bad
    assert better.all(), (spec.name, good, bad, spec.direction)


def test_identical_images_give_the_identity_value(built):
    spec, metric = built
    if spec.identity is None:
        pytest.skip(f"{spec.name} declares no identity value")
    clean, _, _ = _faces(_size(spec))
    got = metric(clean[:2], clean[:2])
    if math.isinf(spec.identity):
        assert (got == spec.identity).all(), got
    else:
        torch.testing.assert_close(got, torch.full_like(got, spec.identity), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda x: x * 1.5 + 0.1, id="above-1"),
        pytest.param(lambda x: x - 0.2, id="below-0"),
        pytest.param(lambda x: torch.where(torch.arange(x.shape[-1]) == 3, math.nan, x), id="nan"),
        pytest.param(lambda x: x[:, :1], id="gray"),
        pytest.param(lambda x: x[0], id="3d"),
    ],
)
def test_bad_inputs_are_refused_with_one_line(built, bad):
    spec, metric = built
    clean, _, _ = _faces(min(_size(spec), 64))  # refused before any work: the size does not matter
    with pytest.raises(BadInputError) as info:
        if isinstance(metric, DistributionMetric):
            metric.features(bad(clean))
        else:
            metric(bad(clean), clean if spec.needs_gt else None)
    assert "\n" not in str(info.value) and str(info.value)
