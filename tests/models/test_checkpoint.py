"""Reading official-style .pth files and our safetensors, and the errors for files that do not fit."""

import pickle

import pytest
import torch

from cfbench.errors import CheckpointError
from cfbench.models import build_model, load_checkpoint, save_checkpoint
from cfbench.state_dict import load_state_dict_file
from tests.conftest import TINY_CODEFORMER


def _tiny():
    torch.manual_seed(3)
    return build_model("codeformer", **TINY_CODEFORMER).eval()


def test_safetensors_round_trip_rebuilds_the_model_from_metadata(tmp_path):
    model = _tiny()
    path = save_checkpoint(model, tmp_path / "ckpt.safetensors", extra={"note": "test"})
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    _, meta = load_state_dict_file(path)
    assert meta["note"] == "test" and "cfbench.config" in meta
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("key", ["params_ema", "params"])
def test_official_pth_layouts_load(tmp_path, key):
    model = build_model("vqgan_disc")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # DDP prefix is stripped
    torch.save({key: state, "iter": 5}, tmp_path / "net.pth")
    loaded = load_checkpoint(tmp_path / "net.pth")
    assert type(loaded).__name__ == "VQGANDiscriminator"
    assert torch.equal(loaded.main[0].weight, model.main[0].weight)


def test_params_ema_is_preferred_over_params(tmp_path):
    a, b = build_model("vqgan_disc"), build_model("vqgan_disc")
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, tmp_path / "net.pth")
    assert torch.equal(load_checkpoint(tmp_path / "net.pth").main[0].weight, b.main[0].weight)


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path):
    state = build_model("vqgan_disc").state_dict()
    del state["main.0.bias"]
    state["main.99.weight"] = torch.zeros(1)
    state["main.14.weight"] = torch.zeros(2, 512, 4, 4)
    torch.save({"params": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "bad.pth")
    msg = str(err.value)
    assert "missing (1): main.0.bias" in msg
    assert "unexpected (1): main.99.weight" in msg
    assert "main.14.weight (2, 512, 4, 4) != (1, 512, 4, 4)" in msg
    assert "\n" not in msg


def test_non_strict_load_skips_extra_keys_but_not_wrong_shapes(tmp_path):
    state = build_model("vqgan_disc").state_dict()
    state["extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    load_checkpoint(tmp_path / "extra.pth", name="vqgan_disc", strict=False)
    state["main.0.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(tmp_path / "shape.pth", name="vqgan_disc", strict=False)


def test_wrong_model_for_the_keys(tmp_path):
    torch.save({"params": build_model("vqgan_disc").state_dict()}, tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="does not fit CodeFormer: missing"):
        load_checkpoint(tmp_path / "d.pth", name="codeformer")


@pytest.mark.parametrize(
    "content,match",
    [
        (b"hello, not a checkpoint", "neither a PyTorch"),
        (b"PK\x03\x04broken zip", "not a readable PyTorch checkpoint"),
        (b"", "neither a PyTorch"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path, content, match):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"params": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_a_dict_without_weights(tmp_path):
    torch.save({"iter": 3, "optimizer": {"lr": 1.0}}, tmp_path / "state.pth")
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        load_checkpoint(tmp_path / "state.pth")


def test_missing_file():
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_checkpoint("/nonexistent/ckpt.pth")


@pytest.mark.parametrize("first", [b"\x80", b"PK"])
def test_safetensors_whose_header_length_looks_like_a_torch_file_keeps_its_metadata(tmp_path, first):
    # the 8-byte header length of a safetensors file can start with the bytes that mark torch's pickle or zip formats
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"cfbench.note": ""})
    start = int.from_bytes(path.read_bytes()[:8], "little")
    target = int.from_bytes(first.ljust(2, b"\x00")[:2], "little")  # a header length with those first bytes
    for pad in range(max(target - start - 8, 0), target - start + 9):  # the header is padded to 8 bytes
        save_file({"w": torch.zeros(2)}, str(path), metadata={"cfbench.note": "x" * pad})
        if path.read_bytes()[: len(first)] == first:
            break
    assert path.read_bytes()[: len(first)] == first
    state, meta = load_state_dict_file(path)
    assert torch.equal(state["w"], torch.zeros(2)) and meta["cfbench.note"].startswith("x")
