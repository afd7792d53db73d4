"""The resolved configuration of a sweep: every `cfbench eval` flag, with its YAML equivalent in configs/sweeps/."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cfbench.errors import BadInputError
from cfbench.yamlfile import read_yaml


@dataclass(frozen=True)
class SweepConfig:
    """What to evaluate. `w` and `severity` are spec strings (see cfbench.eval.spec); `metrics` None = every
    registered metric that fits the dataset and whose weights are present."""

    dataset: str = "demo"
    data_root: str | None = None
    w: str = "0:1:0.25"
    severity: str = "0,2"
    checkpoints: tuple[str, ...] = ("auto",)
    metrics: str | None = None
    fid_ref: str = "gt"
    fid_resize: str | None = None
    crop_border: int = 0
    lookup: str = "transformer"
    adain: bool = True
    limit: int | None = None
    seed: int = 0
    part_size: int = 16  # faces per stored part: the resume granularity (changing it needs a new run dir)
    batch_size: int = 4
    device: str = "auto"
    run_dir: str | None = None
    save_images: bool = False
    # also store the nearest-neighbour code of every encoder feature, for the LQ face and for its GT face, beside
    # the transformer's codes in codes.npz (the paper's motivation check; costs one more encode of each GT face)
    store_nn_codes: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["checkpoints"] = list(self.checkpoints)
        # opt-in outputs added after run dirs existed are left out while off, so that earlier run dirs still
        # resume and the default run dir names (result_hash) stay what they were
        for key in OPT_IN_KEYS:
            if not d[key]:
                del d[key]
        return d

    def result_hash(self) -> str:
        """A short hash of the keys that change results (the default run directory name uses it)."""
        keys = {k: v for k, v in self.to_dict().items() if k not in NON_RESULT_KEYS}
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:10]


# Keys that do not change the numbers (batch size only changes float rounding, at the 1e-6 level), so a run dir
# made with other values may be resumed.
NON_RESULT_KEYS = frozenset({"batch_size", "device", "run_dir", "save_images"})
OPT_IN_KEYS = ("store_nn_codes",)
_FIELDS = {f.name: f for f in dataclasses.fields(SweepConfig)}
_TEXT_KEYS = ("w", "severity", "metrics", "dataset", "data_root", "fid_ref", "fid_resize", "run_dir")


def sweep_config_path(name_or_path: str | os.PathLike) -> Path:
    """A YAML file path, or the name of a bundled sweep config (configs/sweeps/<name>.yaml)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise BadInputError(f"sweep config not found: {path}")
        return path
    bundled = Path(str(resources.files("cfbench").joinpath("configs", "sweeps", f"{name_or_path}.yaml")))
    if not bundled.is_file():
        names = sorted(p.stem for p in bundled.parent.glob("*.yaml"))
        raise BadInputError(f"unknown sweep config {str(name_or_path)!r}; give a .yaml file or one of {names}")
    return bundled


def load_sweep_config(source: str | os.PathLike | None = None, **overrides: Any) -> SweepConfig:
    """The bundled `default` config (or `source`: a name or a YAML file), with the non-None `overrides` (the CLI
    flags) on top."""
    path = sweep_config_path(source or "default")
    data = read_yaml(path, "sweep config") or {}
    if not isinstance(data, dict):
        raise BadInputError(f"{path} must be a YAML mapping of sweep options")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise BadInputError(f"{path}: unknown key(s) {unknown}; valid keys: {', '.join(_FIELDS)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    for key in _TEXT_KEYS:  # YAML reads `severity: 2` or `w: 0.5` as numbers
        if data.get(key) is not None and not isinstance(data[key], bool):
            data[key] = str(data[key])
    checkpoints = data.get("checkpoints") or ["auto"]
    data["checkpoints"] = tuple([checkpoints] if isinstance(checkpoints, str) else map(str, checkpoints))
    for key in ("crop_border", "limit", "seed", "batch_size", "part_size"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise BadInputError(f"{path}: {key} must be a non-negative integer, got {value!r}")
    for key in ("batch_size", "part_size"):
        if data.get(key) == 0:
            raise BadInputError(f"{path}: {key} must be at least 1")
    return SweepConfig(**data)
