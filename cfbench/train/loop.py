"""The training loop of one stage: AMP, EMA, gradient accumulation, seeding, atomic resumable checkpoints, logs.

Per iteration `it` (1-based, the official `current_iter`): the batch of `it` (see `dataset.py`); the generator
step over `accum` micro-batches with the discriminator frozen; the discriminator step (hinge real/fake on the
detached outputs) when the GAN term is active; the LR schedulers; the EMA. torch's global RNG is reseeded from
(seed, it) at every iteration, so a resumed run is bit-exact on CPU.

Outputs in `out/`: `ckpt/last.pt` (resumable state, `checkpointing.py`), and the weights, model card and
`log.csv` of `outputs.py`. The pieces the trainer is built from (AMP dtype, schedulers, init weights): `build.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cfbench.errors import BadInputError
from cfbench.models import build_model
from cfbench.train import checkpointing, distributed, outputs
from cfbench.train.build import amp_dtype, load_init, make_scheduler
from cfbench.train.config import TrainConfig
from cfbench.train.dataset import BatchMaker, IterationBatches, load_faces
from cfbench.train.ema import EMA
from cfbench.train.losses import build_perceptual, d_loss
from cfbench.train.stages import FixedCoder, StageLosses, apply_frozen, restart_dead_codes


def _step_seed(seed: int, it: int) -> int:
    return int(np.random.default_rng([seed, 7919, it]).integers(0, 2**62))


class Trainer:
    """Trains `cfg.stage` into `out_dir`. `train(max_steps)` runs (or resumes) and returns the summary."""

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | os.PathLike,
        echo: Callable[[str], None] = print,
        show_progress: bool = False,
    ) -> None:
        self.cfg, self.out = cfg, Path(out_dir)
        self.echo, self.show_progress = echo, show_progress
        self.stage = cfg.stage
        self.device = torch.device(cfg.run.device)
        self.group = distributed.from_env(self.device)
        if self.group.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.group.local_rank)
        shares = self.group.world * cfg.run.accum
        if cfg.stage.batch % shares:
            raise BadInputError(
                f"train config field 'batch' ({cfg.stage.batch}) must be a multiple of processes x run.accum ({shares})"
            )
        self.amp = amp_dtype(cfg.run.amp, self.device)
        self.step = 0
        self.rows: list[dict[str, Any]] = []
        self._build()

    # setup -----------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, st = self.cfg, self.stage
        torch.set_num_threads(cfg.run.threads)
        torch.manual_seed(cfg.run.seed)
        self.net = build_model(cfg.model.variant, **cfg.model.params)
        if self.net.config.arch != st.arch:
            raise BadInputError(f"train config field 'model': {st.name} trains a {st.arch}, got {self.net.config.arch}")
        if cfg.init:
            load_init(self.net, cfg.init, "init")
        self.fixed: FixedCoder | None = None
        if st.arch == "codeformer":
            source = self.net
            if cfg.vqgan:
                source = build_model(cfg.model.variant, **cfg.model.params)
                load_init(source, cfg.vqgan, "vqgan")
            self.fixed = FixedCoder(source)
        params = apply_frozen(self.net, st.frozen)
        self.net.to(self.device)
        opt_cls = torch.optim.AdamW if st.optimizer == "adamw" else torch.optim.Adam
        self.opt_g = opt_cls(params, lr=st.lr_g, betas=st.betas, weight_decay=st.weight_decay)
        self.sched_g = make_scheduler(self.opt_g, st.scheduler)
        self.ema = EMA(self.net, st.ema_decay)
        self.disc: nn.Module | None = None
        self.opt_d = self.sched_d = None
        if st.uses_disc:
            self.disc = build_model(cfg.disc.variant, **cfg.disc.params)
            if cfg.init_d:
                load_init(self.disc, cfg.init_d, "init_d")
            self.disc.to(self.device)
            self.opt_d = opt_cls(self.disc.parameters(), lr=st.lr_d, betas=st.betas, weight_decay=st.weight_decay)
            self.sched_d = make_scheduler(self.opt_d, st.scheduler)
        uses_percep = "perceptual" in st.losses and st.losses["perceptual"].weight != 0
        self.perceptual = build_perceptual(st.perceptual if uses_percep else "none")
        if self.perceptual is not None:
            self.perceptual.to(self.device)
        if self.fixed is not None:
            self.fixed.to(self.device)
        self.losses = StageLosses(st, self.net, self.disc, self.perceptual)
        size = self.net.config.img_size
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.faces, self.skipped = load_faces(cfg.data.folder, size, cfg.data.exclude)
        for w in caught:
            self.echo(f"warning: {w.message}")
        factor = 2 ** (len(self.net.config.ch_mult) - 1)
        if cfg.data.crop is not None and cfg.data.crop % factor:
            raise BadInputError(f"train config field 'data.crop' must be a multiple of {factor}, got {cfg.data.crop}")
        self.batches = BatchMaker(
            self.faces, st.name, cfg.run.seed, cfg.data.hflip, cfg.data.preset, cfg.data.preset_small, cfg.data.crop
        )
        self._codes: dict[int, torch.Tensor] = {}
        self.usage = torch.zeros(self.net.quantize.codebook_size, dtype=torch.long) if st.codebook_restart else None

    # state -----------------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / "ckpt" / checkpointing.STATE_FILE

    def state_blob(self) -> dict[str, Any]:
        blob: dict[str, Any] = {
            "params": self.net.state_dict(),
            "params_ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "step": self.step,
            "rng": checkpointing.rng_state(),
            "config": json.dumps(self.cfg.to_dict()),
            "log": json.dumps(self.rows),
        }
        if self.usage is not None:
            blob["codebook_usage"] = self.usage
        if self.disc is not None:
            blob.update(
                params_d=self.disc.state_dict(), opt_d=self.opt_d.state_dict(), sched_d=self.sched_d.state_dict()
            )
        if self.fixed is not None:
            blob["fixed"] = self.fixed.state_dict()
        return blob

    def save(self) -> Path:
        return checkpointing.save_state(self.state_path, self.state_blob())

    def resume(self) -> None:
        blob = checkpointing.load_state(self.state_path, self.cfg.to_dict())
        self.net.load_state_dict(blob["params"])
        self.ema.load_state_dict(blob["params_ema"])
        self.opt_g.load_state_dict(blob["opt_g"])
        self.sched_g.load_state_dict(blob["sched_g"])
        if self.disc is not None:
            self.disc.load_state_dict(blob["params_d"])
            self.opt_d.load_state_dict(blob["opt_d"])
            self.sched_d.load_state_dict(blob["sched_d"])
        if self.fixed is not None:
            self.fixed.load_state_dict(blob["fixed"])
        if self.usage is not None:
            self.usage = blob["codebook_usage"]
        checkpointing.set_rng_state(blob["rng"])
        self.step = int(blob["step"])
        self.rows = json.loads(blob["log"])
        self.echo(f"resumed {self.stage.name} at step {self.step}")

    # one iteration ---------------------------------------------------------------------------------------------
    def code_targets(self, hq: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """The fixed coder's code indices (N, s*s) of HQ faces (N, 3, S, S), computed one face at a time (so a
        face's codes never depend on its batch) and cached by face and flip (`key`): the coder is frozen and the HQ
        faces repeat, as the official training reads precomputed HQ codes."""
        for i, key in enumerate(keys.tolist()):
            if key not in self._codes:
                self._codes[key] = self.fixed.targets(hq[i : i + 1])[0]
        return torch.stack([self._codes[k] for k in keys.tolist()])

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def lq_mode(self, it: int) -> tuple[str, float]:
        """("small", w) or ("large", 0) of iteration `it` (stage III's schedule; "large" otherwise)."""
        return self.stage.w_schedule.mode(it) if self.stage.w_schedule is not None else ("large", 0.0)

    def make_batch(self, it: int) -> dict[str, torch.Tensor]:
        """This process's share of iteration `it`'s batch (see `BatchMaker.batch`)."""
        mode = self.lq_mode(it)[0] if self.stage.lq else None
        return self.batches.batch(it, self.stage.batch, mode, self.group.rank, self.group.world)

    def train_step(self, batch: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Run iteration `self.step + 1` on `batch` (default: `make_batch`); returns its logged values (means over
        the micro-batches and the processes)."""
        st, run = self.stage, self.cfg.run
        it = self.step + 1
        torch.manual_seed(_step_seed(run.seed, it))
        mode, w = self.lq_mode(it)
        batch = self.make_batch(it) if batch is None else batch
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.fixed is not None:
            batch["idx"] = self.code_targets(batch["hq"], batch["key"])
        batch_mode = {"mode": mode, "w": w}
        self.net.train()
        if self.disc is not None:
            self.disc.requires_grad_(False)
        sums: dict[str, float] = {}
        fakes: list[torch.Tensor] = []
        self.opt_g.zero_grad(set_to_none=True)
        n_micro = run.accum
        for micro in range(n_micro):
            part = {k: v.chunk(n_micro)[micro] for k, v in batch.items()}
            with self._autocast():
                out = self.losses({**part, **batch_mode}, it)
            if not torch.isfinite(out.loss):
                raise FloatingPointError(f"{st.name} iteration {it}: loss is {out.loss.item()}")
            (out.loss / n_micro).backward()
            sums["loss"] = sums.get("loss", 0.0) + out.loss.item() / n_micro
            for k, v in out.logs.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / n_micro
            if out.fake is not None:
                fakes.append(out.fake.detach())
            if self.usage is not None:
                self.usage += torch.bincount(out.codes.cpu(), minlength=self.usage.numel())
        distributed.average_gradients(self.net.parameters(), self.group)
        self.opt_g.step()
        if self.usage is not None and it % st.codebook_restart == 0:
            # rank 0 restarts the codes no process used and sends its codebook to the others
            dead = float(restart_dead_codes(self.net.quantize, distributed.sum_(self.usage, self.group), out.latents))
            distributed.broadcast_(self.net.quantize.embedding.weight.data, self.group)
            sums["restarted"] = dead
            self.usage.zero_()
        if fakes:
            self.disc.requires_grad_(True)
            self.opt_d.zero_grad(set_to_none=True)
            real_parts = batch["hq"].chunk(n_micro)
            for real, fake in zip(real_parts, fakes, strict=True):
                with self._autocast():
                    l_real, l_fake = d_loss(st.gan, self.disc(real), self.disc(fake))
                (l_real / n_micro).backward()  # real and fake backpropagated separately, as official
                (l_fake / n_micro).backward()
                sums["d_real"] = sums.get("d_real", 0.0) + l_real.item() / n_micro
                sums["d_fake"] = sums.get("d_fake", 0.0) + l_fake.item() / n_micro
            distributed.average_gradients(self.disc.parameters(), self.group)
            self.opt_d.step()
        with warnings.catch_warnings():  # before the GAN start the D scheduler steps without its optimizer, as official
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
            self.sched_g.step()
            if self.sched_d is not None:
                self.sched_d.step()
        self.ema.update(self.net)
        self.step = it
        return distributed.mean_values(sums, self.group)

    # the run ---------------------------------------------------------------------------------------------------
    def _progress(self):
        if not self.show_progress:
            return contextlib.nullcontext(None)
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[rate]} {task.fields[losses]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )

    def loader(self, first: int, last: int) -> torch.utils.data.DataLoader:
        """The batches of iterations first..last, built by `run.workers` worker processes (0: in this process)."""
        batches = IterationBatches(self.make_batch, first, last)
        return batches.loader(self.cfg.run.workers, self.cfg.run.seed)

    def train(self, max_steps: int | None = None, resume: bool = False) -> dict[str, Any]:
        """Train up to `max_steps` iterations in total (default: the stage's `iters`), checkpointing every
        `run.ckpt_every` iterations and at the end; then export the weights and the model card. Under torchrun
        every process trains and only rank 0 writes (the others return {"rank": r, "steps": n})."""
        if resume:
            self.resume()
        main = self.group.main
        total = min(self.stage.iters, max_steps) if max_steps is not None else self.stage.iters
        tb = outputs.open_tensorboard(self.out) if main else None
        t0, start = time.perf_counter(), self.step
        with self._progress() if main else contextlib.nullcontext(None) as progress:
            task = (
                progress.add_task(self.stage.name, total=total, completed=self.step, rate="", losses="")
                if progress
                else None
            )
            for batch in self.loader(self.step + 1, total):
                logs = self.train_step(batch)
                row = {
                    "step": self.step,
                    "lr": self.opt_g.param_groups[0]["lr"],
                    **{k: round(v, 6) for k, v in logs.items()},
                }
                self.rows.append(row)
                if not main:
                    continue
                if tb is not None:
                    for k, v in logs.items():
                        tb.add_scalar(f"{self.stage.name}/{k}", v, self.step)
                rate = (self.step - start) / max(time.perf_counter() - t0, 1e-9)
                if progress is not None:
                    shown = " ".join(f"{k}={logs[k]:.3g}" for k in ("loss", "pixel", "ce") if k in logs)
                    progress.update(task, completed=self.step, rate=f"{rate:.2f} it/s", losses=shown)
                elif self.step % self.cfg.run.log_every == 0 or self.step == total:
                    self.echo(f"[{self.stage.name} {self.step}/{total} {rate:.2f} it/s] loss={logs['loss']:.4g}")
                if self.step % self.cfg.run.ckpt_every == 0 or self.step == total:
                    self.save()
                    self.write_log()
        seconds = time.perf_counter() - t0
        distributed.barrier(self.group)
        if not main:
            return {"rank": self.group.rank, "steps": self.step}
        if tb is not None:
            tb.close()
        self.save()
        self.write_log()
        return self.export(seconds, (self.step - start) / max(seconds, 1e-9))

    # outputs ---------------------------------------------------------------------------------------------------
    def write_log(self) -> Path:
        return outputs.write_log(self.out / "log.csv", self.rows)

    def export(self, seconds: float, rate: float) -> dict[str, Any]:
        return outputs.export(
            self.out,
            self.cfg,
            step=self.step,
            generator=self.ema.module,
            disc=self.disc,
            rows=self.rows,
            images=len(self.faces),
            skipped=self.skipped,
            degraders=[d.name for d in self.batches._degraders.values()],
            perceptual=self.perceptual is not None,
            device=self.device,
            amp=self.amp,
            seconds=seconds,
            rate=rate,
        )
