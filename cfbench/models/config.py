"""Typed model configs. Their defaults are the official sizes; other variants are YAML files in configs/models/."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from cfbench.errors import BadInputError


@dataclass(frozen=True)
class VQGANConfig:
    """VQAutoEncoder sizes (official: 512, nf 64, ch_mult 1,2,2,4,4,8, 2 res blocks, attention at 16, 1024 x 256)."""

    arch: ClassVar[str] = "vqgan"
    img_size: int = 512
    nf: int = 64
    ch_mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8)
    res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    codebook_size: int = 1024
    emb_dim: int = 256
    beta: float = 0.25

    @property
    def latent_size(self) -> int:
        """Side of the square token grid (16 for the official 512 model)."""
        return self.img_size // 2 ** (len(self.ch_mult) - 1)

    def channels_at(self, resolution: int) -> int:
        """Feature channels at a spatial resolution (the official `channels` table)."""
        level = (self.img_size // resolution).bit_length() - 1
        return self.nf * self.ch_mult[level]

    def validate(self) -> None:
        levels = len(self.ch_mult)
        if self.img_size % 2 ** (levels - 1):
            raise BadInputError(f"img_size {self.img_size} is not divisible by 2**{levels - 1} (len(ch_mult) - 1)")
        widths = [self.nf * m for m in self.ch_mult] + [self.emb_dim]
        if any(w % 32 for w in widths[:-1]):
            raise BadInputError(f"every nf * ch_mult must be a multiple of 32 (GroupNorm(32)); got {widths[:-1]}")


@dataclass(frozen=True)
class CodeFormerConfig(VQGANConfig):
    """CodeFormer = the VQGAN plus a 9-layer code-lookup transformer and fusion blocks at `connect_list`."""

    arch: ClassVar[str] = "codeformer"
    dim_embd: int = 512
    n_head: int = 8
    n_layers: int = 9
    ff_mult: int = 2
    connect_list: tuple[str, ...] = ("32", "64", "128", "256")
    fix_modules: tuple[str, ...] = ("quantize", "generator")

    def validate(self) -> None:
        super().validate()
        if self.dim_embd % self.n_head:
            raise BadInputError(f"dim_embd {self.dim_embd} is not divisible by n_head {self.n_head}")
        for size in self.connect_list:
            r = int(size)
            if r <= self.latent_size or r > self.img_size or self.img_size % r or r & (r - 1):
                raise BadInputError(
                    f"connect_list entry {size!r} must be a power-of-two resolution above the latent size "
                    f"{self.latent_size} and at most img_size {self.img_size}"
                )


@dataclass(frozen=True)
class DiscriminatorConfig:
    """PatchGAN discriminator of the VQGAN stage (official: nc 3, ndf 64, 4 layers)."""

    arch: ClassVar[str] = "vqgan_disc"
    nc: int = 3
    ndf: int = 64
    n_layers: int = 4

    def validate(self) -> None:
        if self.n_layers < 1:
            raise BadInputError(f"n_layers must be >= 1, got {self.n_layers}")


ModelConfig = VQGANConfig | CodeFormerConfig | DiscriminatorConfig
CONFIG_CLASSES: dict[str, type] = {c.arch: c for c in (VQGANConfig, CodeFormerConfig, DiscriminatorConfig)}


def config_from_dict(arch: str, params: dict[str, Any]) -> Any:
    """Build the config of `arch` from plain values (YAML/JSON); unknown fields are an error naming them."""
    if arch not in CONFIG_CLASSES:
        raise BadInputError(f"unknown model arch {arch!r}; known: {', '.join(sorted(CONFIG_CLASSES))}")
    cls = CONFIG_CLASSES[arch]
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise BadInputError(f"unknown {arch} config field(s) {unknown}; valid fields: {sorted(names)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    if "connect_list" in values:
        values["connect_list"] = tuple(str(s) for s in values["connect_list"])
    config = cls(**values)
    config.validate()
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-able values of a config, with its `arch`."""
    return {
        "arch": config.arch,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()},
    }


__all__ = [
    "CONFIG_CLASSES",
    "CodeFormerConfig",
    "DiscriminatorConfig",
    "ModelConfig",
    "VQGANConfig",
    "config_from_dict",
    "config_to_dict",
]
