"""Folder datasets: ``folder:PATH`` is a folder of GT faces, or a folder with ``gt/`` and/or ``lq/`` subfolders.

Files are matched across ``gt/`` and ``lq/`` by stem (``0001.png`` pairs with ``0001.jpg``); the stem is the id.
Hidden files and sidecar text files (README.md, params.jsonl, ...) are ignored; any other non-image file is an
error, so that images in an unsupported format are reported rather than silently left out. When ``lq/`` holds the
``params.jsonl`` written by ``cfbench degrade``, each face's record is put into ``meta['degradation']``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfbench.data.base import Item, SourceDataset
from cfbench.data.faces import FileSource
from cfbench.errors import BadInputError
from cfbench.imageio import IMAGE_EXTENSIONS

SIDECAR_SUFFIXES = (".md", ".txt", ".csv", ".json", ".jsonl", ".yaml", ".yml", ".npz", ".parquet")
PARAMS_FILE = "params.jsonl"  # what `cfbench degrade` writes beside its LQ images


def list_face_files(folder: Path) -> dict[str, Path]:
    """Image files of `folder` (not recursive) by stem, sorted by stem."""
    if not folder.is_dir():
        raise BadInputError(f"{folder} is not a folder; pass a folder of aligned face images")
    stems: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() in SIDECAR_SUFFIXES:
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise BadInputError(f"{p} is not an image ({', '.join(IMAGE_EXTENSIONS)}); move it out of {folder}")
        if p.stem in stems:
            raise BadInputError(f"{stems[p.stem]} and {p} share the id {p.stem!r}; rename or remove one")
        stems[p.stem] = p
    if not stems:
        raise BadInputError(f"{folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
    return dict(sorted(stems.items()))


def _few(names: list[str], n: int = 5) -> str:
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


@dataclass(frozen=True)
class Unmatched:
    """File names found on one side only of a GT/LQ pair of folders."""

    only_gt: list[str]
    only_lq: list[str]

    def __bool__(self) -> bool:
        return bool(self.only_gt or self.only_lq)

    def describe(self, gt_dir: object, lq_dir: object) -> str:
        """'N only in <gt_dir>: names; M only in <lq_dir>: names' (the first few names of each side)."""
        parts = [f"{len(self.only_gt)} only in {gt_dir}: {_few(self.only_gt)}"] if self.only_gt else []
        parts += [f"{len(self.only_lq)} only in {lq_dir}: {_few(self.only_lq)}"] if self.only_lq else []
        return "; ".join(parts)


def match_folders(gt_dir: Path | None, lq_dir: Path | None) -> tuple[list[Item], Unmatched]:
    """Items of the stems found on every given side (GT folder, LQ folder or both), and the unmatched file names."""
    gt = list_face_files(gt_dir) if gt_dir is not None else None
    lq = list_face_files(lq_dir) if lq_dir is not None else None
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
    items, unmatched = match_folders(gt_dir, lq_dir)
    if unmatched:
        raise BadInputError(
            f"GT and LQ files do not match by name ({unmatched.describe(gt_dir, lq_dir)}); every face needs a GT "
            "and an LQ file with the same stem"
        )
    return items


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
