"""`FidelityWeightSweep`: restore every face of a dataset at every fidelity weight w and severity, score it, store it.

Per batch of LQ faces the encoder and transformer run once; the decoder runs once for all w values together (the
encoded state repeated w times, one w per copy). Restored faces are rounded to 8 bits before scoring, because the
published protocols score saved PNG files. Per-image metrics run on the whole (faces x w) batch; FID features are
kept per (checkpoint, severity, w) group and the GT statistics come from the feature cache.

Work is stored in parts of `part_size` faces (independent of --batch-size), each written atomically, so an
interrupted run resumes at the first missing part and gives the same results as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cfbench.data import DegradedDataset, FaceSample, get_dataset
from cfbench.devices import pick_device
from cfbench.errors import BadInputError
from cfbench.eval.config import AUTO, NON_RESULT_KEYS, SweepConfig
from cfbench.eval.distributed import barrier, init_from_env, local_device
from cfbench.eval.gt_pose import GT_POSE, GtPoses
from cfbench.eval.pins import sweep_inputs, verify_inputs
from cfbench.eval.pipeline import (
    GT_BATCH,
    Ahead,
    Behind,
    bottleneck_note,
    cpu_bound,
    halve_on_oom,
    load_sample,
    loader_threads,
    probe_batch_size,
)
from cfbench.eval.protocols import Protocol, dataset_problems, get_protocol, overrides, protocol_line
from cfbench.eval.provenance import checkpoint_label, checkpoint_records, environment, metric_record
from cfbench.eval.requirements import check_requirements, checkpoint_names, metric_options
from cfbench.eval.restorer import Restorer, load_sweep_restorer
from cfbench.eval.spec import parse_severity_spec, parse_w_spec
from cfbench.eval.store import PartKey, RunLock, RunStore, check_unlocked
from cfbench.eval.store.schema import (
    DEGRADATION,
    DIRECTIONS,
    GROUPS,
    ID_COLUMNS,
    MODEL_MS,
    POSE_COLUMNS,
    RESULTS,
    SKIPPED_METRICS,
    TIMINGS,
    input_image_path,
    restored_image_path,
)
from cfbench.eval.tables import FidelityTable, build_table, write_tables
from cfbench.eval.timing import (
    CHECKPOINT,
    DECODE,
    ENCODE,
    FINALIZE,
    GT_SIDE,
    TOTAL,
    WRITE,
    Interval,
    StageTimes,
    timings_record,
)
from cfbench.imageio import write_image
from cfbench.metrics import DistributionMetric, FeatureCache, FeatureStatistics, PerImageMetric
from cfbench.metrics.cache import restore_entries, store_entries
from cfbench.metrics.folders import gt_statistics_entries
from cfbench.metrics.gt_landmarks import gt_landmark_entries
from cfbench.precision import autocast, check_precision

Progress = Callable[[str, int, int], None]  # (stage description, done, total)


@dataclass
class DeviceBatch:
    """What the device stages produced for N faces, on the CPU, w-major (row i*N + j: face j at w = ws[i]):
    `values` (per-image metric column -> (k*N,)), `features` (distribution metric column -> (k*N, D)), `codes`
    (N, tokens), `nn_sets` (the `store_nn_codes` sets, each (N, tokens)), `model_ms` (per face, all w),
    `restored` ((k*N, 3, H, W) uint8, kept for CPU-only metrics and saved images, else None)."""

    samples: list[FaceSample]
    values: dict[str, torch.Tensor]
    features: dict[str, torch.Tensor]
    codes: np.ndarray
    nn_sets: dict[str, np.ndarray]
    model_ms: float
    restored: torch.Tensor | None


@dataclass
class SweepResult:
    run_dir: Path
    table: FidelityTable
    skipped: dict[str, str] = field(default_factory=dict)
    faces_per_second: float = 0.0
    restored: int = 0
    timings: dict[str, Any] = field(default_factory=dict)  # the manifest's `timings` (cfbench.eval.timing)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] images to the 8-bit grid, as writing and reading a PNG does."""
    return images.clamp(0, 1).mul(255).round().div(255)


def default_run_dir(config: SweepConfig) -> Path:
    """`cfbench-runs/<dataset>-<hash of the result-changing options>`: the same command resumes the same run."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.dataset).strip("_")[:40]
    return Path("cfbench-runs") / f"{slug}-{config.result_hash()}"


class FidelityWeightSweep:
    """The grid w x severity x checkpoint over one dataset, run into a results store (see the module docstring)."""

    def __init__(self, config: SweepConfig, progress: Progress | None = None, log: Callable[[str], None] = print):
        self.config = config
        self.progress = progress or (lambda *_: None)
        self.log = log
        self.ws = parse_w_spec(config.w)
        self.severities = parse_severity_spec(config.severity)
        self.device = local_device(pick_device(config.device))
        self.rank, self.world = init_from_env(self.device)
        if config.lookup not in ("transformer", "nearest"):
            raise BadInputError(f"lookup must be 'transformer' or 'nearest', got {config.lookup!r}")
        if config.store_nn_codes and config.lookup != "transformer":
            raise BadInputError(
                "store_nn_codes compares the transformer's codes with the nearest-neighbour lookup; use lookup "
                "'transformer' (with 'nearest' the stored codes already are the nearest-neighbour ones)"
            )
        self.dataset = get_dataset(config.dataset, config.data_root)
        n = len(self.dataset) if config.limit is None else min(config.limit, len(self.dataset))
        if n == 0:
            raise BadInputError(f"dataset {config.dataset!r} has no images (or --limit 0)")
        self.indices = list(range(n))
        self.protocol: Protocol | None = get_protocol(config.protocol) if config.protocol else None
        self.dataset_problems = self._check_dataset()
        self.checkpoints = checkpoint_names(config.checkpoints)
        self.run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        if self.rank == 0:
            check_unlocked(self.run_dir)  # another writer: refuse before the costly setup (run() takes the lock)
        self.has_gt = self.dataset.has_gt
        if "none" in self.severities and not self.dataset.has_lq:
            raise BadInputError(f"severity 'none' uses the dataset's own LQ images, but {config.dataset!r} has none")
        if not self.has_gt and any(s != "none" for s in self.severities):
            raise BadInputError(f"{config.dataset!r} has no GT faces to degrade: use --severity none")
        preflight = check_requirements(config, self.has_gt, self.device)
        self.metrics, self.skipped = preflight.metrics, preflight.skipped
        self.poses = GtPoses()
        check_precision(config.precision)
        self.cuda = torch.device(self.device).type == "cuda"
        self.times = StageTimes(cuda=self.cuda)
        self.batch_size = 0 if config.batch_size == AUTO else int(config.batch_size)  # 0: probed by run()
        self.workers = loader_threads(config.workers, self.device)
        self.behind_columns = [m.column for m in self.metrics if cpu_bound(m.spec.backend, self.device)]
        self.extractor_keys = {
            m.column: json.dumps(key, sort_keys=True) if (key := m.metric.extractor_key()) is not None else None
            for m in self.metrics
            if isinstance(m.metric, DistributionMetric)
        }
        note = bottleneck_note(self.behind_columns, self.device)
        if note:
            log(note)

    def _check_dataset(self) -> list[str]:
        """How the dataset differs from its protocol's published set (warned; an error with `strict`), after
        refusing released LQ files of the wrong size."""
        check_sizes = getattr(self.dataset, "check_lq_sizes", None)
        if check_sizes is not None and "none" in self.severities:
            check_sizes()
        problems = dataset_problems(self.protocol, self.dataset) if self.protocol else []
        if problems and self.config.strict:
            raise BadInputError(f"{'; '.join(problems)} (--strict; leave it out to run on these faces anyway)")
        for text in problems:
            self.log(f"warning: {text}")
        return problems

    @functools.cached_property
    def protocol_record(self) -> dict[str, Any]:
        """The protocol the run followed (name, version, title, citation) and the settings that differ from it;
        for a dataset without a protocol, the settings that differ from the neutral defaults."""
        defaults = SweepConfig().to_dict()
        changed = overrides(self.protocol, self.config.to_dict(), defaults)
        if self.protocol is None:
            return {"name": None, "overrides": changed}
        p = self.protocol
        return {"name": p.name, "version": p.version, "title": p.title, "citation": p.citation, "overrides": changed}

    @property
    def directions(self) -> dict[str, bool]:
        return {m.column: m.spec.higher_is_better for m in self.metrics}

    def provenance(self) -> dict[str, Any]:
        options = metric_options(self.config)
        return {
            **environment(self.device),
            "protocol": self.protocol_record,
            "dataset": {
                **self.dataset.describe(),
                "content_hash": self.dataset.content_hash(),
                "n": len(self.indices),
                "expected_images": self.protocol.expected_images if self.protocol else None,
                "problems": self.dataset_problems,
            },
            "checkpoints": checkpoint_records(self.checkpoints),
            "metrics": {m.column: metric_record(m, options) for m in self.metrics},
            "metrics_requested": self.config.metrics,
            "skipped_metrics": self.skipped,
            "gt_pose": self.poses.note,
            "ws": list(self.ws),
            "severities": list(self.severities),
            "seed": self.config.seed,
        }

    def run(self, rehash: bool = False) -> SweepResult | None:
        """Run the sweep; returns the result on rank 0 (None on the other ranks of a distributed run). Rank 0 holds
        the run dir's lock throughout; `rehash` accepts changed inputs (`cfbench.eval.pins.verify_inputs`)."""
        if self.rank != 0:
            return self._run(rehash)
        with RunLock(self.run_dir, log=self.log):
            return self._run(rehash)

    def _run(self, rehash: bool) -> SweepResult | None:
        started = time.perf_counter()
        store = RunStore(self.run_dir, log=self.log)
        self._refuse_other_metrics(store)
        provenance = {**self.provenance(), "world_size": self.world}
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        nets = {}
        if self.batch_size == 0:  # --batch-size auto: measured with the first checkpoint, kept for its sweep
            nets[self.checkpoints[0]] = self._load_net(self.checkpoints[0])
            self.batch_size = self._probe_batch_size(nets[self.checkpoints[0]])
        # loading runs up to two parts ahead; the host stages finish up to two parts behind
        ahead, behind = Ahead(self.workers, 2 * self.config.part_size), Behind(self.workers > 0)
        try:
            if self.rank == 0:
                store.open(self.config.to_dict(), provenance, ignore_keys=NON_RESULT_KEYS)
                verify_inputs(store, sweep_inputs(self), rehash, self.log)
                with self.times(GT_SIDE):
                    gt_stats = self._gt_side(ahead)
            barrier()
            if self.rank != 0:
                store.open(self.config.to_dict(), provenance, ignore_keys=NON_RESULT_KEYS, primary=False)
                gt_stats = self._gt_side(ahead)  # rank 0 filled the caches
            restored, seconds = self._sweep(store, nets, ahead, behind)
        finally:
            ahead.close()
            behind.close()
        barrier()
        if self.rank != 0:
            return None
        with self.times(FINALIZE):
            distribution = self._distribution_rows(store, gt_stats)
        self.times.add(TOTAL, time.perf_counter() - started)
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda else None
        timings = timings_record(self.times.seconds, restored * len(self.ws), peak, self.batch_size, self.workers)
        columns = [m.column for m in self.metrics if isinstance(m.metric, PerImageMetric)]
        extra = {DIRECTIONS: self.directions, SKIPPED_METRICS: self.skipped, TIMINGS: timings}
        store.finalize(distribution, columns, manifest_extra=extra)
        table = build_table(self.run_dir / RESULTS, self.run_dir / GROUPS, self.directions)
        table.skipped += [name for name in self.skipped if name not in table.skipped]
        table.caption = protocol_line(self.protocol_record)
        write_tables(table, self.run_dir)
        rate = restored * len(self.ws) / seconds if seconds else 0.0
        return SweepResult(self.run_dir, table, self.skipped, rate, restored, timings)

    def _sweep(self, store: RunStore, nets: dict[str, Restorer], ahead: Ahead, behind: Behind) -> tuple[int, float]:
        """Every part of this rank that the store lacks: faces loaded `ahead`, restored and scored on the device,
        finished and written `behind`. Returns (faces restored, seconds)."""
        start = time.perf_counter()
        done = store.done_parts()
        size = self.config.part_size
        parts = [self.indices[i : i + size] for i in range(0, len(self.indices), size)]
        total = len(self.checkpoints) * len(self.severities) * len(self.indices)
        finished, restored = 0, 0
        for ckpt in self.checkpoints:
            net = nets.pop(ckpt, None) or self._load_net(ckpt)
            for severity in self.severities:
                data = DegradedDataset(self.dataset, severity, seed=self.config.seed)
                keys = [PartKey(net.label, severity, p) for p in range(len(parts))]
                mine = {p for p, key in enumerate(keys) if key not in done and p % self.world == self.rank}
                faces = [i for p in sorted(mine) for i in parts[p]]
                loads = ahead.map(functools.partial(load_sample, data, times=self.times), faces)
                for p, indices in enumerate(parts):
                    if p in mine:
                        batches = self._run_part(net, list(itertools.islice(loads, len(indices))))
                        behind.submit(functools.partial(self._finish_part, store, keys[p], batches))
                        restored += len(indices)
                    finished += len(indices)
                    self.progress(f"{net.label} severity {severity}", finished, total)
        behind.drain()
        return restored, time.perf_counter() - start

    def _load_net(self, checkpoint: str) -> Restorer:
        with self.times(CHECKPOINT):
            label = checkpoint_label(checkpoint)
            return load_sweep_restorer(checkpoint, label, self.device, self.config.lookup, self.config.adain)

    def _probe_batch_size(self, net: Restorer) -> int:
        """--batch-size auto (`probe_batch_size`), said in the log."""

        def encode(x: torch.Tensor) -> Any:
            with autocast(self.device, self.config.precision):
                return net.encode(x)

        def decode(state: Any, batch: int) -> torch.Tensor:
            with autocast(self.device, self.config.precision):
                return net.decode(state, [0.5], batch)

        batch = probe_batch_size(encode, decode, self.device)
        how = "the largest that fits, measured" if self.cuda else "on the CPU, where larger batches are slower per face"
        self.log(f"--batch-size auto: {batch} face(s) per forward pass ({how})")
        return batch

    def _refuse_other_metrics(self, store: RunStore) -> None:
        """A resumed run must measure the metrics its stored parts hold: the available set of a run that names no
        metrics, or one with --skip-missing, changes when weights are added or removed."""
        if not store.manifest_path.exists():
            return
        stored = sorted((store.read_manifest().get("provenance") or {}).get("metrics") or {})
        now = sorted(m.column for m in self.metrics)
        if stored != now:
            raise BadInputError(
                f"--run-dir {self.run_dir} holds a run measuring {stored}, but this run would measure {now} (weights "
                "added or removed, or --skip-missing changed); resume with the same metrics, or use another --run-dir"
            )

    def _run_part(self, net: Restorer, samples: list[FaceSample]) -> list[DeviceBatch]:
        """The device stages of one part: restore `samples` at every w and score them with the device metrics, in
        batches of at most --batch-size decoded faces (halved on CUDA out-of-memory, for the rest of the run)."""
        k = len(self.ws)
        batches: list[DeviceBatch] = []
        while (b := sum(len(batch.samples) for batch in batches)) < len(samples):

            def step(batch_size: int, b: int = b) -> DeviceBatch:
                # --batch-size bounds the faces per decode call (memory); they are spent on all w of fewer faces
                return self._device_batch(net, samples[b : b + max(1, batch_size // k)], batch_size)

            batch, self.batch_size = halve_on_oom(step, self.batch_size, self.log)
            batches.append(batch)
        return batches

    def _device_batch(self, net: Restorer, samples: list[FaceSample], batch_size: int) -> DeviceBatch:
        """Encode `samples` once and decode them at every w under the run's precision; the restored faces (8-bit,
        float32) scored by the device metrics; everything the host stages need, on the CPU."""
        n, k = len(samples), len(self.ws)
        lq = self._to_device(torch.stack([s.lq for s in samples]))
        gt = self._to_device(torch.stack([s.gt for s in samples])) if self.has_gt else None
        model = Interval(self.cuda)
        with torch.inference_mode(), autocast(self.device, self.config.precision):
            with self.times(ENCODE, device=True):
                state = net.encode(lq)
            with self.times(DECODE, device=True):
                restored = quantize(net.decode(state, self.ws, batch_size).float())
            nn_sets = net.nn_codes(state, gt) if self.config.store_nn_codes else {}
        model.stop()
        device_columns = {m.column for m in self.metrics} - set(self.behind_columns)
        values = self._score(restored, gt, k, device_columns)
        features = self._features(restored, {m.column for m in self.metrics}, timed=True)
        keep = self.behind_columns or self.config.save_images
        # everything to the host after all device work is queued: one wait for the device per batch
        return DeviceBatch(
            samples,
            {c: v.cpu() for c, v in values.items()},
            {c: f.cpu() for c, f in features.items()},
            net.codes(state).cpu().numpy(),
            {name: mat.cpu().numpy() for name, mat in nn_sets.items()},
            model.seconds() * 1000 / n,
            restored.mul(255).round().to(torch.uint8).cpu() if keep else None,
        )

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        if self.cuda:  # pinned host memory: the copy does not block this thread
            return images.pin_memory().to(self.device, non_blocking=True)
        return images.to(self.device)

    def _finish_part(self, store: RunStore, key: PartKey, batches: list[DeviceBatch]) -> None:
        """The host stages of one part: the CPU-only metrics, the rows, the saved images, the stored part."""
        rows: list[dict[str, Any]] = []
        codes: dict[str, np.ndarray] = {}
        code_sets: dict[str, dict[str, np.ndarray]] = {}
        feats: dict[float, dict[str, list[torch.Tensor]]] = {w: {} for w in self.ws}
        k = len(self.ws)
        for batch in batches:
            n = len(batch.samples)
            restored = batch.restored.float().div(255) if batch.restored is not None else None
            values = dict(batch.values)
            if self.behind_columns:
                gt = torch.stack([s.gt for s in batch.samples]) if self.has_gt else None
                values.update(self._score(restored, gt, k, set(self.behind_columns)))
            for column, f in batch.features.items():
                for i, w in enumerate(self.ws):
                    feats[w].setdefault(column, []).append(f[i * n : (i + 1) * n])
            for j, s in enumerate(batch.samples):
                codes[s.id] = batch.codes[j]
                for name, mat in batch.nn_sets.items():
                    code_sets.setdefault(name, {})[s.id] = mat[j]
                meta = json.dumps(s.meta.get("degradation"), sort_keys=True) if s.meta.get("degradation") else None
                pose = dict(zip(POSE_COLUMNS, self.poses.of(s), strict=True))
                for i, w in enumerate(self.ws):
                    ids = dict(zip(ID_COLUMNS, (key.checkpoint, key.severity, w, s.id), strict=True))
                    metrics = {c: float(v[i * n + j]) for c, v in values.items()}
                    rows.append({**ids, **metrics, DEGRADATION: meta, MODEL_MS: batch.model_ms, **pose})
            if self.config.save_images:
                with self.times(WRITE):
                    self._save_images(restored, batch.samples, key.checkpoint, key.severity)
        features = {w: {c: torch.cat(v).numpy() for c, v in per.items()} for w, per in feats.items()}
        with self.times(WRITE):
            store.write_part(key, pd.DataFrame(rows), codes, features, code_sets=code_sets)

    def _score(
        self, restored: torch.Tensor, gt: torch.Tensor | None, k: int, columns: set[str]
    ) -> dict[str, torch.Tensor]:
        """The per-image metrics of `columns` on the (k x N) restored faces against their GT faces, each (k x N,),
        on the faces' device."""
        gt_k = gt.repeat(k, 1, 1, 1) if gt is not None else None
        values = {}
        with torch.inference_mode():
            for m in self.metrics:
                if isinstance(m.metric, PerImageMetric) and m.column in columns:
                    with self.times(m.column, device=restored.is_cuda):
                        values[m.column] = m.metric(restored, gt_k)
        return values

    def _features(self, images: torch.Tensor, columns: set[str], timed: bool = False) -> dict[str, torch.Tensor]:
        """The float32 features of `images` for each distribution metric in `columns`, on the device; metrics with
        the same `extractor_key` (fid[gt] and kid) share one extraction, timed under the first one's column."""
        out: dict[str, torch.Tensor] = {}
        done: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            for m in self.metrics:
                if m.column not in columns or not isinstance(m.metric, DistributionMetric):
                    continue
                key = self.extractor_keys[m.column]
                if key is not None and key in done:
                    out[m.column] = done[key]
                    continue
                with self.times(m.column, device=True) if timed else contextlib.nullcontext():
                    out[m.column] = m.metric.features(images).float()
                if key is not None:
                    done[key] = out[m.column]
        return out

    def _save_images(self, restored: torch.Tensor, samples: Sequence[Any], label: str, severity: str) -> None:
        """The restored faces, the LQ input beside them and the GT once, where the schema puts them."""
        n = len(samples)
        for j, s in enumerate(samples):
            write_image(input_image_path(self.run_dir, "lq", label, severity, s.id), s.lq)
            gt_path = input_image_path(self.run_dir, "gt", label, severity, s.id)
            if s.gt is not None and not gt_path.exists():
                write_image(gt_path, s.gt)
            for i, w in enumerate(self.ws):
                write_image(restored_image_path(self.run_dir, label, severity, w, s.id), restored[i * n + j].cpu())

    def _gt_side(self, ahead: Ahead) -> dict[str, FeatureStatistics]:
        """Everything that depends on the GT faces alone, in one pass over them and cached by dataset content
        (`cfbench.metrics.cache` entries): the GT set's accumulator of every distribution metric that compares with
        it (its `statistics_type`: FID's sums, KID's features, in the run's face order), the GT landmarks of the face
        metrics (kept in their memos) and the GT head poses (kept in `self.poses`)."""
        cache = FeatureCache()
        dist = [m for m in self.metrics if isinstance(m.metric, DistributionMetric)]
        named = {"dataset": self.dataset.content_hash(), "n": len(self.indices)} if self.has_gt else {}
        stats: dict[str, FeatureStatistics] = {}
        entries = gt_statistics_entries(dist, lambda: named, stats) + gt_landmark_entries(self.metrics, lambda: named)
        if self.poses.backend is not None and self.has_gt:
            entries.append(self.poses.cache_entry([self.dataset.ids[i] for i in self.indices], named))
        todo = restore_entries(entries, cache)
        names = {e.name for e in todo}
        for entry in entries:
            if entry.name not in names:
                self.log(f"{entry.name}: {entry.kind} from the cache")
        if todo:
            loads, size = ahead.map(self.dataset.load, self.indices), min(self.batch_size, GT_BATCH)
            for b in range(0, len(self.indices), size):
                samples = list(itertools.islice(loads, size))
                if names - {GT_POSE}:
                    gt = torch.stack([s.gt for s in samples]).to(self.device)
                    for column, f in self._features(gt, names).items():
                        stats[column].add(f)
                    with torch.inference_mode():
                        for m in self.metrics:
                            if m.column in names and not isinstance(m.metric, DistributionMetric):
                                m.metric.fill_gt(gt)
                if GT_POSE in names:
                    for s in samples:
                        self.poses.of(s)
                self.progress("GT features and pose", b + len(samples), len(self.indices))
            store_entries(todo, cache)
        return stats

    def _distribution_rows(self, store: RunStore, gt: dict[str, FeatureStatistics]) -> list[dict[str, Any]]:
        """One row per (checkpoint, severity, w) group: each distribution metric's `value` of the group's merged
        features (with the GT set's accumulator `gt[column]` where it compares with the GT set)."""
        dist = {m.column: m.metric for m in self.metrics if isinstance(m.metric, DistributionMetric)}
        rows = []
        for group, per_metric in sorted(store.merged_features({c: m.statistics_type for c, m in dist.items()}).items()):
            row: dict[str, Any] = {"checkpoint": group.checkpoint, "severity": group.severity, "w": group.w}
            for column, stats in per_metric.items():
                row[column] = dist[column].value(stats, gt.get(column))
            rows.append(row)
        return rows
