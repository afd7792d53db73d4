"""pyiqa's metric table, read without importing pyiqa, and the facts cfbench adds for the metrics the field reports.

`pyiqa_configs()` executes pyiqa's `default_model_configs.py` (plain dictionaries) from the installed package, so
listing and checking `pyiqa:NAME` metrics costs milliseconds instead of the ~6 s of `import pyiqa`. The facts of a
pyiqa metric come from its entry: `metric_mode` (FR / NR), `lower_better` (default: higher is better) and
`score_range` ("0, 1"; a bound written "~x" is only pyiqa's estimate and is not enforced).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "pyiqa:"
INSTALL_HINT = "pip install 'cfbench[pyiqa]' (or `pip install --no-deps pyiqa einops timm`)"

# pyiqa metrics that score a folder, not an image: cfbench's own distribution metrics (fid, kid) replace them
PER_FOLDER = ("fid", "sfid", "fid_dinov2", "inception_score")

# pyiqa metrics that build and run with no file to download (checked with pyiqa 0.1.16, downloads refused)
WEIGHT_FREE = (
    "psnr", "psnry", "ssim", "ssimc", "ms_ssim", "cw_ssim", "fsim", "vif", "gmsd", "nlpd", "mad", "vsi", "piqe",
    "entropy",
)  # fmt: skip

# the value of pyiqa's full-reference metrics on identical images, where it has one (checked with pyiqa 0.1.16)
IDENTITY = {"fsim": 1.0, "vif": 1.0, "gmsd": 0.0, "ms_ssim": 1.0, "nlpd": 0.0, "ssim": 1.0, "dists": 0.0}


@dataclass(frozen=True)
class Curated:
    """What cfbench adds to a pyiqa metric the face-restoration papers report: a short name, its figure label and
    role, the registered weights files it loads (checked before a run), and the paper."""

    label: str
    role: str
    weights: tuple[str, ...]
    paper: str


# pyiqa name -> facts; the short names (`musiq`) are aliases of `pyiqa:<name>`
CURATED: dict[str, Curated] = {
    "musiq": Curated("MUSIQ", "quality", ("pyiqa_musiq_koniq",), "Ke et al., ICCV 2021 (KonIQ-10k head)"),
    "maniqa": Curated("MANIQA", "quality", ("pyiqa_maniqa_koniq",), "Yang et al., CVPRW 2022 (KonIQ-10k)"),
    "clipiqa": Curated("CLIP-IQA", "quality", ("clip_rn50",), "Wang et al., AAAI 2023"),
    "topiq_nr-face": Curated(
        "TOPIQ-face", "quality", ("pyiqa_topiq_nr_face",), "Chen et al., TIP 2024 (CGFIQA-40k faces)"
    ),
    "dists": Curated("DISTS", "quality", ("pyiqa_dists", "vgg16"), "Ding et al., TPAMI 2020"),
}


def pyiqa_root() -> Path:
    """The installed pyiqa package folder, found without importing it; ImportError when pyiqa is absent."""
    spec = importlib.util.find_spec("pyiqa")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"pyiqa metrics need the pyiqa package: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def pyiqa_configs() -> dict[str, dict[str, Any]]:
    """pyiqa's DEFAULT_CONFIGS: metric name -> {metric_opts, metric_mode, lower_better?, score_range?}."""
    namespace = runpy.run_path(str(pyiqa_root() / "default_model_configs.py"))
    return dict(namespace["DEFAULT_CONFIGS"])


def pyiqa_version() -> str:
    return importlib.metadata.version("pyiqa")


def parse_range(text: str | None) -> tuple[float, float]:
    """pyiqa's `score_range` ("0, 1", "~0, ~100", "0, ~") -> (low, high); estimated or open bounds are infinite."""
    if not text:
        return -math.inf, math.inf
    low, _, high = (part.strip() for part in text.partition(","))

    def bound(token: str, open_value: float) -> float:
        try:
            return float(token)
        except ValueError:  # "~100", "~", "": only an estimate
            return open_value

    return bound(low, -math.inf), bound(high, math.inf)


def pyiqa_names() -> list[str]:
    """Every pyiqa metric usable as `pyiqa:NAME` (the per-folder ones excluded), in pyiqa's order."""
    return [n for n in pyiqa_configs() if n not in PER_FOLDER]
