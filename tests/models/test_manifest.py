"""Our state_dicts have exactly the official keys, order, shapes and dtypes (tests/data/reference/manifest_*.json)."""

import json

import pytest

from cfbench.models import build_model
from tests.conftest import reference_file

CASES = [
    ("codeformer", "manifest_codeformer.json", 94_112_707),
    ("vqgan", "manifest_vqgan.json", 63_740_099),
    ("vqgan_disc", "manifest_vqgan_disc.json", 6_960_961),
]


@pytest.mark.parametrize("name,manifest,n_params", CASES)
def test_state_dict_matches_official_manifest(name, manifest, n_params):
    keys = json.loads(reference_file(manifest).read_text())["keys"]
    model = build_model(name)
    state = model.state_dict()
    assert list(state) == list(keys)
    for key, (shape, dtype) in keys.items():
        assert list(state[key].shape) == shape, key
        assert str(state[key].dtype).removeprefix("torch.") == dtype, key
    assert sum(p.numel() for p in model.parameters()) == n_params


def test_codeformer_part_sizes_match_the_reference_notes():
    model = build_model("codeformer")
    size = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert size(model.encoder) == 29_416_000
    assert size(model.generator) == 34_061_955
    assert size(model.ft_layers) == 18_925_056
    assert size(model.fuse_convs_dict["32"]) == 4_263_168
    assert size(model.fuse_convs_dict["256"]) == 1_066_624


def test_official_fusion_taps_are_derived_correctly():
    model = build_model("codeformer")
    # official fuse_encoder_block / fuse_generator_block for the connect_list 32..256
    assert model._enc_taps == {32: 14, 64: 11, 128: 8, 256: 5}
    assert model._dec_fuse == {9: 32, 12: 64, 15: 128, 18: 256}


def test_fix_modules_are_frozen():
    model = build_model("codeformer")
    assert not any(p.requires_grad for p in model.quantize.parameters())
    assert not any(p.requires_grad for p in model.generator.parameters())
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_discriminator_output_is_30x30_patches():
    import torch

    disc = build_model("vqgan_disc").eval()
    with torch.no_grad():
        assert disc(torch.zeros(1, 3, 512, 512)).shape == (1, 1, 30, 30)
