"""The resolved configuration of a sweep: every `cfbench eval` flag, with its YAML equivalent.

Where the settings come from, lowest first: the protocol of the named dataset (`configs/protocols/`, see
`cfbench.eval.protocols`; with no dataset at all, the `demo` protocol) or, for datasets without one (``folder:``,
``hf:``), the neutral defaults of `SweepConfig`; then a ``--config`` YAML file; then the flags.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfbench.errors import BadInputError
from cfbench.eval.protocols import DEMO_PROTOCOL, Protocol, get_protocol, protocol_for_dataset
from cfbench.eval.spec import parse_severity_spec, parse_w_spec
from cfbench.precision import check_precision
from cfbench.yamlfile import read_yaml


@dataclass(frozen=True)
class SweepConfig:
    """What to evaluate. `w` and `severity` are spec strings (see cfbench.eval.spec); `metrics` None = every
    registered metric that fits the dataset and whose weights are present (named metrics must all run, unless
    `skip_missing`). The defaults are the neutral ones of a dataset without a protocol: all faces, the official
    checkpoint, every available metric, and (`load_sweep_config`) severity `none`, the dataset's own LQ, when it
    has LQ images."""

    dataset: str = "demo"
    data_root: str | None = None
    protocol: str | None = None  # the protocol the settings started from (recorded; no effect of its own)
    w: str = "0:1:0.25"
    severity: str = "0,2"
    checkpoints: tuple[str, ...] = ("codeformer",)
    metrics: str | None = None
    fid_ref: str = "gt"
    fid_resize: str | None = None
    crop_border: int = 0
    lookup: str = "transformer"
    adain: bool = True
    limit: int | None = None
    seed: int = 0
    part_size: int = 16  # faces per stored part: the resume granularity (changing it needs a new run dir)
    # faces per forward pass, or "auto": the largest that fits a GPU (measured once per run), 1 on the CPU
    batch_size: int | str = "auto"
    device: str = "auto"
    precision: str = "fp32"  # the model's autocast precision (fp32, bf16, fp16); metrics keep their own
    # threads that load and degrade faces ahead of the model (0: in the main thread), or "auto": AUTO_WORKERS on a
    # GPU, 0 on the CPU (where the model already uses every core)
    workers: int | str = "auto"
    run_dir: str | None = None
    save_images: bool = False
    # also store the nearest-neighbour code of every encoder feature, for the LQ face and for its GT face, beside
    # the transformer's codes in codes.npz (the paper's motivation check; costs one more encode of each GT face)
    store_nn_codes: bool = False
    skip_missing: bool = False  # run without requested metrics that cannot run (recorded as skipped)
    strict: bool = False  # a protocol set of another size than published, or with unpaired files, is an error

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["checkpoints"] = list(self.checkpoints)
        # options added after run dirs existed are left out while at their default, so that earlier run dirs
        # still resume and the default run dir names (result_hash) stay what they were
        for key in OPT_IN_KEYS:
            if d[key] == _FIELDS[key].default:
                del d[key]
        return d

    def result_hash(self) -> str:
        """A short hash of the keys that change results (the default run directory name uses it)."""
        keys = {k: v for k, v in self.to_dict().items() if k not in NON_RESULT_KEYS}
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:10]


# Keys that do not change the numbers (batch size only changes float rounding, at the 1e-6 level), so a run dir
# made with other values may be resumed.
# The worker count changes neither the faces (each face's degradation is seeded by its id) nor their order.
NON_RESULT_KEYS = frozenset(
    {"batch_size", "device", "run_dir", "save_images", "protocol", "skip_missing", "strict", "workers"}
)
OPT_IN_KEYS = ("store_nn_codes", "protocol", "skip_missing", "strict", "precision", "workers")
AUTO = "auto"
AUTO_LEAST = {"batch_size": 1, "workers": 0}  # the options that take a count or "auto", and their least count
_FIELDS = {f.name: f for f in dataclasses.fields(SweepConfig)}
_LIST_KEYS = ("w", "severity", "metrics")  # text keys that a YAML list may give
_FLAG_NAMES = {"checkpoints": "--checkpoint"}


def read_sweep_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The options of a sweep YAML file (SweepConfig keys), checked for unknown keys."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(
            f"sweep config not found: {path}; give a YAML file of sweep options (a protocol is chosen with "
            "--protocol NAME or --dataset NAME, see `cfbench protocols list`)"
        )
    data = read_yaml(path, "sweep config") or {}
    if not isinstance(data, dict):
        raise BadInputError(f"{path} must be a YAML mapping of sweep options")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise BadInputError(f"{path}: unknown key(s) {unknown}; valid keys: {', '.join(_FIELDS)}")
    return data


def starting_protocol(options: dict[str, Any]) -> Protocol | None:
    """The protocol a sweep starts from: the one named by `protocol`, else the named dataset's, else (no dataset
    at all) the demo's; None for a dataset without a protocol (folder:, hf:, demo-lq)."""
    if options.get("protocol"):
        return get_protocol(str(options["protocol"]))
    if options.get("dataset") is None:
        return get_protocol(DEMO_PROTOCOL)
    return protocol_for_dataset(str(options["dataset"]))


def _neutral_severity(dataset: str, data_root: str | None) -> str:
    from cfbench.data import get_dataset

    return "none" if get_dataset(dataset, data_root).has_lq else SweepConfig.severity


def _text(value: Any, key: str, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # YAML reads `severity: 2` or `w: 0.5` as numbers
    if key in _LIST_KEYS and isinstance(value, (list, tuple)) and value:
        return ",".join(_text(v, key, where) for v in value)  # `w: [0, 0.5, 1]`, `metrics: [psnr, ssim]`
    raise BadInputError(f"{where} must be text, got {type(value).__name__} {value!r}")


def _checkpoints(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(c, str) and c for c in items):
        raise BadInputError(f"{where} must be a weights name or file, or a list of them; got {value!r}")
    repeated = sorted({c for c in items if list(items).count(c) > 1})
    if repeated:
        raise BadInputError(f"{where} names {repeated[0]!r} twice; give each checkpoint once")
    return tuple(items)


def _count_or_auto(value: Any, where: str, least: int) -> int | str:
    """An integer >= `least`, or "auto" (the CLI gives text)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if isinstance(text, str) and text.isdigit():
        text = int(text)
    if text == AUTO or (isinstance(text, int) and not isinstance(text, bool) and text >= least):
        return text
    kind = "a positive integer" if least else "a non-negative integer"
    raise BadInputError(f"{where} must be {kind} or '{AUTO}', got {value!r}")


def check_options(data: dict[str, Any], origin: Callable[[str], str]) -> dict[str, Any]:
    """`data` (SweepConfig keys) with every value checked against its field's type and normalised: text keys
    accept numbers and (w, severity, metrics) lists, booleans only true/false, integers >= 0 (batch and part
    sizes >= 1), checkpoints a name or a list of distinct names; w and severity must parse. A wrong value raises a
    one-line BadInputError naming its key as `origin(key)` gives it (a flag, or a file and its key)."""
    out = dict(data)
    for key, value in data.items():
        kind, where = _FIELDS[key].type, origin(key)
        if value is None and "None" in kind:
            continue
        if key in AUTO_LEAST:
            out[key] = _count_or_auto(value, where, AUTO_LEAST[key])
        elif kind.startswith("str"):
            out[key] = _text(value, key, where)
        elif kind == "bool" and not isinstance(value, bool):
            raise BadInputError(f"{where} must be true or false, got {value!r}")
        elif kind.startswith("int") and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise BadInputError(f"{where} must be a non-negative integer, got {value!r}")
        elif key == "part_size" and value == 0:
            raise BadInputError(f"{where} must be at least 1")
        elif key == "checkpoints":
            out[key] = _checkpoints(value, where)
    if "precision" in out:
        check_precision(out["precision"])
    for key, parse in (("w", parse_w_spec), ("severity", parse_severity_spec)):
        if key in out:
            parse(out[key])
    return out


def load_sweep_config(source: str | os.PathLike | None = None, **overrides: Any) -> SweepConfig:
    """The settings of a sweep: its starting protocol's (or the neutral defaults), then the YAML file `source`,
    then the non-None `overrides` (the CLI flags); see the module docstring."""
    from_file = read_sweep_yaml(source) if source else {}
    flags = {k: v for k, v in overrides.items() if v is not None}
    protocol: Protocol | None = None

    def origin(key: str) -> str:
        if key in flags:
            return _FLAG_NAMES.get(key, f"--{key.replace('_', '-')}")
        if key in from_file:
            return f"{source}: {key}"
        return f"protocol {protocol.name}: {key}" if protocol is not None else key

    given = check_options({**from_file, **flags}, origin)
    protocol = starting_protocol(given)
    data = {**(protocol.settings if protocol else {}), **given}
    if protocol is not None:
        data["protocol"] = protocol.name
    elif "severity" not in data:
        data["severity"] = _neutral_severity(str(data.get("dataset", SweepConfig.dataset)), data.get("data_root"))
    data = check_options(data, origin)  # the protocol's settings too
    data.setdefault("checkpoints", SweepConfig.checkpoints)
    return SweepConfig(**data)
