"""Training and evaluation preprocess a face file the same way (one resize policy: `cfbench.data.faces.fit_face`)."""

import cv2
import numpy as np
import pytest
import torch

from cfbench.data import get_dataset
from cfbench.errors import BadInputError
from cfbench.train.dataset import load_faces, to_tensor


def _write(path, size, seed, channels=3, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    assert cv2.imwrite(str(path), rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype))


def test_a_gt_file_gives_the_same_512_tensor_in_training_and_in_evaluation(tmp_path):
    for name, size, channels in [("big", 1024, 3), ("small", 300, 3), ("exact", 512, 3), ("gray", 700, 1)]:
        _write(tmp_path / f"{name}.png", size, seed=size, channels=channels)
    _write(tmp_path / "deep.png", 600, seed=1, dtype=np.uint16)  # 16-bit: decoded once, by cfbench.imageio
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.imread(str(tmp_path / "big.png")), [cv2.IMWRITE_JPEG_QUALITY, 80])
    evaluation = get_dataset(f"folder:{tmp_path}")
    from_folder, _ = load_faces(tmp_path, 512)
    from_spec, _ = load_faces(f"folder:{tmp_path}", 512)
    assert [n.rsplit(".", 1)[0] for n in from_folder.names] == list(from_spec.names) == evaluation.ids
    for i, face_id in enumerate(evaluation.ids):
        want = evaluation.load(face_id).gt
        assert torch.equal(to_tensor(from_folder.images[i : i + 1])[0], want), face_id
        assert torch.equal(to_tensor(from_spec.images[i : i + 1])[0], want), face_id


def test_a_non_square_training_face_is_skipped_with_the_evaluation_message(tmp_path):
    _write(tmp_path / "a.png", 64, seed=0)
    assert cv2.imwrite(str(tmp_path / "wide.png"), np.zeros((16, 24, 3), np.uint8))
    with pytest.warns(UserWarning, match="wide.png is 24x16, not square"):
        faces, skipped = load_faces(tmp_path, 64)
    assert faces.names == ("a.png",) and skipped == ["wide.png"]
    with pytest.raises(BadInputError, match="wide.png is 24x16, not square"):
        get_dataset(f"folder:{tmp_path}").load("wide")
