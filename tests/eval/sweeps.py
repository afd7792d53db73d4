"""The small sweep the eval tests run: the bundled model on a folder of a few real faces, two w, severity 2."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cfbench.eval.config import SweepConfig, load_sweep_config

GT_FACES = Path(__file__).resolve().parents[1] / "data" / "metrics" / "gt"


def face_folder(tmp_path: Path, n: int) -> Path:
    """A folder dataset (`<tmp_path>/faces/gt`) with the first `n` of the real GT test faces."""
    root = tmp_path / "faces"
    (root / "gt").mkdir(parents=True)
    for p in sorted(GT_FACES.glob("*.png"))[:n]:
        shutil.copy(p, root / "gt" / p.name)
    return root


def sweep_config(root: Any, run_dir: Any, **kw: Any) -> SweepConfig:
    """The sweep of `folder:root` into `run_dir` (w 0 and 1, psnr and ssim, on the CPU); `kw` overrides."""
    base = dict(
        dataset=f"folder:{root}",
        w="0,1",
        severity="2",
        checkpoints=("codeformer_tiny",),
        metrics="psnr,ssim",
        run_dir=str(run_dir),
        device="cpu",
        batch_size=2,
    )
    return load_sweep_config(None, **{**base, **kw})
