"""``celeba-test``: the standard synthetic CelebA-Test set (3000 GT/LQ pairs at 512x512).

The files are not redistributable with cfbench; download the set that the GFPGAN authors released and put it in
``$CFBENCH_DATA/celeba-test/`` (``$CFBENCH_DATA`` defaults to ``$CFBENCH_HOME/data``) or pass ``--data-root``:

    celeba-test/celeba_512_validation/*.png      GT (the released folder names)
    celeba-test/celeba_512_validation_lq/*.png   LQ, the same file names

``gt/`` + ``lq/`` is accepted too. Pairs are matched by file stem. With ``--severity`` levels the LQ is
synthesized from the GT instead (`cfbench.data.synth`), so a GT folder alone is enough for that.
"""

from __future__ import annotations

import os
from pathlib import Path

from cfbench.data.base import SourceDataset
from cfbench.data.folder import pair_folders
from cfbench.errors import BadInputError
from cfbench.weights import cfbench_home

NAME = "celeba-test"
EXPECTED_IMAGES = 3000
LAYOUTS = (("celeba_512_validation", "celeba_512_validation_lq"), ("gt", "lq"))
LICENCE = (
    "CelebA images: non-commercial research use only (CelebA / CelebA-HQ agreements); LQ synthesized and released "
    "by the GFPGAN authors"
)


def data_dir() -> Path:
    """``$CFBENCH_DATA``, default ``$CFBENCH_HOME/data``."""
    return Path(os.environ.get("CFBENCH_DATA") or cfbench_home() / "data").expanduser()


def default_root(data_root: str | Path | None = None) -> Path:
    """Where celeba-test is looked for: ``--data-root`` (or its ``celeba-test/``), else $CFBENCH_DATA/celeba-test."""
    if data_root is None:
        return data_dir() / NAME
    root = Path(data_root).expanduser()
    if not _find_layout(root) and _find_layout(root / NAME):
        return root / NAME
    return root


def _find_layout(root: Path) -> tuple[Path | None, Path | None] | None:
    for gt_name, lq_name in LAYOUTS:
        gt, lq = root / gt_name, root / lq_name
        if gt.is_dir() or lq.is_dir():
            return (gt if gt.is_dir() else None, lq if lq.is_dir() else None)
    return None


def celeba_test(data_root: str | Path | None = None) -> SourceDataset:
    """The celeba-test dataset, or a one-line `BadInputError` that says where to put the files."""
    root = default_root(data_root)
    found = _find_layout(root)
    if found is None:
        raise BadInputError(
            f"celeba-test not found in {root}: put the CelebA-Test set released by GFPGAN there as "
            f"{root}/celeba_512_validation/ (GT PNGs) and {root}/celeba_512_validation_lq/ (LQ, same file names), "
            f"or as gt/ and lq/; set $CFBENCH_DATA to the folder holding celeba-test/, or pass --data-root DIR"
        )
    gt_dir, lq_dir = found
    items = pair_folders(gt_dir, lq_dir)
    layout = " + ".join(f"{p.name}/" for p in (gt_dir, lq_dir) if p is not None)
    return SourceDataset(
        NAME,
        items,
        seed_name=NAME,
        root=str(root.resolve()),
        licence=LICENCE,
        description=f"CelebA-Test, the standard synthetic test set ({EXPECTED_IMAGES} pairs; found {layout})",
    )
