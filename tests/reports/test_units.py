"""Unit tests of the report computations on synthetic inputs: Pareto / best w direction, codebook numbers, yaw
binning."""

import math

import numpy as np
import pandas as pd
import pytest

from reports import codebook, codebook_nn
from reports.fidelity_quality import balanced_w, best_ws, pareto_mask, summary
from reports.load import Run, order_severities
from reports.side_face import LABELS, NO_POSE, faces, yaw_bin
from reports.style import MetricFacts


def test_pareto_honours_directions():
    # fidelity (x) higher is better, quality (y) lower is better
    x = [0.9, 0.8, 0.7, 0.6]
    y = [5.0, 4.0, 4.5, 3.0]
    assert pareto_mask(x, y, True, False).tolist() == [True, True, False, True]
    # flip the quality direction: now higher y is better, so w=0 (0.9, 5.0) dominates everything
    assert pareto_mask(x, y, True, True).tolist() == [True, False, False, False]
    # NaN never Pareto-optimal
    assert pareto_mask([1.0, math.nan], [1.0, 0.0], True, False).tolist() == [True, False]


def test_best_and_balanced_w():
    ws = [0.0, 0.5, 1.0]
    assert best_ws(ws, [3.0, 2.0, 2.0], higher=False) == [0.5, 1.0]
    assert best_ws(ws, [3.0, 2.0, 2.0], higher=True) == [0.0]
    # x: fidelity higher better grows with w, y: quality lower better grows with w -> a trade-off
    x, y = [0.0, 0.9, 1.0], [0.0, 0.1, 1.0]
    assert balanced_w(ws, x, y, True, False) == 0.5
    # with the quality direction flipped, w=1 is best on both
    assert balanced_w(ws, x, y, True, True) == 1.0


def test_summary_on_a_synthetic_frame():
    frame = pd.DataFrame(
        {
            "checkpoint": ["a"] * 3,
            "severity": ["2"] * 3,
            "w": [0.0, 0.5, 1.0],
            "psnr": [20.0, 22.0, 23.0],
            "niqe": [4.0, 5.0, 7.0],
        }
    )
    facts = {"psnr": MetricFacts("PSNR", "dB", "fidelity"), "niqe": MetricFacts("NIQE", "", "quality")}
    run = Run(None, {}, frame, frame, None, {"psnr": True, "niqe": False}, facts=facts)
    t = summary(run, frame).frame.iloc[0]
    assert t["best w: psnr"] == "1" and t["best w: niqe"] == "0"
    assert t["Pareto w: psnr vs niqe"] == "0, 0.5, 1"
    assert t["balanced w: psnr vs niqe"] == "0.5"  # normalised (0.67, 0.67) is nearest to (1, 1)


def test_codebook_numbers_equal_numpy():
    rng = np.random.default_rng(0)
    K = 32
    codes = rng.integers(0, 20, size=(5, 256)).astype(np.int16)  # codes 20..31 dead
    c = codebook.counts(codes, K)
    p = np.bincount(codes.ravel().astype(int), minlength=K) / codes.size
    nz = p[p > 0]
    assert codebook.perplexity(c) == pytest.approx(np.exp(-(nz * np.log(nz)).sum()), rel=1e-12)
    assert codebook.dead_codes(c) == K - len(np.unique(codes)) == 12
    assert codebook.top_share(c) == pytest.approx(np.sort(p)[::-1][:1].sum())  # ceil(0.01 * 32) = 1 code
    uniform = np.ones(K, int)
    assert codebook.perplexity(uniform) == pytest.approx(K)
    assert codebook.total_variation(uniform, uniform) == 0
    one = np.zeros(K, int)
    one[0] = 7
    assert codebook.total_variation(one, uniform) == pytest.approx(1 - 1 / K)
    assert codebook.counts(np.array([[-1, 0, 1]]), 4).tolist() == [1, 1, 0, 0]  # padding ignored


def test_codebook_stats_per_severity_and_spatial_change():
    ids = np.array(["a", "b", "a", "b"])
    sev = np.array(["0", "0", "2", "2"])
    mat = np.zeros((4, 256), np.int16)
    mat[2, :10] = 3  # image a changes 10 positions at severity 2
    run = Run(
        None, {}, None, None, {"checkpoint": np.array(["m"] * 4), "severity": sev, "image_id": ids, "codes": mat}, {}
    )
    frame, extra = codebook.stats(run, size=8)
    assert frame["dead codes"].tolist() == [7, 6]
    assert frame["changed positions"].iloc[1] == pytest.approx(10 / 512)
    assert extra["m"]["maps"]["2"][:10].tolist() == [0.5] * 10 and extra["m"]["maps"]["2"][10:].sum() == 0


def test_perplexity_and_dead_codes_by_hand():
    # 4 tokens on codes 0, 0, 1, 2 of K = 5: p = (1/2, 1/4, 1/4), H = 1.5 ln 2, perplexity 2^1.5; codes 3, 4 dead
    c = codebook.counts(np.array([[0, 0, 1, 2]]), 5)
    assert c.tolist() == [2, 1, 1, 0, 0]
    assert codebook.perplexity(c) == pytest.approx(2**1.5, rel=1e-12)
    assert codebook.dead_codes(c) == 2
    assert codebook.top_share(c) == 0.5  # ceil(0.05) = 1 code: code 0 holds 2 of 4 tokens
    assert codebook.perplexity(np.array([0, 9, 0])) == 1.0  # one code in use


def test_spatial_change_map_by_hand_and_its_16x16_layout():
    # 2 faces, 256 tokens in row-major (row, column) order; at severity 3 face a changes tokens 17 (row 1, col 1)
    # and 255 (row 15, col 15), face b changes token 17 only; severity 1 changes nothing
    base = np.arange(256, dtype=np.int16)[None].repeat(2, 0) % 64
    sev1, sev3 = base.copy(), base.copy()
    sev3[0, [17, 255]] = 99
    sev3[1, 17] = 99
    run = Run(
        None,
        {},
        None,
        None,
        {
            "checkpoint": np.array(["m"] * 6),
            "severity": np.array(["3", "3", "1", "1", "0", "0"]),
            "image_id": np.array(["a", "b"] * 3),
            "codes": np.concatenate([sev3, sev1, base]),
        },
        {},
    )
    frame, extra = codebook.stats(run, size=128)
    maps = extra["m"]["maps"]
    assert extra["m"]["ref"] == "0" and maps["1"].sum() == 0
    want = np.zeros((16, 16))
    want[1, 1], want[15, 15] = 1.0, 0.5  # share of the 2 faces whose code changed there
    np.testing.assert_array_equal(maps["3"].reshape(16, 16), want)
    assert frame.set_index("severity").loc["3", "changed positions"] == pytest.approx(3 / 512)
    fig = codebook.spatial_figure("m", extra["m"])
    drawn = fig.axes[1].get_images()[0].get_array()  # panel 2 = severity 3, as drawn
    np.testing.assert_array_equal(np.asarray(drawn), want)


def test_nn_agreement_is_exact_on_a_synthetic_code_set():
    # 2 images x severities 0 and 2, 8 tokens each; the counts below are worked out by hand from the edits
    hq_nn = np.arange(16, dtype=np.int16).reshape(2, 8)
    hq = hq_nn.copy()
    hq[0, :3] = 99  # the transformer on the GT faces: 13 of 16 tokens equal the nearest code
    codes = {
        "checkpoint": np.array(["m"] * 4),
        "severity": np.array(["2", "0", "2", "0"]),  # unsorted on purpose
        "image_id": np.array(["a", "a", "b", "b"]),
        "hq_nn_codes": np.concatenate([hq_nn[:1], hq_nn[:1], hq_nn[1:], hq_nn[1:]]),
        "hq_codes": np.concatenate([hq[:1], hq[:1], hq[1:], hq[1:]]),
    }
    tr = codes["hq_nn_codes"].copy()
    nn = codes["hq_nn_codes"].copy()
    nn[[1, 3], :2] = 50  # severity 0: nearest differs from the HQ nearest on 2 tokens of each image
    nn[[0, 2], :6] = 60  # severity 2: on 6 tokens of each image
    tr[[0, 2], :2] = 60  # severity 2: the transformer matches the (wrong) nearest code on 2 of those
    tr[2, 7] = -1  # a padded token is not counted
    codes.update(codes=tr, nn_codes=nn)
    frame, missing = codebook_nn.table(codes)
    assert missing == [] and frame["input"].tolist() == [codebook_nn.HQ, "severity 0", "severity 2"]
    hq_row, s0, s2 = (frame.iloc[i] for i in range(3))
    assert (hq_row["images"], hq_row["tokens"], hq_row["transformer = nearest"]) == (2, 16, 13 / 16)
    assert hq_row["nearest = HQ nearest"] == 1.0
    assert s0["transformer = nearest"] == 12 / 16 and s0["nearest = HQ nearest"] == 12 / 16
    assert s0["transformer = HQ nearest"] == 1.0
    # severity 2: tokens 0-1 (both 60) and 6-7 (both the HQ code) agree, minus the padded token of image b
    assert s2["tokens"] == 15 and s2["transformer = nearest"] == 7 / 15
    assert s2["transformer = HQ nearest"] == 11 / 15 and s2["nearest = HQ nearest"] == 4 / 16
    # a checkpoint whose parts stored no nearest codes (-1 after a merge) is listed, not counted
    codes2 = {k: np.concatenate([v, v[:1]]) for k, v in codes.items()}
    codes2["checkpoint"] = np.array(["m"] * 4 + ["old"])
    codes2["nn_codes"][-1] = -1
    assert codebook_nn.table(codes2)[1] == ["old"]


def test_yaw_bins_count_every_face_once():
    yaw = [0.0, -14.9, 15.0, 29.0, -31.0, 44.9, 45.0, 59.0, 60.0, -89.0, np.nan]
    assert yaw_bin(yaw).tolist() == [
        "0-15",
        "0-15",
        "15-30",
        "15-30",
        "30-45",
        "30-45",
        "45-60",
        "45-60",
        ">60",
        ">60",
        NO_POSE,
    ]
    results = pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(len(yaw))] * 2,
            "w": [0.0] * len(yaw) + [1.0] * len(yaw),
            "gt_yaw": yaw * 2,
        }
    )
    run = Run(None, {}, results, None, None, {})
    per = faces(run)
    assert len(per) == len(yaw)
    counts = per["bin"].value_counts()
    assert [int(counts.get(b, 0)) for b in (*LABELS, NO_POSE)] == [2, 2, 2, 2, 2, 1]


def test_severity_order():
    assert order_severities(["none", "2", "0.5", "10", "0"]) == ["0", "0.5", "2", "10", "none"]
