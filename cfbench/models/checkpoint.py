"""Reading and writing model weights.

Reads the official BasicSR `.pth` files (`params_ema`, else `params`, else `params_d`, else a bare state_dict) with
`torch.load(weights_only=True)`, and safetensors. Writes safetensors whose metadata holds the model config, so a
bare file path is enough to rebuild the model. Loading is strict by default; a mismatch lists the keys.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cfbench import __version__
from cfbench.atomic import atomic_path
from cfbench.errors import CheckpointError
from cfbench.models.config import config_from_dict, config_to_dict
from cfbench.models.registry import MODEL_VARIANTS, instantiate

STATE_KEYS = ("params_ema", "params", "params_d", "state_dict")
META_CONFIG = "cfbench.config"
_SHOWN = 8  # keys listed per kind of mismatch before "... and N more"


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_state_dict_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a checkpoint file and its metadata (safetensors header; empty for `.pth`).

    Raises CheckpointError with one line if the file is missing or is not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    with path.open("rb") as f:
        head = f.read(16)
    # a safetensors file starts with its header's length (8 bytes, little-endian) and the JSON header; that length
    # can begin with b"PK" or 0x80, so the torch formats are recognised only when the file is not safetensors
    safetensors_head = head[8:9] == b"{"
    if not safetensors_head and (head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"):  # torch zip, legacy pickle
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            # weights_only refuses pickled code: a file that needs it is not a plain checkpoint
            why = next(
                (ln.strip() for ln in str(exc).splitlines() if "WeightsUnpickler error" in ln),
                "pickled objects",
            )
            raise CheckpointError(
                f"{path} is not a readable PyTorch checkpoint: torch.load(weights_only=True) refused it ({why})"
            ) from None
        except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
        for key in STATE_KEYS:
            if isinstance(obj, dict) and _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        if not _is_state_dict(obj):
            keys = list(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"{path} holds no state_dict (looked for {', '.join(STATE_KEYS)}; found {keys})")
        return {k.removeprefix("module."): v for k, v in obj.items()}, {}
    try:
        from safetensors import safe_open

        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as exc:  # safetensors raises its own error types for non-safetensors files
        raise CheckpointError(
            f"{path} is neither a PyTorch (.pth) nor a safetensors checkpoint ({str(exc).splitlines()[0]})"
        ) from None
    return tensors, meta


def infer_arch(state: dict[str, torch.Tensor]) -> str:
    """Which architecture a state_dict belongs to, from its keys."""
    if "position_emb" in state:
        return "codeformer"
    if "quantize.embedding.weight" in state:
        return "vqgan"
    if "main.0.weight" in state:
        return "vqgan_disc"
    raise CheckpointError(
        f"cannot tell the architecture of a state_dict with keys {list(state)[:5]}...; pass name= (e.g. 'codeformer')"
    )


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped keys of `state` for `model`."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} ({len(items)}): {', '.join(items[:_SHOWN])}"
            + (f" ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
            for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
            if items
        ]
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))


def load_checkpoint(
    path: str | os.PathLike,
    name: str | None = None,
    strict: bool = True,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build the model a checkpoint belongs to, load its weights, and return it in eval mode.

    The config comes from the file's metadata (checkpoints cfbench wrote), else from the registered variant `name`,
    else from the official variant of the architecture inferred from the keys. `strict=False` loads what fits and
    still refuses mis-shaped tensors.
    """
    state, meta = load_state_dict_file(path)
    if META_CONFIG in meta:
        spec = json.loads(meta[META_CONFIG])
        config = config_from_dict(spec.pop("arch"), spec)
    else:
        config = MODEL_VARIANTS.get(name or infer_arch(state)).config()
    model = instantiate(config)
    if strict:
        check_state_dict(model, state, str(path))
    else:
        own = model.state_dict()
        bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        if bad:
            check_state_dict(model, {k: state[k] for k in bad}, str(path))
        state = {k: v for k, v in state.items() if k in own}
    model.load_state_dict(state, strict=strict)
    return model.to(device).eval()


def save_checkpoint(model: nn.Module, path: str | os.PathLike, extra: dict[str, str] | None = None) -> Path:
    """Write the model's weights as safetensors with its config in the metadata, atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        META_CONFIG: json.dumps(config_to_dict(model.config)),
        "cfbench.version": __version__,
        **(extra or {}),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return path
