"""Registered model variants: one YAML file each in configs/models/, built by `build_model(name, **overrides)`."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from torch import nn

from cfbench.models.codeformer import CodeFormer
from cfbench.models.config import config_from_dict
from cfbench.models.discriminator import VQGANDiscriminator
from cfbench.models.vqgan import VQAutoEncoder
from cfbench.registry import Registry

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "codeformer": CodeFormer,
    "vqgan": VQAutoEncoder,
    "vqgan_disc": VQGANDiscriminator,
}


@dataclass(frozen=True)
class ModelVariant:
    """A named model config: the architecture and the fields that differ from its official defaults."""

    name: str
    arch: str
    description: str
    params: dict[str, Any]

    def config(self, **overrides: Any) -> Any:
        return config_from_dict(self.arch, {**self.params, **overrides})


MODEL_VARIANTS: Registry[ModelVariant] = Registry("model variant")


def _load_variants() -> None:
    for path in sorted(resources.files("cfbench.configs").joinpath("models").iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".yaml"):
            continue
        spec = yaml.safe_load(path.read_text())
        name = path.name.removesuffix(".yaml")
        MODEL_VARIANTS.add(
            name, ModelVariant(name, spec["arch"], spec.get("description", ""), spec.get("params") or {})
        )


def instantiate(config: Any) -> nn.Module:
    """A randomly initialised model for a config object."""
    return ARCHITECTURES[config.arch](config)


def build_model(name: str, **overrides: Any) -> nn.Module:
    """A randomly initialised model of a registered variant (`codeformer`, `vqgan`, `vqgan_disc`, `*_mini`).

    `overrides` replace config fields, e.g. `build_model("codeformer", n_layers=4)`.
    """
    return instantiate(MODEL_VARIANTS.get(name).config(**overrides))


_load_variants()
