"""Regenerate the committed run dir fixture of the report tests (a real, tiny `cfbench eval` run).

Run from the repository root: ``python tests/data/run_small/make.py``. It restores the first 2 faces of
tests/data/faces (128x128) with the bundled codeformer_tiny checkpoint at w 0, 0.5, 1 and severities 0 and 2 on
the CPU, scores them, stores the nearest-neighbour codes beside the transformer's (--store-nn-codes), saves the
restored faces (512x512 PNG, ~140 kB each), and leaves the run dir in tests/data/run_small/run/. To keep the
fixture under 1 MB, the parts/ folder (reports read only the finalized files), the saved images of severity 0
and the saved LQ and GT faces are deleted afterwards, so the reports also meet a run whose images are missing
for some groups and columns; the remaining PNGs are re-saved with PIL's optimize=True (lossless: the same
pixels, about half the bytes), and the manifest's paths are made relative to the checkout.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cfbench.eval.config import load_sweep_config
from cfbench.eval.runner import FidelityWeightSweep

HERE = Path(__file__).resolve().parent
RUN = HERE / "run"


def main() -> None:
    torch.set_num_threads(2)
    if RUN.exists():
        shutil.rmtree(RUN)
    cfg = load_sweep_config(
        None,
        dataset="folder:tests/data/faces",
        w="0,0.5,1",
        severity="0,2",
        checkpoints=("codeformer_tiny",),
        metrics="psnr,ssim,niqe,identity_cos[dlib],lmd[dlib]",
        run_dir=str(RUN),
        device="cpu",
        limit=2,
        save_images=True,
        store_nn_codes=True,
    )
    FidelityWeightSweep(cfg).run()
    shutil.rmtree(RUN / "parts", ignore_errors=True)
    shutil.rmtree(RUN / "images" / "codeformer_tiny" / "severity_0", ignore_errors=True)
    shutil.rmtree(RUN / "images" / "codeformer_tiny" / "severity_2" / "lq", ignore_errors=True)
    shutil.rmtree(RUN / "images" / "gt", ignore_errors=True)
    shrink_pngs(RUN / "images")
    relative_paths(RUN / "manifest.json")


def relative_paths(manifest: Path) -> None:
    """The manifest's paths relative to the checkout, and `<site-packages>/...` for installed packages' files: no
    path of the machine that made the fixture is committed."""
    text = manifest.read_text()
    for prefix, short in ((HERE.parents[2], ""), (Path(sysconfig.get_paths()["purelib"]), "<site-packages>/")):
        text = text.replace(json.dumps(f"{prefix}/")[1:-1], short)
    manifest.write_text(text)


def shrink_pngs(folder: Path) -> None:
    for path in sorted(folder.rglob("*.png")):
        with Image.open(path) as im:
            im.load()
            pixels = np.asarray(im)
            im.save(path, format="PNG", optimize=True)
        with Image.open(path) as im:
            assert np.array_equal(np.asarray(im), pixels), path


if __name__ == "__main__":
    main()
