"""``hf:NAME[:split]``: a Hugging Face `datasets` dataset of aligned faces.

NAME is a hub name (read from the local cache when offline: set ``HF_DATASETS_OFFLINE=1`` / ``HF_HUB_OFFLINE=1`` to
never touch the network), a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or an
``imagefolder`` directory of image files. Image columns are the columns of type ``datasets.Image``: columns named
``gt`` and/or ``lq`` are used when present, otherwise the first image column is the GT. Ids come from an ``id``
column when its values are unique, else from the image file names when unique, else from the row number. The split
defaults to ``test``, then ``validation``, then the only split. Images are decoded by OpenCV from their stored bytes,
with the same conversions and resize policy as files (`cfbench.data.faces`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cfbench.data.base import Item, SourceDataset
from cfbench.errors import BadInputError
from cfbench.imageio import decode_image

SPLIT_PREFERENCE = ("test", "validation")


@dataclass(frozen=True)
class HFSource:
    """One image cell of a Hugging Face dataset (its column cast to ``Image(decode=False)``)."""

    table: Any  # datasets.Dataset
    row: int
    column: str
    label: str

    def read_bytes(self) -> bytes:
        cell = self.table[self.row][self.column]
        if not isinstance(cell, dict) or (cell.get("bytes") is None and not cell.get("path")):
            raise BadInputError(f"{self.label} holds no image; remove the row or fill the cell")
        if cell.get("bytes") is not None:
            return bytes(cell["bytes"])
        path = Path(cell["path"])
        if not path.is_file():
            raise BadInputError(f"{self.label} points to {path}, which does not exist; re-create the dataset")
        return path.read_bytes()

    def decode(self, data: bytes) -> torch.Tensor:
        return decode_image(data, self.label)


def parse_spec(arg: str) -> tuple[str, str | None]:
    """``NAME[:split]`` -> (NAME, split or None). A split never contains '/'."""
    if not arg:
        raise BadInputError("hf: needs a dataset name or folder, e.g. hf:user/faces:test or hf:/data/faces_hf")
    name, sep, split = arg.rpartition(":")
    if sep and name and split and "/" not in split and "\\" not in split:
        return name, split
    return arg, None


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise BadInputError(
            "hf: datasets need the Hugging Face `datasets` package: pip install 'cfbench[data]' (or datasets)"
        ) from None
    return datasets


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open(datasets: Any, name: str, split: str | None) -> tuple[Any, str]:
    path = Path(name).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            obj = datasets.load_from_disk(str(path))
        elif path.is_dir():
            obj = datasets.load_dataset("imagefolder", data_dir=str(path))
        else:
            obj = datasets.load_dataset(name)
    except Exception as exc:  # the library raises many types; all mean "cannot load it"
        raise BadInputError(
            f"cannot load Hugging Face dataset {name!r}: {_first_line(exc)}; offline it must be in the local cache "
            f"(HF_DATASETS_CACHE) or be a save_to_disk / imagefolder folder"
        ) from exc
    if isinstance(obj, datasets.Dataset):
        if split not in (None, str(obj.split or "")):
            raise BadInputError(f"hf:{name} is a single split ({obj.split or 'unnamed'}); drop ':{split}'")
        return obj, str(obj.split or "")
    splits = list(obj)
    if split is None:
        split = next((s for s in SPLIT_PREFERENCE if s in obj), splits[0] if len(splits) == 1 else None)
        if split is None:
            raise BadInputError(f"hf:{name} has splits {', '.join(splits)}; choose one, e.g. hf:{name}:{splits[0]}")
    if split not in obj:
        raise BadInputError(f"hf:{name} has no split {split!r}; it has {', '.join(splits)}")
    return obj[split], split


def _ids(ds: Any, image_column: str) -> list[str]:
    n = len(ds)
    if "id" in ds.column_names:
        values = [str(v) for v in ds["id"]]
        if len(set(values)) == n and all(values):
            return values
    paths = ds.select_columns([image_column]).with_format("arrow")[image_column]
    stems = [Path(p).stem if p else "" for p in paths.combine_chunks().field("path").to_pylist()]
    if all(stems) and len(set(stems)) == n:
        return stems
    width = max(5, len(str(n - 1)))
    return [f"{i:0{width}d}" for i in range(n)]


def hf_dataset(arg: str) -> SourceDataset:
    """Build the dataset of ``hf:ARG`` (ARG = ``NAME[:split]``)."""
    name, split = parse_spec(arg)
    datasets = _import_datasets()
    ds, split = _open(datasets, name, split)
    images = [c for c, f in ds.features.items() if isinstance(f, datasets.Image)]
    if not images:
        kinds = ", ".join(f"{c} ({type(f).__name__})" for c, f in ds.features.items())
        raise BadInputError(f"hf:{name} has no image column (columns: {kinds}); cfbench needs Image features")
    if "gt" in images or "lq" in images:
        gt_col = "gt" if "gt" in images else None
        lq_col = "lq" if "lq" in images else None
    else:
        gt_col, lq_col = images[0], None
    used = [c for c in (gt_col, lq_col) if c is not None]
    for col in used:
        ds = ds.cast_column(col, datasets.Image(decode=False))
    ids = _ids(ds, used[0])
    table = ds.select_columns(used)
    where = f"hf:{name}" + (f":{split}" if split else "")

    def source(row: int, col: str | None) -> HFSource | None:
        return None if col is None else HFSource(table, row, col, f"{where} row {row} ({ids[row]}) column {col!r}")

    items = [Item(ids[i], source(i, gt_col), source(i, lq_col)) for i in range(len(ds))]
    local = Path(name).expanduser()
    seed_base = local.resolve().name if local.is_dir() else name
    licence = (ds.info.license or "").strip() or "not recorded in the dataset card"
    return SourceDataset(
        where,
        items,
        seed_name=f"{seed_base}:{split}" if split else seed_base,
        root=str(local.resolve()) if local.is_dir() else name,
        licence=licence,
        description=f"Hugging Face dataset ({len(ds)} rows; GT column {gt_col}, LQ column {lq_col})",
    )
