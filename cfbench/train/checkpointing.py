"""Resumable training state: one `torch.save` file written atomically (temp file + rename).

Layout (BasicSR-like, so `cfbench.state_dict.load_state_dict_file` reads the generator from it): `params` (generator),
`params_ema` (its EMA: what inference loads), `params_d` (discriminator), `fixed` (the frozen target coder),
`opt_g`/`opt_d`/`sched_g`/`sched_d`, `step`, `rng` (torch CPU/CUDA and Python `random` states), `config` (JSON),
`log` (the logged rows so far, JSON).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import torch

from cfbench.atomic import atomic_path
from cfbench.errors import BadInputError, CheckpointError
from cfbench.state_dict import torch_load_checked

STATE_FILE = "last.pt"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": json.dumps(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | os.PathLike, blob: dict[str, Any]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def load_state(path: str | os.PathLike, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a state file; with `config`, refuse one written for another stage or model."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"no training state to resume at {path}")
    try:
        blob = torch_load_checked(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; it cannot be resumed: use a fresh --out, or leave out --resume") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("config"), str):
        raise CheckpointError(f"{path} is not a cfbench training state (no 'config'); use a fresh --out")
    if config is not None:
        saved = json.loads(blob["config"])
        for key in ("stage", "model"):
            if key == "stage":
                same = saved[key]["name"] == config[key]["name"]
            else:
                same = saved[key] == config[key]
            if not same:
                raise BadInputError(f"{path} was written for another '{key}'; use a fresh --out or no --resume")
    return blob
