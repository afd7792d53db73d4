"""KID equals torch-fidelity's on the same features; the harness gives KID the feature sets it needs."""

import numpy as np
import pytest
import torch

from cfbench.errors import BadInputError
from cfbench.eval.requirements import needs_gt
from cfbench.metrics import get_metric
from cfbench.metrics.base import DistributionMetric, FeatureSet, MetricKind, MetricSpec
from cfbench.metrics.folders import BuiltMetric, ImagePair, score_folders
from cfbench.metrics.kid import kid, mmd2_unbiased


def _features(n, d, shift, seed):
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_mmd2_by_hand_on_two_points():
    x, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0], [0.0, 0.0]])
    k = lambda a, b: (a @ b / 2 + 1) ** 3  # noqa: E731
    within = (2 * k(x[0], x[1]) + 2 * k(y[0], y[1])) / 2
    cross = sum(k(a, b) for a in x for b in y) / 4
    assert mmd2_unbiased(x, y) == pytest.approx(within - 2 * cross, rel=1e-12)


@pytest.mark.parametrize(
    ("n_pred", "n_ref", "subsets", "size"),
    [(60, 50, 10, 20), pytest.param(1100, 1050, 100, 1000, marks=pytest.mark.slow, id="torch-fidelity-defaults")],
)
def test_equals_torch_fidelity_on_shared_features(n_pred, n_ref, subsets, size):
    metric_kid = pytest.importorskip("torch_fidelity.metric_kid")
    pred, ref = _features(n_pred, 24, 0.3, 1), _features(n_ref, 24, 0.0, 2)
    want = metric_kid.kid_features_to_metric(
        torch.from_numpy(pred), torch.from_numpy(ref), kid_subsets=subsets, kid_subset_size=size, verbose=False
    )
    mean, std = kid(pred, ref, subsets=subsets, subset_size=size)
    assert mean == pytest.approx(want[metric_kid.KEY_METRIC_KID_MEAN], rel=1e-6)
    assert std == pytest.approx(want[metric_kid.KEY_METRIC_KID_STD], rel=1e-6)


def test_identical_sets_are_near_zero_and_shifted_sets_are_not():
    f = _features(80, 16, 0.0, 3)
    same, shifted = kid(f, f, subsets=20, subset_size=40)[0], kid(f + 1.0, f, subsets=20, subset_size=40)[0]
    assert shifted > 10 * abs(same)


def test_small_groups_use_every_face_and_tiny_ones_are_refused():
    pred, ref = _features(30, 8, 0.0, 4), _features(25, 8, 0.0, 5)
    assert kid(pred, ref, subsets=3) == kid(pred, ref, subsets=3, subset_size=25)
    with pytest.raises(BadInputError, match="at least 2"):
        kid(pred[:1], ref)


def test_kid_is_registered_with_its_facts():
    spec = get_metric("kid")
    assert spec.kind is MetricKind.DISTRIBUTION and not spec.higher_is_better and spec.role == "quality"
    assert spec.weights == ("pt_inception",) and needs_gt(spec, {})


def test_feature_set_round_trips_and_merges():
    a, b = FeatureSet(3), FeatureSet(3)
    a.add(torch.ones(2, 3))
    b.add(np.zeros((1, 3)))
    a.merge(b)
    back = FeatureSet.from_arrays(a.to_arrays())
    assert back.n == 3 and np.array_equal(back.features, [[1, 1, 1], [1, 1, 1], [0, 0, 0]])
    assert np.allclose(back.cov, np.cov(back.features, rowvar=False))


class ChannelKID(DistributionMetric):
    """KID over per-channel means: exercises the harness path of metrics that keep their features."""

    dim = 3
    statistics_type = FeatureSet
    spec = MetricSpec("toykid", "toykid", "test", MetricKind.DISTRIBUTION, False, "test", None, "toy", gt_set=True)

    def features(self, images):
        return images.mean(dim=(2, 3))

    def cache_key(self):
        return {"metric": "toykid"}

    def compare(self, pred, ref):
        return kid(pred.features, ref.features, subsets=4)[0]


def test_folder_scoring_hands_kid_both_feature_sets(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pairs = []
    for i in range(6):
        for side, shift in (("pred", 60), ("gt", 0)):
            (tmp_path / side).mkdir(exist_ok=True)
            img = np.clip(rng.normal(120 + shift, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / side / f"{i}.png")
        pairs.append(ImagePair(f"{i}.png", tmp_path / "pred" / f"{i}.png", tmp_path / "gt" / f"{i}.png"))
    metric = ChannelKID()
    scores = score_folders(pairs, [BuiltMetric(metric.spec, metric)], batch_size=4)
    (row,) = scores.distribution
    assert row["metric"] == "toykid" and row["images"] == 6 and row["value"] > 0.1


class FixedReference(ChannelKID):
    """A metric with a fixed reference (mean, cov), like `fid[ffhq512]`: the squared distance of the means."""

    def reference_statistics(self):
        return np.zeros(3), np.eye(3)

    def distance(self, pred, ref_mean, ref_cov):
        return float(((pred.mean - ref_mean) ** 2).sum())


def test_value_compares_with_the_gt_set_or_else_the_fixed_reference():
    pred, gt = FeatureSet(3), FeatureSet(3)
    pred.add(_features(12, 3, 1.0, 6))
    gt.add(_features(10, 3, 0.0, 7))
    metric = ChannelKID()
    assert metric.value(pred, gt) == kid(pred.features, gt.features, subsets=4)[0]
    with pytest.raises(ValueError, match="compares with the GT set"):
        metric.value(pred, None)
    assert FixedReference().value(pred, None) == float((pred.mean**2).sum())
