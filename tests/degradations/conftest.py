"""Shared fixtures of the degradation tests: small real faces as float32 RGB NCHW tensors in [0, 1]."""

from __future__ import annotations

import pytest
import torch

from tests.degradations.helpers import SHARED, SHARED_FACES, bundled_face_paths, load_rgb


@pytest.fixture(scope="session")
def faces128() -> torch.Tensor:
    """The three bundled faces, (3, 3, 128, 128)."""
    return torch.cat([load_rgb(p, 128) for p in bundled_face_paths()])


@pytest.fixture(scope="session")
def faces512() -> tuple[torch.Tensor, str]:
    """Four 512x512 faces from ../shared (beside the checkout) if present, else the bundled 3 enlarged."""
    shared = [SHARED / name for name in SHARED_FACES]
    if all(p.is_file() for p in shared):
        return torch.cat([load_rgb(p, 512) for p in shared]), "shared"
    return torch.cat([load_rgb(p, 512) for p in bundled_face_paths()]), "bundled"
