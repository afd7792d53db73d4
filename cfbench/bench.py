"""Model benchmarks: time per face for encode and decode, FLOPs per part, and the cost of a w sweep.

Timings are wall-clock medians after warm-up; on CUDA they synchronise before reading the clock. Ratios (split
sweep vs full forwards) are measured in the same run, so they hold on any machine; absolute times do not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from cfbench.models import build_model
from cfbench.models.codeformer import CodeFormer
from cfbench.precision import autocast

SWEEP_WS = tuple(round(0.1 * i, 1) for i in range(11))


@dataclass
class Timing:
    """One measured configuration; times in milliseconds per face."""

    variant: str
    device: str
    precision: str
    batch: int
    encode_ms: float
    decode_ms: float
    faces_per_s: float
    peak_mem_mb: float | None


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_s(fn: Callable[[], object], device: str, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def flops_by_part(model: CodeFormer, w: float = 0.5) -> dict[str, float]:
    """GFLOP (multiply-add = 2) of one 512 face: encoder, transformer, generator (w=0) and fusion blocks (w>0)."""
    x = torch.zeros(1, 3, model.config.img_size, model.config.img_size)

    def count(fn: Callable[[], object]) -> float:
        # the fused CPU attention kernels have no FLOP formula; the math backend is counted op by op
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / 1e9

    with torch.inference_mode():
        encoder = count(lambda: model.encoder(x))
        encode = count(lambda: model.encode(x))
        state = model.encode(x)
        decode0 = count(lambda: model.decode(state, 0.0))
        decode_w = count(lambda: model.decode(state, w))
    return {
        "encoder": encoder,
        "transformer": encode - encoder,
        "generator": decode0,
        "fusion": decode_w - decode0,
        "full_forward_w>0": encode + decode_w,
    }


def time_encode_decode(
    variant: str,
    device: str,
    batch: int,
    precision: str = "fp32",
    compile_model: bool = False,
    repeats: int = 3,
) -> Timing:
    """Median encode and decode (w=0.5, AdaIN) time per face at a batch size."""
    model = build_model(variant).to(device).eval()
    if compile_model:
        model.encode = torch.compile(model.encode)
        model.decode = torch.compile(model.decode)
    s = model.config.img_size
    x = torch.rand(batch, 3, s, s, device=device) * 2 - 1
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode(), autocast(device, precision):
        enc = _median_s(lambda: model.encode(x), device, repeats)
        state = model.encode(x)
        dec = _median_s(lambda: model.decode(state, 0.5, adain=True), device, repeats)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    label = precision + ("+compile" if compile_model else "")
    return Timing(variant, device, label, batch, 1e3 * enc / batch, 1e3 * dec / batch, batch / (enc + dec), peak)


def sweep_ratio(variant: str, device: str, batch: int = 1, repeats: int = 1) -> dict[str, float]:
    """Time and FLOP ratio of an 11-value w sweep: 11 full forwards vs one encode + 11 decodes."""
    model = build_model(variant).to(device).eval()
    s = model.config.img_size
    x = torch.rand(batch, 3, s, s, device=device) * 2 - 1

    def full() -> None:
        for w in SWEEP_WS:
            model(x, w=w, adain=True)

    def split() -> None:
        state = model.encode(x)
        for w in SWEEP_WS:
            model.decode(state, w, adain=True)

    with torch.inference_mode():
        t_full = _median_s(full, device, repeats, warmup=0)
        t_split = _median_s(split, device, repeats, warmup=0)
    flops = flops_by_part(build_model(variant).eval())
    enc = flops["encoder"] + flops["transformer"]
    dec_w = flops["generator"] + flops["fusion"]
    f_full = len(SWEEP_WS) * enc + flops["generator"] + (len(SWEEP_WS) - 1) * dec_w
    f_split = enc + flops["generator"] + (len(SWEEP_WS) - 1) * dec_w
    return {
        "full_s": t_full,
        "split_s": t_split,
        "time_ratio": t_full / t_split,
        "flop_ratio": f_full / f_split,
    }


def timing_rows(timings: list[Timing]) -> list[dict]:
    return [asdict(t) for t in timings]
