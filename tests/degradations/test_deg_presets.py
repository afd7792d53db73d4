"""Presets, the severity scale and seed derivation."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from degradations import (
    derive_seed,
    list_presets,
    load_preset,
    parse_severity,
    preset_config,
    severity_label,
)
from tests.degradations.helpers import psnr

N_RECORDS = 500

# The facts each preset must reproduce: (op id, param) -> (min, max) of the drawn values.
EXPECTED = {
    "celeba-test": {
        ("gaussian_blur", "sigma_x"): (0.1, 10),
        ("gaussian_blur", "sigma_y"): (0.1, 10),
        ("downsample", "scale"): (0.8, 8),
        ("gaussian_noise", "sigma"): (0, 20),
        ("jpeg", "quality"): (60, 99),  # int() truncation of U[60, 100)
    },
    "codeformer-train": {
        ("gaussian_blur", "sigma_x"): (1, 15),
        ("gaussian_blur", "sigma_y"): (1, 15),
        ("downsample", "scale"): (4, 30),
        ("gaussian_noise", "sigma"): (0, 20),
        ("jpeg", "quality"): (30, 79),
    },
    "codeformer-train-small": {
        ("gaussian_blur", "sigma_x"): (0.1, 10),
        ("downsample", "scale"): (1, 12),
        ("gaussian_noise", "sigma"): (0, 15),
        ("jpeg", "quality"): (60, 99),
    },
}


def _records(name: str) -> list[dict]:
    pipe = load_preset(name)
    return [pipe.sample(derive_seed(0, "coverage", str(i))) for i in range(N_RECORDS)]


def test_list_presets() -> None:
    assert {"celeba-test", "codeformer-train", "severity-scale"} <= set(list_presets())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sampled_params_lie_in_their_ranges_and_cover_them(name: str) -> None:
    records = _records(name)
    ids = [o["id"] for o in records[0]["ops"]]
    for (op_id, key), (lo, hi) in EXPECTED[name].items():
        values = np.array([r["ops"][ids.index(op_id)]["params"][key] for r in records], dtype=float)
        assert values.min() >= lo and values.max() <= hi, (op_id, key)
        span = hi - lo
        assert values.min() < lo + 0.03 * span and values.max() > hi - 0.03 * span, (op_id, key)
        if key == "quality":  # every integer quality occurs
            assert set(values.astype(int)) == set(range(lo, hi + 1))
    blur = [r["ops"][ids.index("gaussian_blur")]["params"] for r in records]
    kinds = [b["kernel_type"] for b in blur]
    assert 0.4 < kinds.count("iso") / len(kinds) < 0.6
    assert all(b["kernel_size"] == 41 for b in blur)
    assert all(b["sigma_x"] == b["sigma_y"] and b["rotation"] == 0.0 for b in blur if b["kernel_type"] == "iso")
    rot = np.array([b["rotation"] for b in blur if b["kernel_type"] == "aniso"])
    assert rot.min() >= -math.pi and rot.max() <= math.pi and rot.min() < -2.9 and rot.max() > 2.9
    assert all(r["ops"][ids.index("downsample")]["params"]["interpolation"] == "bilinear" for r in records)
    resize = [r["ops"][ids.index("resize")]["params"] for r in records]
    assert all(p == {"size": "input", "interpolation": "bilinear"} for p in resize)


def test_celeba_test_order_is_blur_downsample_noise_jpeg_resize() -> None:
    assert [o.op for o in preset_config("celeba-test").ops] == [
        "gaussian_blur",
        "downsample",
        "gaussian_noise",
        "jpeg",
        "resize",
    ]


@pytest.mark.parametrize("name", ["codeformer-train", "codeformer-train-small"])
def test_codeformer_colour_ops_are_explicit_and_off(name: str) -> None:
    config = preset_config(name)
    colour = {o.op: o for o in config.ops[5:]}
    assert set(colour) == {"color_shift", "grayscale", "color_jitter"}
    assert all(o.prob == 0.0 for o in colour.values())
    assert colour["color_shift"].params == {"shift": 20}
    assert colour["color_jitter"].params == {
        "brightness": [0.5, 1.5],
        "contrast": [0.5, 1.5],
        "saturation": [0, 1.5],
        "hue": [-0.1, 0.1],
    }
    records = _records(name)[:100]
    assert not any(o["applied"] for r in records for o in r["ops"][5:])


def _level_values(severity) -> tuple[float, float, float, int]:
    ops = {o["id"]: o["params"] for o in load_preset("severity-scale", severity).sample(0)["ops"]}
    return ops["blur"]["sigma_x"], ops["downsample"]["scale"], ops["noise"]["sigma"], ops["jpeg"]["quality"]


def test_severity_levels_are_monotone_in_every_parameter() -> None:
    values = [_level_values(level) for level in range(5)]
    for a, b in zip(values, values[1:], strict=False):
        assert a[0] < b[0] and a[1] < b[1] and a[2] < b[2] and a[3] > b[3]


def test_severity_fractions_interpolate_between_levels() -> None:
    assert _level_values(0.0) == _level_values(0)
    assert _level_values(0.5) == _level_values(2)
    assert _level_values(1.0) == _level_values(4)
    mid = _level_values(0.375)  # halfway between level 1 and level 2
    one, two = _level_values(1), _level_values(2)
    for i in range(3):
        assert mid[i] == pytest.approx((one[i] + two[i]) / 2)
    assert mid[3] == int((75 + 60) / 2)  # the interpolated quality is truncated like a drawn one


def test_severity_none_and_levels_need_the_right_preset() -> None:
    assert load_preset("severity-scale", "none").sample(0)["ops"] == []
    with pytest.raises(ValueError, match="severity levels"):
        load_preset("severity-scale")
    with pytest.raises(ValueError, match="no severity levels"):
        load_preset("celeba-test", 2)
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        load_preset("severity-scale", 5)


def test_mean_psnr_falls_as_the_level_rises(faces512: tuple[torch.Tensor, str]) -> None:
    faces, source = faces512
    n = faces.shape[0]
    scores = []
    for severity in ["none", 0, 1, 2, 3, 4]:
        pipe = load_preset("severity-scale", severity)
        seeds = [derive_seed(0, "monotone", str(i), severity) for i in range(n)]
        lq, _ = pipe(faces, seeds)
        scores.append(float(psnr(lq, faces).mean()))
    assert all(a > b + 0.5 for a, b in zip(scores, scores[1:], strict=False)), (source, scores)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0,1,2,3,4", [0, 1, 2, 3, 4]),
        ("none", ["none"]),
        ("0.5", [0.5]),
        (" 2, none ,0.25", [2, "none", 0.25]),
        ("1.0", [1.0]),
        ("NONE", ["none"]),
    ],
)
def test_parse_severity(spec: str, expected: list) -> None:
    parsed = parse_severity(spec)
    assert parsed == expected
    assert [type(v) for v in parsed] == [type(v) for v in expected]


@pytest.mark.parametrize("spec", ["", "5", "1.5", "-1", "abc", "0,,1", "0;1", "1e-1", "nan"])
def test_parse_severity_rejects_bad_specs_with_an_example(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_severity(spec)
    message = str(info.value)
    assert "\n" not in message and "e.g." in message


def test_derive_seed_is_the_documented_blake2b_rule() -> None:
    key = json.dumps([7, "celeba-test", "00042", "2"], ensure_ascii=False).encode()
    digest = hashlib.blake2b(key, digest_size=8, person=b"cfbench-deg-v1").digest()
    assert derive_seed(7, "celeba-test", "00042", 2) == int.from_bytes(digest, "big") >> 1


def test_derive_seed_separates_every_input() -> None:
    base = derive_seed(0, "ds", "img", 1)
    others = {
        derive_seed(1, "ds", "img", 1),
        derive_seed(0, "ds2", "img", 1),
        derive_seed(0, "ds", "img2", 1),
        derive_seed(0, "ds", "img", 2),
        derive_seed(0, "ds", "img", 0.25),
        derive_seed(0, "ds", "img", "none"),
        derive_seed(0, "ds", "img", None),
    }
    assert base not in others and len(others) == 7
    assert 0 <= base < 2**63
    assert severity_label(1) != severity_label(1.0)
