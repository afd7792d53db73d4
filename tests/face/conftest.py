"""Fixtures of the face-analysis tests: the dlib backend (skipped where dlib or its models are not installed) and
the committed real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parents[1] / "data"
FACES = DATA / "faces_analysis"
ALIGNED = DATA / "metrics" / "gt"


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return np.ascontiguousarray(img[:, :, ::-1])


@pytest.fixture(scope="session")
def dlib_backend():
    pytest.importorskip("dlib")
    from cfbench import weights
    from cfbench.errors import MissingWeightsError
    from cfbench.face import get_backend

    try:
        weights.require("dlib_shape_predictor_68")
    except MissingWeightsError:
        pytest.skip("face-recognition-models is not installed")
    return get_backend("dlib")


def seeded_bn_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`net`'s state_dict after giving every BatchNorm non-trivial running statistics (so eval mode is exercised);
    seed torch before building `net`."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def photo_png(tmp_path: Path, name: str) -> tuple[Path, np.ndarray]:
    """The committed JPEG photo `name` saved as PNG under tmp_path/in (lossless, so output pixels can be compared
    exactly); (its path, its uint8 RGB pixels)."""
    rgb = read_rgb(FACES / f"{name}.jpg")
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path, rgb


def restore_cli(inputs, out: Path, *extra: str) -> int:
    """`cfbench restore INPUTS --out OUT EXTRA...` with the bundled codeformer_tiny on the CPU; the exit code."""
    from cfbench.cli import main

    args = ["restore", *map(str, inputs), "--checkpoint", "codeformer_tiny", "--out", str(out), "--device", "cpu"]
    return main([*args, *extra])
