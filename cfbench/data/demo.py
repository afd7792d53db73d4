"""The real low-quality faces bundled inside the package (licences in demo/SOURCES.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def demo_lq_paths() -> list[Path]:
    """Paths of the bundled aligned 512x512 real LQ faces, sorted by name."""
    folder = Path(str(resources.files("cfbench.data").joinpath("demo")))
    return sorted(folder.glob("*.png"))
