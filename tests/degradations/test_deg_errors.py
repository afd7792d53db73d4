"""Bad input gives one clear error that names the field or file and the fix."""

from __future__ import annotations

import pytest
import torch

from degradations import (
    OpConfig,
    Pipeline,
    PipelineConfig,
    UnknownNameError,
    apply_params,
    load_preset,
)
from degradations.folder import degrade_folder, list_images, read_image


def _pipe(*ops: OpConfig) -> Pipeline:
    return Pipeline(PipelineConfig(name="bad", ops=list(ops)))


def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message
    return message


def test_range_min_greater_than_max_names_the_field() -> None:
    with pytest.raises(ValueError) as info:
        _pipe(OpConfig("gaussian_blur", params={"sigma": [10, 0.1]}))
    message = _one_line(info.value)
    assert "ops[0] (gaussian_blur).sigma" in message and "min 10 > max 0.1" in message and "e.g." in message


def test_unknown_op_name_suggests_the_close_match() -> None:
    with pytest.raises(UnknownNameError) as info:
        _pipe(OpConfig("gausian_blur"))
    message = _one_line(info.value)
    assert "ops[0]" in message and "'gausian_blur'" in message and "did you mean 'gaussian_blur'" in message
    assert isinstance(info.value, ValueError)  # the CLI turns ValueError into exit code 2


@pytest.mark.parametrize("prob", [-0.1, 1.5, "half"])
def test_probability_outside_0_1_names_the_op(prob: object) -> None:
    with pytest.raises(ValueError) as info:
        _pipe(OpConfig("jpeg"), OpConfig("grayscale", prob=prob))
    message = _one_line(info.value)
    assert "ops[1] (grayscale).prob" in message and "[0, 1]" in message


@pytest.mark.parametrize(
    ("op", "params", "expected"),
    [
        ("gaussian_blur", {"kernel_size": 40}, "kernel_size: must be odd"),
        ("gaussian_blur", {"sigma": [0, 3]}, "sigma: 0 is outside the allowed (0"),
        ("gaussian_blur", {"kernel_type": "box"}, "kernel_type: unknown option 'box'"),
        ("gaussian_blur", {"sigmas": [1, 2]}, "unknown field 'sigmas'"),
        ("jpeg", {"quality": [50, 120]}, "quality: 120 is outside the allowed [1, 100]"),
        ("jpeg", {"quality": "high"}, "quality: expected a number or a [min, max] range"),
        ("downsample", {"interpolation": "lanczos"}, "interpolation: unknown option 'lanczos'"),
        ("gaussian_noise", {"gray_prob": [0, 1]}, "gray_prob: expected a number"),
        ("resize", {"size": [0, 5]}, "size: expected 'input'"),
    ],
)
def test_bad_fields_name_the_field(op: str, params: dict, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        _pipe(OpConfig(op, params=params))
    assert expected in _one_line(info.value)


def test_duplicate_op_ids_and_bad_yaml_keys(tmp_path) -> None:
    with pytest.raises(ValueError, match="duplicate op id 'jpeg'"):
        _pipe(OpConfig("jpeg"), OpConfig("jpeg"))
    _pipe(OpConfig("jpeg"), OpConfig("jpeg", id="jpeg2"))  # an id makes them distinct
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps: []\n")
    with pytest.raises(ValueError, match="unknown key 'steps'"):
        Pipeline.from_yaml(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Pipeline.from_yaml(tmp_path / "missing.yaml")


def test_unknown_preset_suggests_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_preset("celeba_test")
    assert "unknown degradation preset 'celeba_test'" in _one_line(info.value) and "celeba-test" in str(info.value)


def test_images_must_follow_the_contract() -> None:
    record = load_preset("celeba-test").sample(0)
    with pytest.raises(ValueError, match="float32"):
        apply_params(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), record)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        apply_params(torch.full((1, 3, 8, 8), 255.0), record)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        apply_params(torch.zeros(3, 8, 8), record)
    with pytest.raises(ValueError, match="one record per image"):
        apply_params(torch.zeros(2, 3, 8, 8), record)
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        apply_params(torch.zeros(1, 3, 8, 8), record, backend="gpu")


def test_corrupted_records_are_rejected() -> None:
    record = load_preset("celeba-test").sample(0)
    del record["ops"][3]["params"]["quality"]
    with pytest.raises(ValueError, match=r"ops\[3\] \(jpeg\): params lack 'quality'"):
        apply_params(torch.zeros(1, 3, 8, 8), record)
    record = load_preset("celeba-test").sample(0)
    record["ops"][0]["op"] = "gaussian_blurr"
    with pytest.raises(UnknownNameError, match="did you mean"):
        apply_params(torch.zeros(1, 3, 8, 8), record)


def test_non_image_files_are_named(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"not really a png")
    with pytest.raises(ValueError) as info:
        read_image(tmp_path / "a.png")
    assert str(tmp_path / "a.png") in _one_line(info.value) and "cannot decode" in str(info.value)
    (tmp_path / "a.png").unlink()
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot decode"):
        read_image(tmp_path / "b.png")
    (tmp_path / "photo.heic").write_bytes(b"x")
    with pytest.raises(ValueError) as info:
        list_images(tmp_path)
    assert "photo.heic is not an image" in _one_line(info.value) and "move it out" in str(info.value)


def test_sidecar_text_files_are_ignored(tmp_path) -> None:
    (tmp_path / "SOURCES.md").write_text("licences")
    (tmp_path / "list.txt").write_text("a")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "a.png").write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.png"]


def test_missing_and_empty_folders(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        degrade_folder(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no images"):
        degrade_folder(tmp_path / "empty", tmp_path / "out")
