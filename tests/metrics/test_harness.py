"""The metrics harness with small stand-in metrics: folder pairing, batching, skipping, the GT feature cache."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cfbench.errors import BadInputError
from cfbench.metrics.base import DistributionMetric, FeatureStatistics, MetricKind, MetricSpec, PerImageMetric
from cfbench.metrics.cache import FeatureCache, cache_key
from cfbench.metrics.folders import BuiltMetric, build_metrics, pair_folders, score_folders

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "metrics"


class MeanAbsDiff(PerImageMetric):
    spec = MetricSpec(
        "mad", "mad", "test", MetricKind.FULL_REFERENCE, False, "test", lambda d: MeanAbsDiff(d), "mean |pred-gt|"
    )

    def compute(self, pred, gt):
        return (pred.double() - gt.double()).abs().mean(dim=(1, 2, 3))


class ChannelMeans(DistributionMetric):
    """Features = per-channel means and stds; counts the images it embedded."""

    dim = 6
    spec = MetricSpec(
        "toyfid", "toyfid", "test", MetricKind.DISTRIBUTION, False, "test", lambda d: ChannelMeans(d), "toy"
    )

    def __init__(self, device="cpu"):
        super().__init__(device)
        self.embedded = 0

    def features(self, images):
        self.embedded += images.shape[0]
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], 1).double()

    def cache_key(self):
        return {"extractor": "channel-means", "resize": "none"}

    def distance(self, pred, ref_mean, ref_cov):
        return float(((pred.mean - ref_mean) ** 2).sum() + np.trace(pred.cov) + np.trace(ref_cov))


def built_metric(metric):
    return BuiltMetric(metric.spec, metric)


def test_pairs_match_by_stem_and_unmatched_files_are_listed(tmp_path):
    pairs = pair_folders(FIXTURES / "lq", FIXTURES / "gt")
    assert [p.name for p in pairs] == sorted(p.name for p in (FIXTURES / "lq").glob("*.png"))
    assert all(p.pred.stem == p.gt.stem for p in pairs)
    gt = tmp_path / "gt"
    gt.mkdir()
    for p in pairs[:2]:
        (gt / p.gt.name).write_bytes(p.gt.read_bytes())
    (gt / "stranger.png").write_bytes(pairs[0].gt.read_bytes())
    with pytest.raises(BadInputError) as err:
        pair_folders(FIXTURES / "lq", gt)
    msg = str(err.value)
    assert "2 restored image(s) have no GT" in msg and pairs[3].pred.stem in msg and "stranger" in msg


def test_folders_are_listed_like_dataset_folders(tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "a.png").write_bytes((FIXTURES / "gt" / "ffhq_00003.png").read_bytes())
    (pred / "scores.csv").write_text("sidecar files are ignored")
    assert [p.name for p in pair_folders(pred)] == ["a.png"]
    (pred / "b.gif").write_bytes(b"GIF89a")
    with pytest.raises(BadInputError, match=r"b\.gif is not an image"):
        pair_folders(pred)


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BadInputError, match="no image files"):
        pair_folders(tmp_path)
    with pytest.raises(BadInputError, match="folder not found"):
        pair_folders(tmp_path / "nope")


def test_per_image_values_do_not_depend_on_batch_size():
    pairs = pair_folders(FIXTURES / "lq", FIXTURES / "gt")
    built, _ = build_metrics([MeanAbsDiff.spec], "cpu")
    one = score_folders(pairs, built, batch_size=1).per_image
    three = score_folders(pairs, built, batch_size=3).per_image
    assert list(one["file"]) == [p.name for p in pairs]
    np.testing.assert_array_equal(one["mad"].to_numpy(), three["mad"].to_numpy())
    assert (one["mad"] > 0.005).all()


@pytest.mark.parametrize("channels", [1, 4])
def test_gray_or_rgba_files_are_refused(tmp_path, channels):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    img = cv2.imread(str(FIXTURES / "gt" / "ffhq_00003.png"))
    cv2.imwrite(str(gt / "a.png"), img)
    cv2.imwrite(str(pred / "a.png"), img[:, :, :1] if channels == 1 else np.dstack([img, img[:, :, :1]]))
    built, _ = build_metrics([MeanAbsDiff.spec], "cpu")
    word = "grayscale" if channels == 1 else "RGBA"
    with pytest.raises(BadInputError, match=word):
        score_folders(pair_folders(pred, gt), built)


def test_size_mismatch_names_the_file(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    img = cv2.imread(str(FIXTURES / "gt" / "ffhq_00003.png"))
    cv2.imwrite(str(gt / "face.png"), img)
    cv2.imwrite(str(pred / "face.png"), img[:256, :256])
    built, _ = build_metrics([MeanAbsDiff.spec], "cpu")
    with pytest.raises(BadInputError, match="sizes differ for face.png"):
        score_folders(pair_folders(pred, gt), built)


def test_metric_with_missing_weights_is_skipped_with_the_placement_message():
    spec = MetricSpec(
        "needs_codeformer", "x", "test", MetricKind.NO_REFERENCE, False, "test", lambda d: None, "x", ("codeformer",)
    )
    built, skipped = build_metrics([MeanAbsDiff.spec, spec], "cpu")
    assert [b.spec.name for b in built] == ["mad"]
    assert "codeformer.pth" in skipped["needs_codeformer"] and "put it at" in skipped["needs_codeformer"]


def test_gt_statistics_are_cached_and_reused(tmp_path):
    pairs = pair_folders(FIXTURES / "lq", FIXTURES / "gt")
    cache = FeatureCache(tmp_path / "cache")
    first = ChannelMeans()
    a = score_folders(pairs, [built_metric(first)], cache=cache)
    assert first.embedded == 2 * len(pairs)  # restored and GT
    second = ChannelMeans()
    b = score_folders(pairs, [built_metric(second)], cache=cache)
    assert second.embedded == len(pairs)  # restored only: the GT statistics came from the cache
    assert a.distribution[0]["value"] == b.distribution[0]["value"]
    assert b.distribution[0]["reference"] == "gt (cached)"
    assert len(list((tmp_path / "cache" / "fid_stats").glob("*.npz"))) == 1


def test_a_changed_gt_file_misses_the_cache(tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    for p in (FIXTURES / "gt").glob("*.png"):
        (gt / p.name).write_bytes(p.read_bytes())
    cache = FeatureCache(tmp_path / "cache")
    score_folders(pair_folders(FIXTURES / "lq", gt), [built_metric(ChannelMeans())], cache=cache)
    img = cv2.imread(str(gt / "ffhq_00003.png"))
    img[0, 0] = 255 - img[0, 0]
    cv2.imwrite(str(gt / "ffhq_00003.png"), img)
    metric = ChannelMeans()
    score_folders(pair_folders(FIXTURES / "lq", gt), [built_metric(metric)], cache=cache)
    assert metric.embedded == 8


def test_feature_statistics_equal_numpy_cov_and_merge():
    rng = np.random.default_rng(0)
    feats = rng.normal(0.4, 0.3, (50, 7))
    whole, a, b = FeatureStatistics(7), FeatureStatistics(7), FeatureStatistics(7)
    whole.add(feats)
    a.add(torch.from_numpy(feats[:20]))
    b.add(feats[20:])
    a.merge(b)
    np.testing.assert_allclose(whole.mean, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(whole.cov, np.cov(feats, rowvar=False), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(a.cov, whole.cov, rtol=1e-12)
    restored = FeatureStatistics.from_arrays(whole.to_arrays())
    np.testing.assert_array_equal(restored.cov, whole.cov)


def test_cache_key_covers_every_part_and_unreadable_entries_are_misses(tmp_path):
    assert cache_key({"a": 1, "b": "x"}) == cache_key({"b": "x", "a": 1})
    assert cache_key({"a": 1, "resize": "clean"}) != cache_key({"a": 1, "resize": "legacy_pytorch"})
    cache = FeatureCache(tmp_path)
    parts = {"extractor": "x"}
    path = cache.save("k", parts, {"v": np.arange(3.0)})
    np.testing.assert_array_equal(cache.load("k", parts)["v"], np.arange(3.0))
    path.write_bytes(b"truncated")
    assert cache.load("k", parts) is None


def test_gt_side_entries_restore_what_was_stored_and_a_new_version_misses(tmp_path):
    from cfbench.metrics.cache import GtSideEntry, restore_entries, store_entries

    value = {"x": np.arange(3.0)}
    seen = {}

    def entry(version, key="k"):
        return GtSideEntry("name", "kind", {"key": key}, version, lambda a: seen.update(a), lambda: value)

    cache = FeatureCache(tmp_path / "cache")
    first = entry(1)
    assert restore_entries([first], cache) == [first] and restore_entries([first], None) == [first]
    store_entries([first], cache)
    assert restore_entries([entry(1)], cache) == [] and np.array_equal(seen["x"], value["x"])
    assert len(restore_entries([entry(2), entry(1, key="other")], cache)) == 2
