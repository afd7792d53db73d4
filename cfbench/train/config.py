"""Training configs: a `Stage` (what trains, which losses with which weights and start iterations, optimizer, LR
schedule, EMA) plus the run around it (model, data, seed, checkpoints). Loaded from YAML; any error names the field.

The defaults of each stage (`default_stage`) are the numbers of the official option files of sczhou/CodeFormer
(`options/VQGAN_512_ds32_nearest_stage1.yml`, `CodeFormer_stage2.yml`, `CodeFormer_stage3.yml`): Adam betas
(0.9, 0.99), weight decay 0; batches are the total over the official 8 GPUs. A YAML file overrides fields.

- stage1 (VQGANModel): L1 1.0 + LPIPS 1.0 + hinge GAN x 0.8 x adaptive weight (clamp 1.0) from iteration 30001 +
  codebook 1.0 (beta 0.25 inside the quantizer); G and D lr 7e-5, cosine to 6e-5 over 1.6M; EMA 0.995; batch 32.
- stage2 (CodeFormerIdxModel): quantize and generator frozen; latent L2 1.0 + code CE 0.5; lr 1e-4, MultiStepLR
  [400k, 450k] x 0.5; 500k iterations; EMA 0.995; batch 32.
- stage3 (CodeFormerJointModel): quantize and generator frozen; feat 1.0 + CE 0.5 always, and on "small"
  iterations L1 1.0 + LPIPS 1.0 + hinge GAN x 0.1 x adaptive weight from 5001 (gradients at the last shift conv of
  the largest fusion block); lr 5e-5 (G and D), cosine to 2e-5 over 150k; EMA 0.997; batch 24; w schedule
  `WSchedule` (1 up to 40k, 1.3 up to 80k, large-degradation code-only up to 120k, then 1 in 15 small at 1.3).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfbench.errors import BadInputError
from cfbench.yamlfile import read_yaml

STAGE_NAMES = ("stage1", "stage2", "stage3")


@dataclass
class LossTerm:
    """A weighted loss, active from 1-based iteration `start` on (official `net_d_start_iter` semantics)."""

    weight: float = 1.0
    start: int = 0

    def active(self, it: int) -> bool:
        return self.weight != 0 and it >= self.start


@dataclass
class Scheduler:
    """`cosine`: one cosine period from lr to eta_min over `period` iterations (the official CosineAnnealingRestart
    with a single period); `multistep`: lr * gamma at each milestone; `constant`."""

    type: str = "constant"
    period: int = 0
    eta_min: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5


@dataclass
class WSchedule:
    """Stage III (official `CodeFormerJointModel`): iterations <= w1_until use the small degradation with w = w1;
    <= w2_until small with w = w2; <= large_until the large degradation (code_only, token losses only); after that
    every `small_every`-th iteration is small with w = w2, the others large."""

    w1: float = 1.0
    w2: float = 1.3
    w1_until: int = 40000
    w2_until: int = 80000
    large_until: int = 120000
    small_every: int = 15

    def mode(self, it: int) -> tuple[str, float]:
        """("small", w) or ("large", 0.0) for 1-based iteration `it`."""
        if it <= self.w1_until:
            return "small", self.w1
        if it <= self.w2_until:
            return "small", self.w2
        if it <= self.large_until:
            return "large", 0.0
        return ("small", self.w2) if it % self.small_every == 0 else ("large", 0.0)


@dataclass
class Stage:
    """One training stage. Loss names: pixel, perceptual, gan, codebook (stage I), feat, ce (stages II/III)."""

    name: str
    arch: str  # the generator's architecture: vqgan (stage I) or codeformer
    frozen: tuple[str, ...] = ()  # top-level modules with requires_grad False (official fix_modules)
    losses: dict[str, LossTerm] = field(default_factory=dict)
    perceptual: str = "lpips"  # none | lpips | vgg19
    gan: str = "hinge"  # hinge | nonsaturating
    adaptive_max: float = 1.0  # clamp of the adaptive generator-adversarial weight (0 = no adaptive weight)
    optimizer: str = "adam"
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    scheduler: Scheduler = field(default_factory=Scheduler)
    ema_decay: float = 0.995
    iters: int = 1000
    batch: int = 4  # images per optimizer step (official: per-GPU batch x 8 GPUs)
    w_schedule: WSchedule | None = None
    lq: bool = False  # train on synthesized LQ inputs (stages II/III)
    # stage I: every N iterations, the codes no latent chose in those N iterations restart at random encoder
    # outputs of the iteration's batch (against codebook collapse in short runs; 0 = never, as official)
    codebook_restart: int = 0

    @property
    def uses_disc(self) -> bool:
        return "gan" in self.losses and self.losses["gan"].weight != 0

    def losses_used(self) -> dict[str, dict[str, Any]]:
        out = {k: dataclasses.asdict(v) for k, v in self.losses.items() if v.weight != 0}
        if "perceptual" in out:
            out["perceptual"]["kind"] = self.perceptual
        if "gan" in out:
            out["gan"].update(kind=self.gan, adaptive_max=self.adaptive_max)
        return out


@dataclass
class ModelSpec:
    """A registered variant (`cfbench/configs/models/`) with field overrides."""

    variant: str = "vqgan"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSpec:
    folder: str = "cfbench/data/demo/gt"
    hflip: bool = True
    preset: str = "codeformer-train"  # stage II and stage III "large"
    preset_small: str = "codeformer-train-small"  # stage III "small"
    crop: int | None = None  # stage I only: random crop x crop patches of the faces (the VQGAN is convolutional)
    exclude: tuple[str, ...] = ()  # file names of the folder not to train on (held-out faces)


@dataclass
class RunSpec:
    seed: int = 0
    accum: int = 1  # micro-batches per optimizer step (the batch is split into `accum` equal parts)
    amp: str = "auto"  # auto (bf16 on CUDA when supported, off on CPU) | bf16 | off
    device: str = "cpu"
    threads: int = 2
    workers: int = 0  # DataLoader worker processes building the batches (0: in the training process)
    ckpt_every: int = 1000
    log_every: int = 10


@dataclass
class TrainConfig:
    stage: Stage
    model: ModelSpec
    disc: ModelSpec = field(default_factory=lambda: ModelSpec("vqgan_disc"))
    init: str | None = None  # generator weights to start from (stage II: the stage-I VQGAN; III: stage II)
    init_d: str | None = None  # discriminator weights to start from
    vqgan: str | None = None  # fixed VQGAN for the HQ code targets (default: the generator's initial weights)
    data: DataSpec = field(default_factory=DataSpec)
    run: RunSpec = field(default_factory=RunSpec)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _convert(tp: Any, value: Any, where: str) -> Any:
    """`value` checked and converted to the annotation `tp`; BadInputError names `where` otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            return _convert(arg, value, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise BadInputError(f"train config field '{where}' must be a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise BadInputError(f"train config field '{where}' must be a mapping, got {value!r}")
        _, vt = typing.get_args(tp)
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise BadInputError(f"train config field '{where}' must be a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    raise BadInputError(f"train config field '{where}' must be {getattr(tp, '__name__', tp)}, got {value!r}")


def _build(cls: type, values: dict[str, Any], where: str, base: Any = None) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise BadInputError(f"train config: unknown field '{prefix}{unknown[0]}'; valid fields: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    if base is not None:  # keep nested dataclass objects of the base, not their dict form
        kwargs = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        current = kwargs.get(key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            kwargs[key] = _build(type(current), value, path, base=current)
        elif key == "losses" and isinstance(value, dict) and isinstance(current, dict):
            merged = dict(current)
            for name, term in value.items():
                if term is None:
                    merged.pop(name, None)
                elif isinstance(term, int | float) and not isinstance(term, bool):
                    merged[name] = LossTerm(float(term), current[name].start if name in current else 0)
                else:
                    merged[name] = _build(LossTerm, term, f"{path}.{name}", base=current.get(name))
            kwargs[key] = merged
        else:
            kwargs[key] = _convert(hints[key], value, path)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise BadInputError(f"train config '{where or cls.__name__}': {exc}") from None


def default_stage(name: str) -> Stage:
    """The official settings of `name` (stage1 | stage2 | stage3)."""
    if name == "stage1":
        return Stage(
            name="stage1",
            arch="vqgan",
            losses={
                "pixel": LossTerm(1.0),
                "perceptual": LossTerm(1.0),
                "gan": LossTerm(0.8, start=30001),
                "codebook": LossTerm(1.0),
            },
            lr_g=7e-5,
            lr_d=7e-5,
            scheduler=Scheduler("cosine", period=1_600_000, eta_min=6e-5),
            ema_decay=0.995,
            iters=1_600_000,
            batch=32,
        )
    if name == "stage2":
        return Stage(
            name="stage2",
            arch="codeformer",
            frozen=("quantize", "generator"),
            losses={"feat": LossTerm(1.0), "ce": LossTerm(0.5)},
            perceptual="none",
            lr_g=1e-4,
            lr_d=1e-4,
            scheduler=Scheduler("multistep", milestones=(400_000, 450_000), gamma=0.5),
            ema_decay=0.995,
            iters=500_000,
            batch=32,
            lq=True,
        )
    if name == "stage3":
        return Stage(
            name="stage3",
            arch="codeformer",
            frozen=("quantize", "generator"),
            losses={
                "pixel": LossTerm(1.0),
                "perceptual": LossTerm(1.0),
                "gan": LossTerm(0.1, start=5001),
                "feat": LossTerm(1.0),
                "ce": LossTerm(0.5),
            },
            lr_g=5e-5,
            lr_d=5e-5,
            scheduler=Scheduler("cosine", period=150_000, eta_min=2e-5),
            ema_decay=0.997,
            iters=150_000,
            batch=24,
            w_schedule=WSchedule(),
            lq=True,
        )
    raise BadInputError(f"unknown stage {name!r}; use one of {STAGE_NAMES}")


def default_config(name: str) -> TrainConfig:
    """The official settings of stage `name` with the default run around them."""
    stage = default_stage(name)
    return TrainConfig(stage=stage, model=ModelSpec("vqgan" if stage.arch == "vqgan" else "codeformer"))


def validate(cfg: TrainConfig) -> TrainConfig:
    from cfbench.train.losses import GAN_KINDS, PERCEPTUAL_KINDS

    st, run = cfg.stage, cfg.run
    checks = [
        (st.perceptual in PERCEPTUAL_KINDS, "perceptual", f"one of {PERCEPTUAL_KINDS}"),
        (st.gan in GAN_KINDS, "gan", f"one of {GAN_KINDS}"),
        (st.scheduler.type in ("constant", "cosine", "multistep"), "scheduler.type", "constant|cosine|multistep"),
        (st.optimizer in ("adam", "adamw"), "optimizer", "adam|adamw"),
        (st.iters >= 1, "iters", ">= 1"),
        (st.batch >= 1, "batch", ">= 1"),
        (0 <= st.ema_decay < 1, "ema_decay", "in [0, 1)"),
        (run.accum >= 1 and st.batch % run.accum == 0, "run.accum", f">= 1 and a divisor of batch {st.batch}"),
        (run.amp in ("auto", "bf16", "off"), "run.amp", "auto|bf16|off"),
        (run.ckpt_every >= 1, "run.ckpt_every", ">= 1"),
        (run.workers >= 0, "run.workers", ">= 0"),
        (st.codebook_restart >= 0, "codebook_restart", ">= 0"),
        (
            st.codebook_restart == 0 or st.arch == "vqgan",
            "codebook_restart",
            "0 outside stage I (the codebook is frozen)",
        ),
        (cfg.data.crop is None or not st.lq, "data.crop", "unset in the LQ stages (the transformer sees whole faces)"),
        (cfg.data.crop is None or cfg.data.crop >= 1, "data.crop", ">= 1"),
        (set(st.losses) <= {"pixel", "perceptual", "gan", "codebook", "feat", "ce"}, "losses", "known loss names"),
    ]
    for ok, name, want in checks:
        if not ok:
            section, _, field_name = name.partition(".")
            if section in ("run", "data"):
                value = getattr(getattr(cfg, section), field_name)
            else:
                value = getattr(st, section)
            raise BadInputError(f"train config field '{name}' must be {want}, got {value!r}")
    if "perceptual" in st.losses and st.losses["perceptual"].weight and st.perceptual == "none":
        raise BadInputError("train config field 'perceptual' is none but losses.perceptual has a weight")
    return cfg


def load_config(path: str | os.PathLike, stage: str | None = None) -> TrainConfig:
    """Read a train YAML: overrides of a stage's official defaults (`Stage` fields at the top level) and of the run
    (`model`, `disc`, `init`, `init_d`, `vqgan`, `data`, `run`). `stage: stage1|stage2|stage3` names the stage (it
    must agree with `stage` when both are given). Optional `stage1:` / `stage2:` / `stage3:` sections hold
    per-stage overrides, so one file can configure all three stages (configs/train/tiny.yaml)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"train config not found: {path}")
    raw = read_yaml(path, "train config") or {}
    if not isinstance(raw, dict):
        raise BadInputError(f"{path}: a train config is a mapping")
    return config_from_dict(raw, stage)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def config_from_dict(raw: dict[str, Any], stage: str | None = None) -> TrainConfig:
    raw = dict(raw)
    name = raw.pop("stage", None)
    if stage is not None:
        if name is not None and name != stage:
            raise BadInputError(f"train config field 'stage' is {name!r}, but {stage!r} was asked for")
        name = stage
    sections = {s: raw.pop(s) for s in STAGE_NAMES if s in raw}
    for s, section in sections.items():
        if not isinstance(section, dict):
            raise BadInputError(f"train config field '{s}' must be a mapping")
    raw = _merge(raw, sections.get(name) or {})
    if name not in STAGE_NAMES:
        raise BadInputError(f"train config field 'stage' must be one of {STAGE_NAMES}, got {name!r}")
    base = default_config(name)
    stage_keys = {f.name for f in dataclasses.fields(Stage)} - {"name", "arch"}
    stage_values = {k: raw.pop(k) for k in list(raw) if k in stage_keys}
    stage = _build(Stage, stage_values, "", base=base.stage)
    cfg = _build(TrainConfig, raw, "", base=base)
    cfg.stage = stage
    return validate(cfg)
