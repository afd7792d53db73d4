"""Degradations: turn high-quality faces into realistic low-quality inputs, reproducibly.

A standalone package (it imports nothing from cfbench). Images are float32 RGB NCHW torch tensors in [0, 1] at
every public function. Ops are registered by name in `OPS`; a `Pipeline` chains them with ranges and
probabilities; ``params = pipeline.sample(seed)`` draws a JSON record and ``pipeline.apply(img, params)``
applies it (backend ``cpu``: OpenCV/libjpeg, bit-exact; ``torch``: batched on any device). Presets
(`list_presets`, `load_preset`) include ``celeba-test``, ``codeformer-train`` and the ``severity-scale``
levels 0..4. Per-image seeds come from `derive_seed`. An unusable input raises `DegradationsError` (a ValueError).
See docs/degradations.md.
"""

from degradations.apply import BACKENDS, apply_op, apply_params, check_images, quantize_8bit, record_to_json
from degradations.errors import DegradationsError, MissingFileError
from degradations.kernels import gaussian_kernel, generalized_gaussian_kernel, plateau_kernel, sigma_matrix
from degradations.ops import OPS, Op
from degradations.pipeline import Pipeline
from degradations.pipeline_config import OpConfig, PipelineConfig
from degradations.presets import PRESETS, list_presets, load_preset, preset_config
from degradations.registry import Registry, UnknownNameError
from degradations.seeds import derive_seed
from degradations.severity import MAX_LEVEL, Severity, check_severity, parse_severity, severity_label

__all__ = [
    "BACKENDS",
    "DegradationsError",
    "MAX_LEVEL",
    "MissingFileError",
    "OPS",
    "PRESETS",
    "Op",
    "OpConfig",
    "Pipeline",
    "PipelineConfig",
    "Registry",
    "Severity",
    "UnknownNameError",
    "apply_op",
    "apply_params",
    "check_images",
    "check_severity",
    "derive_seed",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "list_presets",
    "load_preset",
    "parse_severity",
    "plateau_kernel",
    "preset_config",
    "quantize_8bit",
    "record_to_json",
    "severity_label",
    "sigma_matrix",
]
