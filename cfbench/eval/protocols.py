"""Evaluation protocols: the published settings of each benchmark set, as data (`configs/protocols/<name>.yaml`).

A protocol names a registered dataset (where its files go is the dataset registry's business, `cfbench.data`), the
image count the papers report and where that number comes from, the sweep settings (LQ source as `severity`, w grid,
checkpoint, exact metric variants) and a citation. `cfbench eval --dataset NAME` starts from the protocol of NAME;
`version` hashes everything the protocol says, so a run records exactly which settings it followed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cfbench.errors import BadInputError
from cfbench.registry import Registry, UnknownNameError

DEMO_PROTOCOL = "demo"  # what `cfbench eval` runs with no dataset

# The keys of a protocol file besides `settings` (the sweep options, `cfbench.eval.config.SweepConfig` fields).
_KEYS = ("title", "citation", "expected_images", "expected_images_source", "settings")
# An optional key: {metrics: "a,b", source: "..."}, metrics that later papers report on the set beside the
# protocol's own; never run unless named with --metrics, so the protocol's required set does not change.
ALSO_REPORTED = "also_reported"


@dataclass(frozen=True)
class Protocol:
    """One protocol file. `settings` are sweep options (SweepConfig fields); `expected_images` is the published
    size of the set (`expected_images_source` says which paper gives it)."""

    name: str
    title: str
    citation: str
    expected_images: int
    expected_images_source: str
    settings: Mapping[str, Any]
    also_reported: Mapping[str, str] | None = None

    @property
    def dataset(self) -> str:
        return str(self.settings["dataset"])

    @property
    def version(self) -> str:
        """12 hex digits of the sha256 of everything the protocol says (a changed protocol is a new version)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def lq_source(self) -> str:
        severity = str(self.settings.get("severity"))
        return "the set's released LQ images" if severity == "none" else f"synthesized from GT at severity {severity}"

    @property
    def metric_names(self) -> list[str]:
        """The metrics the protocol asks for; empty when it takes every available one (the demo)."""
        text = self.settings.get("metrics")
        return [m.strip() for m in str(text).split(",") if m.strip()] if text else []

    @property
    def also_reported_names(self) -> list[str]:
        """Metrics later papers report on the set (`also_reported`), to add with --metrics; [] when none."""
        text = (self.also_reported or {}).get("metrics")
        return [m.strip() for m in str(text).split(",") if m.strip()] if text else []

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "title": self.title,
            "citation": self.citation,
            "expected_images": self.expected_images,
            "expected_images_source": self.expected_images_source,
            "settings": dict(self.settings),
        }
        return {**out, ALSO_REPORTED: dict(self.also_reported)} if self.also_reported else out


def protocols_dir() -> Path:
    return Path(str(resources.files("cfbench").joinpath("configs", "protocols")))


def parse_protocol(name: str, data: Any, source: str) -> Protocol:
    """A `Protocol` from the mapping of a protocol file; BadInputError naming `source` when a key is wrong."""
    if not isinstance(data, dict):
        raise BadInputError(f"{source} must be a YAML mapping with the keys {', '.join(_KEYS)}")
    unknown, missing = sorted(set(data) - {*_KEYS, ALSO_REPORTED}), [k for k in _KEYS if k not in data]
    if unknown or missing:
        raise BadInputError(f"{source}: unknown keys {unknown}, missing keys {missing}; a protocol has {_KEYS}")
    settings = data["settings"]
    if not isinstance(settings, dict) or not settings.get("dataset"):
        raise BadInputError(f"{source}: settings must be a mapping of sweep options that names a dataset")
    also = data.get(ALSO_REPORTED)
    if also is not None and (not isinstance(also, dict) or set(also) != {"metrics", "source"}):
        raise BadInputError(f"{source}: {ALSO_REPORTED} must be a mapping with the keys metrics and source")
    count = data["expected_images"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise BadInputError(f"{source}: expected_images must be a positive integer, got {count!r}")
    return Protocol(
        name,
        str(data["title"]),
        str(data["citation"]),
        count,
        str(data["expected_images_source"]),
        settings,
        {k: str(v) for k, v in also.items()} if also else None,
    )


def _load_all() -> Registry[Protocol]:
    registry: Registry[Protocol] = Registry("protocol")
    for path in sorted(protocols_dir().glob("*.yaml")):
        registry.add(path.stem, parse_protocol(path.stem, yaml.safe_load(path.read_text()), str(path)))
    return registry


PROTOCOLS: Registry[Protocol] = _load_all()


def get_protocol(name: str) -> Protocol:
    """The protocol `name`; an unknown name raises BadInputError with close-match suggestions."""
    try:
        return PROTOCOLS.get(name)
    except UnknownNameError as exc:
        raise BadInputError(f"{exc}; see `cfbench protocols list`") from None


def protocol_for_dataset(dataset: str) -> Protocol | None:
    """The protocol whose dataset is `dataset` (`celeba-test` -> celeba-test), None for folder:, hf: and sets
    without one."""
    return next((p for _, p in PROTOCOLS.items() if p.dataset == dataset), None)


def dataset_problems(protocol: Protocol, dataset: Any) -> list[str]:
    """How `dataset` differs from the set the protocol was published on: its image count, and the files that did
    not pair (released sets record them); empty when it is that set."""
    problems = []
    if len(dataset) != protocol.expected_images:
        problems.append(
            f"{dataset.name} has {len(dataset)} image(s), but the published {protocol.name} has "
            f"{protocol.expected_images} ({protocol.expected_images_source})"
        )
    unmatched = getattr(dataset, "unmatched", None)
    if unmatched:
        problems.append(f"{dataset.name}: files without a partner were left out ({unmatched.describe('GT', 'LQ')})")
    return problems


def overrides(protocol: Protocol | None, config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of `config` (a SweepConfig dict) that differ from where it started: the protocol's settings
    on top of `defaults` (the SweepConfig defaults); `protocol` and `run_dir` are not settings of a protocol."""
    start = {**defaults, **(protocol.settings if protocol else {})}
    return {k: v for k, v in config.items() if k not in ("protocol", "run_dir") and _norm(v) != _norm(start.get(k))}


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return None if value is None else str(value)


def protocol_line(record: Mapping[str, Any]) -> str:
    """'protocol celeba-test (v 1a2b3c4d5e6f), overrides: w=0:1:0.5' from a run's protocol record."""
    changed = ", ".join(f"{k}={_show(v)}" for k, v in record.get("overrides", {}).items())
    name = (
        f"protocol {record['name']} (v {record['version']})" if record.get("name") else "no protocol (neutral defaults)"
    )
    return f"{name}, overrides: {changed or 'none'}"


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
