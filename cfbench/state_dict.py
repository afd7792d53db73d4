"""Reading a weights file and checking it against a module: the one place every loader goes through.

Reads safetensors, and PyTorch files only with `torch.load(weights_only=True)` (pickled code is refused), unwrapping
a BasicSR-style wrapper (`params_ema`, else `params`, else `params_d`, else `state_dict`) and stripping the
`module.` prefix that DataParallel adds. A key or shape mismatch raises one `CheckpointError` line in one format:
``<source> does not fit <target>: missing (N): k, ...; unexpected (N): k, ...; wrong shape (N): k (file) != (want)``.
Below models, metrics, face and training: it imports none of them.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cfbench.errors import CheckpointError

STATE_KEYS = ("params_ema", "params", "params_d", "state_dict")
DATA_PARALLEL_PREFIX = "module."
_SHOWN = 8  # keys listed per kind of mismatch before "... and N more"


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = DATA_PARALLEL_PREFIX) -> dict[str, torch.Tensor]:
    """`state` with `prefix` removed from the keys that start with it (others unchanged)."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def torch_load_checked(path: Path) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; a file that is not a readable PyTorch file, or that needs
    pickled code, raises one CheckpointError line naming it (nothing in it is run)."""
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
    return obj


def _read_torch(path: Path, wrappers: Sequence[str]) -> dict[str, torch.Tensor]:
    obj = torch_load_checked(path)
    for key in wrappers:
        if isinstance(obj, dict) and _is_state_dict(obj.get(key)):
            obj = obj[key]
            break
    if not _is_state_dict(obj):
        keys = list(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} holds no state_dict (looked for {', '.join(wrappers)}; found {keys})")
    return obj


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for non-safetensors files
        raise CheckpointError(
            f"{path} is neither a PyTorch (.pth) nor a safetensors checkpoint ({str(exc).splitlines()[0]})"
        ) from None
    return tensors, meta


def load_state_dict_file(
    path: str | os.PathLike, wrappers: Sequence[str] = STATE_KEYS
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a weights file (on the CPU, `module.` prefix stripped) and its metadata (the safetensors
    header; empty for a PyTorch file).

    A PyTorch file may hold the state_dict bare or under the first of `wrappers` that holds one. Raises
    CheckpointError with one line if the file is missing, is not a checkpoint or holds no state_dict.
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
        tensors, meta = _read_torch(path, wrappers), {}
    else:
        tensors, meta = _read_safetensors(path)
    return strip_prefix(tensors), meta


def _listed(label: str, items: list[str]) -> str:
    more = f" ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{label} ({len(items)}): {', '.join(items[:_SHOWN])}{more}"


def check_state_dict(
    target: nn.Module | Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    source: str,
    name: str | None = None,
    strict: bool = True,
) -> None:
    """Raise CheckpointError listing the missing, unexpected and mis-shaped keys of `state` for `target`.

    `target` is a module or the state_dict it expects; `name` names it in the message (default: the module's class).
    `strict=False` checks only the shapes of the keys both have.
    """
    expected = target.state_dict() if isinstance(target, nn.Module) else target
    name = name or type(target).__name__
    missing = [k for k in expected if k not in state] if strict else []
    unexpected = [k for k in state if k not in expected] if strict else []
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    parts = [
        _listed(label, items)
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
        if items
    ]
    if parts:
        raise CheckpointError(f"{source} does not fit {name}: " + "; ".join(parts))


def load_checked(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    name: str | None = None,
    strict: bool = True,
    assign: bool = False,
) -> None:
    """`check_state_dict`, then load `state` into `model`.

    `strict=False` loads the keys that `model` has (extra keys are ignored, mis-shaped ones still refused) and
    raises CheckpointError when the file shares no key with the model. `assign=True` adopts the given tensors (for
    a model built on the meta device).
    """
    check_state_dict(model, state, source, name, strict)
    if not strict:
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own}
        if not state:
            raise CheckpointError(f"{source} shares no weights with {name or type(model).__name__}")
    model.load_state_dict(state, strict=strict, assign=assign)


def load_prefixed(module: nn.Module, state: Mapping[str, torch.Tensor], prefix: str, source: str, name: str) -> None:
    """Load the keys of `state` that start with `prefix` (e.g. a torchvision backbone's `features.`) into `module`,
    strictly; other keys (e.g. its classifier) are ignored. Mismatches are listed with the file's key names."""
    got = {k: v for k, v in state.items() if k.startswith(prefix)}
    check_state_dict({prefix + k: v for k, v in module.state_dict().items()}, got, source, name)
    module.load_state_dict(strip_prefix(got, prefix))
