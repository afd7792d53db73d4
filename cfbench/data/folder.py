"""Folder datasets: ``folder:PATH`` is a folder of GT faces, or a folder with ``gt/`` and/or ``lq/`` subfolders.

Files are matched across ``gt/`` and ``lq/`` by stem (``0001.png`` pairs with ``0001.jpg``); the stem is the id.
Listing and matching are `cfbench.imageio.images_by_stem` / `pair_by_stem`: hidden files and sidecar text files
(README.md, params.jsonl, ...) are ignored; any other non-image file is an error, so that images in an unsupported
format are reported rather than silently left out. When ``lq/`` holds the ``params.jsonl`` written by ``cfbench
degrade``, each face's record is put into ``meta['degradation']``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfbench.data.base import Item, SourceDataset
from cfbench.data.faces import FileSource
from cfbench.errors import BadInputError
from cfbench.imageio import images_by_stem, name_list, pair_by_stem

PARAMS_FILE = "params.jsonl"  # what `cfbench degrade` writes beside its LQ images


@dataclass(frozen=True)
class Unmatched:
    """File names found on one side only of a GT/LQ pair of folders."""

    only_gt: list[str]
    only_lq: list[str]

    def __bool__(self) -> bool:
        return bool(self.only_gt or self.only_lq)

    def describe(self, gt_dir: object, lq_dir: object) -> str:
        """'N only in <gt_dir>: names; M only in <lq_dir>: names' (the first few names of each side)."""
        parts = [f"{len(self.only_gt)} only in {gt_dir}: {name_list(self.only_gt)}"] if self.only_gt else []
        parts += [f"{len(self.only_lq)} only in {lq_dir}: {name_list(self.only_lq)}"] if self.only_lq else []
        return "; ".join(parts)


def match_folders(gt_dir: Path | None, lq_dir: Path | None) -> tuple[list[Item], Unmatched]:
    """Items of the stems found on every given side (GT folder, LQ folder or both), and the unmatched file names."""
    gt = images_by_stem(gt_dir) if gt_dir is not None else None
    lq = images_by_stem(lq_dir) if lq_dir is not None else None
    unmatched = Unmatched([], [])
    stems = list(gt if gt is not None else lq or {})
    if gt is not None and lq is not None:
        unmatched = Unmatched(
            sorted(gt[s].name for s in set(gt) - set(lq)), sorted(lq[s].name for s in set(lq) - set(gt))
        )
        stems = [s for s in gt if s in lq]
    records = _degrade_records(lq_dir) if lq_dir is not None else {}
    items = []
    for stem in stems:
        meta: dict[str, Any] = {}
        if stem in records:
            meta["degradation"] = records[stem]
        items.append(
            Item(
                stem,
                FileSource(gt[stem]) if gt is not None else None,
                FileSource(lq[stem]) if lq is not None else None,
                meta,
            )
        )
    return items, unmatched


def pair_folders(gt_dir: Path | None, lq_dir: Path | None) -> list[Item]:
    """Items from a GT folder, an LQ folder or both (then matched by stem; any unmatched file is an error)."""
    if gt_dir is not None and lq_dir is not None:
        pair_by_stem(gt_dir, lq_dir, ("GT", "LQ"))
    return match_folders(gt_dir, lq_dir)[0]


def _degrade_records(lq_dir: Path) -> dict[str, dict[str, Any]]:
    path = lq_dir / PARAMS_FILE
    if not path.is_file():
        return {}
    out: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise BadInputError(f"{path}, line {n}: not valid JSON; remove or regenerate the file") from None
        if isinstance(rec, dict) and isinstance(rec.get("id"), str):
            out[rec["id"]] = rec
    return out


def folder_dataset(path: str | Path, name: str | None = None) -> SourceDataset:
    """``folder:PATH``: PATH with ``gt/`` and/or ``lq/`` subfolders, or PATH itself holding GT faces."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise BadInputError(
            f"dataset folder {root} does not exist; folder:PATH needs a folder of aligned faces, or one with gt/ "
            f"and/or lq/ subfolders"
        )
    root = root.resolve()
    gt_dir, lq_dir = root / "gt", root / "lq"
    has_gt, has_lq = gt_dir.is_dir(), lq_dir.is_dir()
    if has_gt or has_lq:
        items = pair_folders(gt_dir if has_gt else None, lq_dir if has_lq else None)
        layout = " + ".join(s for s, ok in (("gt/", has_gt), ("lq/", has_lq)) if ok)
    else:
        items = pair_folders(root, None)
        layout = "GT images"
    return SourceDataset(
        name or f"folder:{root}",
        items,
        seed_name=root.name,
        root=str(root),
        description=f"folder of aligned faces ({layout})",
    )
