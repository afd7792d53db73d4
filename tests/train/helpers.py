"""Tiny train configs for the tests (64x64 CodeFormer of tests/conftest.py, batch 1, demo faces)."""

from __future__ import annotations

from pathlib import Path

import yaml

from cfbench.train.config import _merge, config_from_dict

TINY_YAML = Path(__file__).resolve().parents[2] / "cfbench" / "configs" / "train" / "tiny.yaml"


def tiny(stage: str, **overrides):
    raw = yaml.safe_load(TINY_YAML.read_text())
    raw = _merge(raw, {"batch": 1, "run": {"threads": 2, "log_every": 1000}})
    return config_from_dict(_merge(raw, overrides), stage)
