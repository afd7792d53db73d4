"""The op record and the op registry.

An op has config fields (ranges, choices), a sampler that turns the resolved config into concrete per-image
params (plain JSON types) with an explicit generator, and two implementations of the same function of (image,
params):

- ``cpu``: one image, HWC float32 RGB numpy in [0, 1] -> HWC float32 RGB (OpenCV/numpy, bit-exact
  reproducible);
- ``torch``: a batch, NCHW float32 RGB tensor on any device, all the same size, with one params dict per
  image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from degradations.errors import DegradationsError
from degradations.params import Size, Spec
from degradations.registry import Registry

Params = dict[str, Any]
CpuFn = Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]
TorchFn = Callable[[torch.Tensor, Sequence[Mapping[str, Any]]], torch.Tensor]
SampleFn = Callable[[np.random.Generator, Mapping[str, Any]], Params]
SizeFn = Callable[[Mapping[str, Any], tuple[int, int]], tuple[int, int]]


@dataclass(frozen=True)
class Op:
    """A named degradation op; see the module docstring for the calling conventions."""

    name: str
    summary: str
    fields: Mapping[str, Spec]
    sample: SampleFn
    cpu: CpuFn
    torch: TorchFn
    # Output (height, width) for an input (height, width); None when the op keeps the size.
    output_size: SizeFn | None = None
    params: tuple[str, ...] = field(default=())  # keys the sampler produces and the implementations read

    def resolve(self, config: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Check a config (field -> value) and fill in defaults; ValueError names the bad field."""
        unknown = sorted(set(config) - set(self.fields))
        if unknown:
            allowed = ", ".join(self.fields) or "none"
            raise DegradationsError(f"{where}: unknown field {unknown[0]!r} for op {self.name!r} (fields: {allowed})")
        return {
            name: spec.resolve(config.get(name, spec.default), f"{where}.{name}") for name, spec in self.fields.items()
        }

    def size_fields(self) -> list[str]:
        return [name for name, spec in self.fields.items() if isinstance(spec, Size)]


OPS: Registry[Op] = Registry("degradation op")
