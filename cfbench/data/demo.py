"""The real faces bundled inside the package (sources and licences in demo/SOURCES.md).

- ``demo``: six aligned 512x512 high-quality GT faces (``demo/gt/``), so that a fresh offline machine can run
  ``cfbench eval`` with ground-truth metrics (LQ synthesized from them).
- ``demo-lq``: four real low-quality aligned 512x512 faces (``demo/*.png``), no ground truth; also the default
  inputs of ``cfbench restore``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cfbench.data.base import SourceDataset
from cfbench.data.folder import pair_folders

DEMO_LICENCE = (
    "non-commercial research use only: CelebA-HQ (CC BY-NC 4.0, via clovaai/stargan-v2) and FFHQ (CC BY-NC-SA 4.0 "
    "compilation) images; see cfbench/data/demo/SOURCES.md"
)
DEMO_LQ_LICENCE = (
    "S-Lab License 1.0 (non-commercial use only; sczhou/CodeFormer inputs); see cfbench/data/demo/SOURCES.md"
)


def demo_dir() -> Path:
    return Path(str(resources.files("cfbench.data").joinpath("demo")))


def demo_lq_paths() -> list[Path]:
    """Paths of the bundled aligned 512x512 real LQ faces, sorted by name."""
    return sorted(demo_dir().glob("*.png"))


def demo_dataset() -> SourceDataset:
    folder = demo_dir() / "gt"
    return SourceDataset(
        "demo",
        pair_folders(folder, None),
        root=str(folder),
        licence=DEMO_LICENCE,
        description="6 real aligned GT faces bundled with cfbench (CelebA-HQ, FFHQ)",
    )


def demo_lq_dataset() -> SourceDataset:
    folder = demo_dir()
    return SourceDataset(
        "demo-lq",
        pair_folders(None, folder),
        root=str(folder),
        licence=DEMO_LQ_LICENCE,
        description="4 real low-quality aligned faces bundled with cfbench (no GT)",
    )
