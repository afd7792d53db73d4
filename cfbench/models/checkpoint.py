"""Model checkpoints: rebuild the model a weights file belongs to, and write ours.

Reading and checking the file is `cfbench.state_dict` (official BasicSR `.pth` layouts, safetensors, strict key and
shape errors); this module adds what is CodeFormer-specific: the model config in our safetensors metadata, so a
bare file path is enough to rebuild the model, and telling the architecture of an official file from its keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from cfbench import __version__
from cfbench.atomic import atomic_path
from cfbench.errors import CheckpointError
from cfbench.models.config import config_from_dict, config_to_dict
from cfbench.models.registry import MODEL_VARIANTS, instantiate
from cfbench.state_dict import load_checked, load_state_dict_file

META_CONFIG = "cfbench.config"


# keys only CodeFormer has (its transformer, code prediction head and feature embedding): any one of them marks a
# CodeFormer file, so one that lacks some of them is reported as CodeFormer with those keys missing
CODEFORMER_ONLY = ("position_emb", "feat_emb.", "ft_layers.", "idx_pred_layer.")


def infer_arch(state: dict[str, torch.Tensor]) -> str:
    """Which architecture a state_dict belongs to, from its keys."""
    if any(k.startswith(CODEFORMER_ONLY) for k in state):
        return "codeformer"
    if "quantize.embedding.weight" in state:
        return "vqgan"
    if "main.0.weight" in state:
        return "vqgan_disc"
    raise CheckpointError(
        f"cannot tell the architecture of a state_dict with keys {list(state)[:5]}...; pass name= (e.g. 'codeformer')"
    )


def load_checkpoint(
    path: str | os.PathLike,
    name: str | None = None,
    strict: bool = True,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build the model a checkpoint belongs to, load its weights, and return it in eval mode.

    The config comes from the file's metadata (checkpoints cfbench wrote), else from the registered variant `name`,
    else from the official variant of the architecture inferred from the keys. `strict=False` loads what fits and
    still refuses mis-shaped tensors and a file that shares no key with the model.
    """
    state, meta = load_state_dict_file(path)
    if META_CONFIG in meta:
        spec = json.loads(meta[META_CONFIG])
        config = config_from_dict(spec.pop("arch"), spec)
    else:
        config = MODEL_VARIANTS.get(name or infer_arch(state)).config()
    model = instantiate(config)
    load_checked(model, state, str(path), strict=strict)
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
