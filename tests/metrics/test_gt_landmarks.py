"""GT landmarks of the face metrics: remembered per GT image, cached on disk per dataset and backend, invalidated by
a changed GT file (cfbench.metrics.gt_landmarks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cfbench.errors import MissingWeightsError
from cfbench.imageio import read_image, write_image
from cfbench.metrics import FeatureCache, build_metrics, pair_folders, score_folders
from cfbench.metrics.gt_landmarks import KIND, GtMemo
from cfbench.metrics.registry import get_metric, parse_metric_list

GT = Path(__file__).resolve().parents[1] / "data" / "metrics" / "gt"


def test_memo_round_trip_and_wrong_width_is_a_miss():
    memo = GtMemo(4)
    memo.put("b" * 64, [1, 2, 3, 4])
    memo.put("a" * 64, np.full(4, np.nan))
    again = GtMemo(4)
    again.load(memo.to_arrays())
    assert again.computed == 0 and sorted(again.values) == ["a" * 64, "b" * 64]
    np.testing.assert_array_equal(again.get("b" * 64), [1, 2, 3, 4])
    assert np.isnan(again.get("a" * 64)).all()
    other = GtMemo(5)
    other.load(memo.to_arrays())
    assert other.values == {}
    empty = GtMemo(3).to_arrays()
    assert empty["values"].shape == (0, 3)


@pytest.fixture
def dlib_lmd():
    pytest.importorskip("dlib")
    try:
        return get_metric("lmd[dlib]").build()
    except MissingWeightsError:
        pytest.skip("face-recognition-models is not installed")


@pytest.fixture
def folders(tmp_path):
    """Two GT faces; the restored images are their 3-pixel horizontal shifts."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    for p in sorted(GT.glob("*.png"))[:2]:
        shutil.copy(p, gt / p.name)
        img = read_image(p)
        write_image(pred / p.name, torch.roll(img, 3, dims=2))
    return pred, gt


def _score(pred, gt, cache, names="lmd[dlib],identity_cos[dlib]"):
    built, skipped = build_metrics(parse_metric_list(names), "cpu")
    assert not skipped, skipped
    scores = score_folders(pair_folders(pred, gt), built, cache=cache)
    return scores.per_image, {m.column: m.metric for m in built}


def _counting(monkeypatch, backend):
    calls = []
    analyze = backend.analyze

    def counted(image, *a, **k):
        calls.append(image.shape)
        return analyze(image, *a, **k)

    monkeypatch.setattr(backend, "analyze", counted)
    return calls


def test_second_scoring_reads_the_cache_and_a_changed_gt_file_invalidates_it(dlib_lmd, folders, tmp_path, monkeypatch):
    pred, gt = folders
    cache = FeatureCache(tmp_path / "cache")
    first, metrics = _score(pred, gt, cache)
    assert all(m.gt_memo.computed == 2 for m in metrics.values())
    entries = list((tmp_path / "cache" / KIND).glob("*.npz"))
    assert len(entries) == 1  # the dlib metrics share one GT face protocol, hence one entry
    assert np.isfinite(first.drop(columns="file").to_numpy()).all()

    calls = _counting(monkeypatch, dlib_lmd.backend)  # the backend is shared by every dlib metric
    second, metrics = _score(pred, gt, cache)
    assert calls == [] and all(m.gt_memo.computed == 0 for m in metrics.values())
    assert second.equals(first)

    changed = sorted(gt.iterdir())[1]
    write_image(changed, torch.flip(read_image(changed), dims=[2]))
    third, metrics = _score(pred, gt, cache)
    assert calls and all(m.gt_memo.computed == 2 for m in metrics.values())  # a new dataset hash: a new entry
    assert len(list((tmp_path / "cache" / KIND).glob("*.npz"))) == 2
    assert third.iloc[0].equals(first.iloc[0]) and not third.iloc[1].equals(first.iloc[1])
    uncached, _ = _score(pred, gt, None)
    assert third.equals(uncached)


def test_gt_memo_spares_repeated_gt_within_a_call(dlib_lmd, monkeypatch):
    """A sweep scores each GT face once per w: the GT is analysed once, its 68 points reused."""
    gt = read_image(sorted(GT.glob("*.png"))[0])[None]
    metric = get_metric("lmd[dlib]").build()
    calls = _counting(monkeypatch, metric.backend)
    out = metric(torch.cat([gt, torch.roll(gt, 2, dims=3), gt]), gt.repeat(3, 1, 1, 1))
    assert len(calls) == 1 and metric.gt_memo.computed == 1
    assert out[0] == 0 and out[2] == 0 and 1 < out[1] < 3


def test_missing_gt_face_is_cached_as_missing(dlib_lmd, tmp_path):
    blank = torch.full((1, 3, 64, 64), 0.5)
    metric = get_metric("lmd[dlib]").build()
    assert torch.isnan(metric(blank, blank)).all() and metric.missing == 1
    again = get_metric("lmd[dlib]").build()
    again.gt_memo.load(metric.gt_memo.to_arrays())
    assert torch.isnan(again(blank, blank)).all() and again.missing == 1 and again.gt_memo.computed == 0


@pytest.fixture(scope="module")
def fan_metric():
    from cfbench.face.fan import FAN
    from cfbench.metrics.landmarks import FanLandmarkDistance

    torch.manual_seed(0)
    return FanLandmarkDistance(state_dict=FAN().state_dict())


def test_fan_gt_landmarks_go_through_the_network_once(fan_metric, monkeypatch):
    """Only GT images not in the memo reach the network; the cache key names the in-memory weights by content."""
    seen = []

    def fake_landmarks(images):  # 98 points that depend on the image (its mean), so mix-ups would show
        seen.append(len(images))
        return images.mean(dim=(1, 2, 3)).double()[:, None, None].expand(-1, 98, 2) * 100

    monkeypatch.setattr(fan_metric.fan, "landmarks", fake_landmarks)
    a, b = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fan_metric.gt_memo = GtMemo(196)
    out = fan_metric(torch.stack([a, b, a]), torch.stack([a, a, b]))
    assert seen == [3, 2]  # the predictions, then the two distinct GT images
    assert out[0] == 0 and out[1] > 0
    fan_metric(torch.stack([b]), torch.stack([b]))
    assert seen == [3, 2, 1]  # the GT came from the memo
    key = fan_metric.gt_cache_key()
    assert key["backend"] == "fan" and len(key["weights"]) == 64
