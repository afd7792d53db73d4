"""`cfbench.restore` (cfbench/restoration.py): the [0, 1] contract, and refusal of anything else."""

import pytest
import torch

from cfbench.errors import BadInputError
from cfbench.models import build_model
from cfbench.restoration import check_unit_images, restore
from tests.conftest import TINY_CODEFORMER


def test_restore_returns_unit_range_images_of_the_same_shape():
    torch.manual_seed(0)
    model = build_model("codeformer", **TINY_CODEFORMER)
    x = torch.rand(5, 3, 64, 64)
    y = restore(x, w=0.5, model=model, batch_size=2, device="cpu")
    assert y.shape == x.shape and y.dtype == torch.float32
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    # batch size does not change the result
    torch.testing.assert_close(restore(x, w=0.5, model=model, batch_size=5, device="cpu"), y, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "images,match",
    [
        (torch.rand(1, 3, 64, 64) * 255, r"in \[0, 1\]"),
        (torch.rand(1, 3, 64, 64) - 0.5, r"in \[0, 1\]"),
        ((torch.rand(1, 3, 64, 64) * 255).to(torch.uint8), "divide uint8 by 255"),
        (torch.rand(1, 4, 64, 64), r"shape \(N, 3, H, W\)"),
        (torch.rand(1, 3, 32, 64), "aligned 64x64 faces; got 64x32"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
    ],
)
def test_unit_image_contract(images, match):
    with pytest.raises(BadInputError, match=match):
        check_unit_images(images, 64)


def test_package_level_restore_is_the_api_function():
    import cfbench

    assert cfbench.restore is restore
