"""A minimal, CPU-sized version of the three CodeFormer training stages, used to train the bundled demo checkpoint.

Simplified from the official option files (`../shared/reference/codeformer.md` section 3; sczhou/CodeFormer
`basicsr/models/{vqgan,codeformer_idx,codeformer_joint}_model.py`). What is kept and what is not:

- Stage I (VQGAN): L1 + the quantizer's codebook/commitment loss (beta inside `VectorQuantizer`). No perceptual loss
  (no VGG/LPIPS weights offline), no GAN, no EMA. Trained on random crops (the VQGAN is fully convolutional).
- Stage II (code prediction): quantize + generator frozen (the model's `fix_modules`); encoder + transformer trained
  with 0.5 * cross-entropy on the HQ code indices of the frozen stage-I VQGAN + 1.0 * MSE(lq_feat, sg[codebook
  feature of those indices]), on 512 LQ faces. As official, the CodeFormer starts from the stage-I weights.
- Stage III (fusion): only `fuse_convs_dict` is trained, with L1 at w = 1 (official: w in {1, 1.3}, plus LPIPS, GAN,
  and the stage-II losses on the encoder/transformer). The last conv of each fusion block's scale and shift
  branches is zero-initialised (official: PyTorch default init), so before training w > 0 equals w = 0.
- Adam betas (0.9, 0.99) as official; learning rates far higher and a cosine decay to 0.1 x lr over each stage,
  because the runs are a few hundred steps instead of 10^5-10^6; batch sizes of 1-4 instead of 24-32.

Images are float32 RGB NCHW in [0, 1] at every function here; the models take x * 2 - 1.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfbench.atomic import atomic_path
from cfbench.models import CodeFormer, VQAutoEncoder, build_model
from cfbench.restoration import restore_batch
from cfbench.train.data import Degrader, FaceSet, load_faces, sample_batch, split_holdout, step_rng, to_tensor

STAGES = (1, 2, 3)
STAGE_NAMES = {1: "I-vqgan", 2: "II-codes", 3: "III-fusion"}
LOG_FIELDS = (
    "stage",
    "step",
    "elapsed_s",
    "lr",
    "loss",
    "l1",
    "codebook",
    "perplexity",
    "restarted",
    "feat",
    "ce",
    "token_acc",
)
CARD_KEY = "cfbench.model_card"
ADAM_BETAS = (0.9, 0.99)


@dataclass
class TrainConfig:
    """Everything that changes the result of `train_minimal`. Budgets are wall-clock caps per stage (seconds)."""

    faces: str = "/work/shared/faces/aligned_hq"
    variant: str = "codeformer_tiny"
    vqgan_variant: str = "vqgan_tiny"
    seed: int = 0
    holdout_every: int = 9
    s1_steps: int = 700
    s1_batch: int = 16
    s1_crop: int = 64
    s1_lr: float = 4e-4
    s1_restart_every: int = 10
    s2_steps: int = 180
    s2_batch: int = 1
    s2_lr: float = 4e-4
    s2_preset: str = "codeformer-train"
    s3_steps: int = 70
    s3_batch: int = 1
    s3_lr: float = 4e-4
    s3_preset: str = "codeformer-train-small"
    s3_w: float = 1.0
    stage_budget_s: tuple[float, float, float] = (1380.0, 900.0, 380.0)
    total_budget_s: float = 2700.0
    ckpt_every_s: float = 180.0
    threads: int = 1

    def steps(self, stage: int) -> int:
        return (self.s1_steps, self.s2_steps, self.s3_steps)[stage - 1]

    def lr(self, stage: int) -> float:
        return (self.s1_lr, self.s2_lr, self.s3_lr)[stage - 1]


def cosine_lr(base: float, step: int, total: int, floor: float = 0.1) -> float:
    """base at step 0, decaying along a half cosine to floor * base at step `total`."""
    t = min(step / max(total, 1), 1.0)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


# --- losses ------------------------------------------------------------------------------------------------------


def stage1_losses(vq: VQAutoEncoder, hq: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], Stage1Aux]:
    """Stage I on an HQ batch (N, 3, h, w) in [0, 1]: L1(recon, x) + codebook loss, in the [-1, 1] scale.

    Runs `VQAutoEncoder.forward` step by step to keep the latents for `restart_dead_codes`.
    """
    x = hq * 2 - 1
    z, _ = vq.encoder(x)
    z_q, codebook, stats = vq.quantize(z)
    l1 = (vq.generator(z_q) - x).abs().mean()
    loss = l1 + codebook
    logs = {"loss": loss.item(), "l1": l1.item(), "codebook": codebook.item(), "perplexity": stats.perplexity.item()}
    return loss, logs, Stage1Aux(z.detach(), stats.indices.flatten())


@dataclass
class Stage1Aux:
    """Latents (N, emb_dim, h, w) and chosen code indices (N*h*w,) of a stage-I step."""

    z: torch.Tensor
    indices: torch.Tensor


@torch.no_grad()
def restart_dead_codes(vq: VQAutoEncoder, z: torch.Tensor, usage: torch.Tensor, rng: np.random.Generator) -> int:
    """Replace every code with usage 0 by a random latent of z (N, emb_dim, h, w) plus 1% noise; returns how many.

    Not in the official code (which relies on 1.6M iterations); without it the codebook collapses in a short run.
    """
    dead = (usage == 0).nonzero().flatten()
    if dead.numel() == 0:
        return 0
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    pick = torch.from_numpy(rng.integers(flat.shape[0], size=dead.numel()))
    noise = torch.from_numpy(rng.standard_normal((dead.numel(), flat.shape[1])).astype(np.float32))
    new = flat[pick]
    vq.quantize.embedding.weight[dead] = new + 0.01 * new.std() * noise
    return int(dead.numel())


@torch.no_grad()
def code_targets(vq: VQAutoEncoder, hq: torch.Tensor) -> torch.Tensor:
    """Nearest-code indices (N, s*s) of HQ faces (N, 3, S, S) in [0, 1] under a (frozen) stage-I VQGAN."""
    z, _ = vq.encoder(hq * 2 - 1)
    return vq.quantize.nearest(z)


def stage2_losses(net: CodeFormer, lq: torch.Tensor, idx_gt: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage II: 1.0 * MSE(lq_feat, sg[codebook[idx_gt]]) + 0.5 * CE(logits, idx_gt).

    lq: (N, 3, S, S) in [0, 1]; idx_gt: (N, s*s) int64 code indices of the matching HQ faces.
    """
    logits, lq_feat = net(lq * 2 - 1, code_only=True)
    s = net.config.latent_size
    target = net.quantize.lookup(idx_gt, (s, s)).detach()
    feat = F.mse_loss(lq_feat, target)
    ce = F.cross_entropy(logits.permute(0, 2, 1), idx_gt)
    loss = feat + 0.5 * ce
    acc = (logits.argmax(dim=2) == idx_gt).float().mean()
    return loss, {"loss": loss.item(), "feat": feat.item(), "ce": ce.item(), "token_acc": acc.item()}


def stage3_losses(
    net: CodeFormer, lq: torch.Tensor, hq: torch.Tensor, w: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage III (fusion blocks only): L1 between the w-output (AdaIN off, as official training) and the HQ face.

    The encoder and transformer run without gradient; the gradient reaches `fuse_convs_dict` through the frozen
    generator. lq, hq: (N, 3, S, S) in [0, 1].
    """
    with torch.no_grad():
        state = net.encode(lq * 2 - 1)
    out = net.decode(state, w, adain=False)
    l1 = (out - (hq * 2 - 1)).abs().mean()
    return l1, {"loss": l1.item(), "l1": l1.item()}


# --- trainable parts ---------------------------------------------------------------------------------------------


def stage2_parameters(net: CodeFormer) -> list[nn.Parameter]:
    """Encoder, position_emb, feat_emb, ft_layers, idx_pred_layer: what stage II trains (quantize and generator
    are frozen by `fix_modules`; the fusion blocks get no gradient from the code_only path)."""
    return [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("fuse_convs_dict.")]


def stage3_parameters(net: CodeFormer) -> list[nn.Parameter]:
    """Only the fusion blocks; everything else is set to requires_grad=False."""
    for name, p in net.named_parameters():
        p.requires_grad_(name.startswith("fuse_convs_dict."))
    return list(net.fuse_convs_dict.parameters())


def zero_init_fusion(net: CodeFormer) -> None:
    """Zero the last conv of every fusion block's scale and shift branch, so dec + w*(dec*scale + shift) = dec."""
    with torch.no_grad():
        for block in net.fuse_convs_dict.values():
            for branch in (block.scale, block.shift):
                branch[-1].weight.zero_()
                branch[-1].bias.zero_()


def codeformer_from_vqgan(variant: str, vq: VQAutoEncoder, seed: int) -> CodeFormer:
    """A fresh CodeFormer whose encoder/quantize/generator are the stage-I weights (official `vqgan_path`)."""
    torch.manual_seed(seed)
    net = build_model(variant)
    missing, unexpected = net.load_state_dict(vq.state_dict(), strict=False)
    if unexpected or any(k.startswith(("encoder.", "quantize.", "generator.")) for k in missing):
        raise ValueError(f"stage-I VQGAN does not fit {variant}: unexpected {unexpected[:4]}, missing {missing[:4]}")
    zero_init_fusion(net)
    return net


def train_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step on `loss` (gradients cleared first)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


# --- the run -----------------------------------------------------------------------------------------------------


def psnr_8bit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (N,) in dB of (N, 3, H, W) images in [0, 1], both rounded to 8 bits first (RGB, whole face)."""
    qa, qb = (x.clamp(0, 1).mul(255).round() for x in (a, b))
    mse = (qa - qb).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


@torch.inference_mode()
def evaluate_vqgan(vq: VQAutoEncoder, faces: FaceSet) -> float:
    """Mean PSNR (dB, 8-bit RGB, whole 512 face) of the stage-I VQGAN reconstruction of `faces`."""
    vq = vq.eval()
    hq = to_tensor(faces.images)
    recon = torch.cat([vq(x[None] * 2 - 1)[0] for x in hq]).add(1).div(2)
    return round(psnr_8bit(recon, hq).mean().item(), 2)


@torch.inference_mode()
def evaluate_heldout(
    net: CodeFormer, faces: FaceSet, presets: Iterable[str], seed: int, ws: Iterable[float] = (0.0, 0.5, 1.0)
) -> dict[str, Any]:
    """Mean PSNR (dB, 8-bit RGB, whole face) on held-out faces, per LQ preset: the LQ input and the restorations at
    each w (transformer lookup, AdaIN on: what `cfbench restore` does). LQ seeds:
    `degradations.derive_seed(seed, "aligned_hq", name)` when available."""
    net = net.eval()
    hq = to_tensor(faces.images)
    out: dict[str, Any] = {}
    for preset in presets:
        deg = Degrader(preset)
        seeds = [_eval_seed(seed, n) for n in faces.names]
        lq = deg.with_seeds(hq, seeds)
        row = {"degrader": deg.name, "lq_psnr": round(psnr_8bit(lq, hq).mean().item(), 2)}
        for w in ws:
            res = torch.cat([restore_batch(net, x[None], w, adain=True) for x in lq])
            row[f"w{w:g}_psnr"] = round(psnr_8bit(res, hq).mean().item(), 2)
        out[preset] = row
    return out


def _eval_seed(seed: int, name: str) -> int:
    try:
        from degradations import derive_seed

        return derive_seed(seed, "aligned_hq", name)
    except ImportError:
        return int(np.random.default_rng([seed, *name.encode()]).integers(0, 2**63))


@dataclass
class RunState:
    """What a resumed run needs: the stage and step reached, weights, optimizer, stage times, and the log."""

    stage: int = 1
    step: int = 0
    elapsed: dict[int, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    steps_done: dict[int, int] = field(default_factory=lambda: {s: 0 for s in STAGES})
    log: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False


class MinimalTrainer:
    """Runs stages I, II, III in order under wall-clock caps, checkpointing to `work_dir/state.pt` every
    `ckpt_every_s` seconds and at each stage end; a new trainer on the same work_dir resumes from it."""

    def __init__(self, cfg: TrainConfig, work_dir: str | os.PathLike, echo: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.echo = echo
        all_faces = load_faces(cfg.faces)
        self.train_faces, self.heldout = split_holdout(all_faces, cfg.holdout_every)
        torch.manual_seed(cfg.seed)
        self.vq: VQAutoEncoder = build_model(cfg.vqgan_variant)
        self.net: CodeFormer | None = None
        self.opt: torch.optim.Optimizer | None = None
        self.state = RunState()
        self.targets: torch.Tensor | None = None
        self.usage = torch.zeros(self.vq.config.codebook_size, dtype=torch.long)  # stage-I code use since restart

    # state file ------------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.work_dir / "state.pt"

    def save_state(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        blob = {
            "config": json.dumps(asdict(self.cfg)),
            "run": json.dumps(asdict(self.state)),
            "vq": self.vq.state_dict(),
            "net": self.net.state_dict() if self.net is not None else {},
            "opt": self.opt.state_dict() if self.opt is not None else {},
            "usage": self.usage,
        }
        with atomic_path(self.state_path) as tmp:
            torch.save(blob, tmp)

    def load_state(self) -> bool:
        if not self.state_path.is_file():
            return False
        blob = torch.load(self.state_path, map_location="cpu", weights_only=True)
        if json.loads(blob["config"]) != json.loads(json.dumps(asdict(self.cfg))):
            raise ValueError(f"{self.state_path} was written with another config; use a fresh --work-dir")
        run = json.loads(blob["run"])
        run["elapsed"] = {int(k): v for k, v in run["elapsed"].items()}
        run["steps_done"] = {int(k): v for k, v in run["steps_done"].items()}
        self.state = RunState(**run)
        self.vq.load_state_dict(blob["vq"])
        self.usage = blob["usage"]
        if self.state.stage >= 2:
            self.net = codeformer_from_vqgan(self.cfg.variant, self.vq, self.cfg.seed + 2)
            if blob["net"]:
                self.net.load_state_dict(blob["net"])
        self._make_optimizer(self.state.stage)
        if blob["opt"]:
            self.opt.load_state_dict(blob["opt"])
        self.echo(f"resumed at stage {STAGE_NAMES[self.state.stage]} step {self.state.step}")
        return True

    # stages ----------------------------------------------------------------------------------------------------
    def _make_optimizer(self, stage: int) -> None:
        if stage == 1:
            params = list(self.vq.parameters())
        elif stage == 2:
            params = stage2_parameters(self.net)
        else:
            params = stage3_parameters(self.net)
        self.opt = torch.optim.Adam(params, lr=self.cfg.lr(stage), betas=ADAM_BETAS, weight_decay=0.0)

    def _enter_stage(self, stage: int) -> None:
        if stage == 2 and self.net is None:
            self.net = codeformer_from_vqgan(self.cfg.variant, self.vq, self.cfg.seed + 2)
        self.state.stage, self.state.step = stage, 0
        self._make_optimizer(stage)

    def _prepare(self, stage: int) -> None:
        """Per-stage precomputation that a resume must redo (not saved): stage II's HQ code targets."""
        if stage == 2:
            t0 = time.perf_counter()
            self.vq.eval()
            hq = to_tensor(self.train_faces.images)
            with torch.no_grad():
                self.targets = torch.stack(
                    [code_targets(self.vq, torch.stack([x, x.flip(-1)])) for x in hq]
                )  # (N_faces, 2 flips, s*s)
            self.state.elapsed[2] += time.perf_counter() - t0
            self.echo(f"stage II targets: {tuple(self.targets.shape)} in {time.perf_counter() - t0:.1f}s")

    def _batch(self, stage: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        if stage == 1:
            return {"hq": sample_batch(self.train_faces, rng, cfg.s1_batch, cfg.s1_crop)}
        n = cfg.s2_batch if stage == 2 else cfg.s3_batch
        idx = rng.integers(len(self.train_faces), size=n)
        flips = rng.random(n) < 0.5
        hq = to_tensor(self.train_faces.images[idx])
        hq = torch.stack([x.flip(-1) if f else x for x, f in zip(hq, flips, strict=True)])
        lq = self._degraders[stage](hq, rng)
        batch = {"hq": hq, "lq": lq}
        if stage == 2:
            batch["idx"] = self.targets[torch.from_numpy(idx), torch.from_numpy(flips.astype(np.int64))]
        return batch

    def _step(self, stage: int, batch: dict[str, torch.Tensor], rng: np.random.Generator) -> dict[str, float]:
        if stage == 1:
            self.vq.train()
            loss, logs, aux = stage1_losses(self.vq, batch["hq"])
        elif stage == 2:
            self.net.train()
            loss, logs = stage2_losses(self.net, batch["lq"], batch["idx"])
        else:
            self.net.train()
            loss, logs = stage3_losses(self.net, batch["lq"], batch["hq"], self.cfg.s3_w)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"stage {stage} step {self.state.step}: loss is {loss.item()}")
        train_step(self.opt, loss)
        if stage == 1 and self.cfg.s1_restart_every:
            self.usage += torch.bincount(aux.indices, minlength=self.usage.numel())
            if self.state.step % self.cfg.s1_restart_every == 0:
                logs["restarted"] = restart_dead_codes(self.vq, aux.z, self.usage, rng)
                self.usage.zero_()
        return logs

    def run(self, resume: bool = True) -> RunState:
        torch.set_num_threads(self.cfg.threads)
        self._degraders = {2: Degrader(self.cfg.s2_preset), 3: Degrader(self.cfg.s3_preset)}
        if not (resume and self.load_state()):
            self._enter_stage(1)
        while not self.state.finished:
            stage = self.state.stage
            self._prepare(stage)
            self._run_stage(stage)
            if stage == STAGES[-1]:
                self.state.finished = True
            else:
                self._enter_stage(stage + 1)
            self.save_state()
        return self.state

    def _run_stage(self, stage: int) -> None:
        cfg, st = self.cfg, self.state
        total, budget = cfg.steps(stage), cfg.stage_budget_s[stage - 1]
        last_ckpt = time.perf_counter()
        self.echo(f"stage {STAGE_NAMES[stage]}: steps {st.step}..{total}, budget {budget:.0f}s")
        while st.step < total:
            spent = st.elapsed[stage]
            if spent >= budget or sum(st.elapsed.values()) >= cfg.total_budget_s:
                self.echo(f"stage {STAGE_NAMES[stage]}: time cap reached after {st.step} steps ({spent:.0f}s)")
                break
            t0 = time.perf_counter()
            lr = cosine_lr(cfg.lr(stage), st.step, total)
            for group in self.opt.param_groups:
                group["lr"] = lr
            rng = step_rng(cfg.seed, stage, st.step)
            logs = self._step(stage, self._batch(stage, rng), rng)
            st.elapsed[stage] += time.perf_counter() - t0
            st.step += 1
            st.log.append(
                {
                    "stage": stage,
                    "step": st.step,
                    "elapsed_s": round(sum(st.elapsed.values()), 2),
                    "lr": lr,
                    **{k: round(v, 6) for k, v in logs.items()},
                }
            )
            if st.step % 10 == 0 or st.step == total:
                shown = " ".join(f"{k}={v:.4g}" for k, v in logs.items())
                self.echo(f"[{STAGE_NAMES[stage]} {st.step}/{total} {st.elapsed[stage]:.0f}s] {shown}")
            if time.perf_counter() - last_ckpt >= cfg.ckpt_every_s:
                self.save_state()
                last_ckpt = time.perf_counter()
        self.state.steps_done[stage] = st.step
        self.save_state()

    # outputs ---------------------------------------------------------------------------------------------------
    def write_log(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, restval="")
            writer.writeheader()
            writer.writerows(self.state.log)
        return path

    def loss_summary(self, n: int = 20) -> dict[str, dict[str, dict[str, float]]]:
        """Per stage: the mean of each logged loss over its first and last n steps."""
        out = {}
        for stage in STAGES:
            rows = [r for r in self.state.log if r["stage"] == stage]
            if not rows:
                continue
            keys = [k for k in LOG_FIELDS[4:] if k in rows[0] and k != "restarted"]
            out[STAGE_NAMES[stage]] = {
                part: {k: round(float(np.mean([r[k] for r in sel])), 4) for k in keys}
                for part, sel in (("first", rows[:n]), ("last", rows[-n:]))
            }
        return out


def half_rounded(net: nn.Module) -> nn.Module:
    """A float32 copy of `net` whose weights went through float16 (what a float16 checkpoint loads as)."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        for t in out.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    return out


def save_half(net: nn.Module, path: str | os.PathLike, extra: dict[str, str]) -> Path:
    """`save_checkpoint` of a float16 copy (halves the file; `load_checkpoint` loads it back as float32)."""
    from cfbench.models import save_checkpoint

    return save_checkpoint(copy.deepcopy(net).half(), path, extra=extra)
