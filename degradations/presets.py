"""Named presets: the YAML files shipped in ``degradations/presets/``, registered by file name."""

from __future__ import annotations

from pathlib import Path

from degradations.errors import DegradationsError
from degradations.pipeline import Pipeline
from degradations.pipeline_config import PipelineConfig
from degradations.registry import Registry
from degradations.severity import Severity

PRESET_DIR = Path(__file__).resolve().with_name("presets")
PRESETS: Registry[Path] = Registry("degradation preset")
for _path in sorted(PRESET_DIR.glob("*.yaml")):
    PRESETS.add(_path.stem, _path)


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return PRESETS.names()


def preset_config(name: str) -> PipelineConfig:
    """The config of a preset by name, or of a YAML file when ``name`` ends in .yaml/.yml."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PRESETS.get(name)
    config = PipelineConfig.from_yaml(path)
    if path.parent == PRESET_DIR and config.name != path.stem:
        raise DegradationsError(f"{path}: 'name' is {config.name!r} but the file is {path.name}; make them agree")
    return config


def load_preset(name: str, severity: Severity | None = None) -> Pipeline:
    """The `Pipeline` of a preset at a severity (None: the preset's own ranges; leveled presets need one)."""
    return Pipeline(preset_config(name), severity)
