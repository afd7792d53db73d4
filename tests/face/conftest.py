"""Fixtures of the face-analysis tests: the dlib backend (skipped where dlib or its models are not installed) and
the committed real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

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
