"""The dataset registry: named datasets (the released test sets ``celeba-test``, ``lfw-test``, ``webphoto-test``,
``wider-test``, ``celebchild-test``; ``demo``, ``demo-lq``) and the parametric forms ``folder:PATH`` and
``hf:NAME[:split]``. It alone says where a set's files go; protocols (`cfbench.eval.protocols`) name sets from it.

``get_dataset(spec, data_root=None)`` builds one; ``open_dataset`` also applies a severity (`cfbench.data.synth`);
``list_datasets`` says, for ``cfbench datasets list``, what each is, where it looks and whether it is available.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfbench.data import demo, released
from cfbench.data.base import FaceDataset
from cfbench.data.folder import folder_dataset
from cfbench.errors import BadInputError
from cfbench.registry import Registry
from degradations.severity import Severity


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset. ``build(arg, data_root)``: ``arg`` is the text after ``name:`` for parametric
    entries (``folder``, ``hf``) and None for named ones; ``where(data_root)`` says where it looks."""

    name: str
    usage: str  # how to name it on the command line: "celeba-test", "folder:PATH"
    description: str
    licence: str
    build: Callable[[str | None, str | Path | None], FaceDataset]
    where: Callable[[str | Path | None], str]
    parametric: bool = False


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def _named(factory: Callable[[], FaceDataset]) -> Callable[[str | None, str | Path | None], FaceDataset]:
    return lambda arg, data_root: factory()


def _build_hf(arg: str | None, data_root: str | Path | None) -> FaceDataset:
    from cfbench.data.hf import hf_dataset  # keeps `datasets` out of every other import

    return hf_dataset(arg or "")


def _build_folder(arg: str | None, data_root: str | Path | None) -> FaceDataset:
    if not arg:
        raise BadInputError("folder: needs a path, e.g. folder:/data/my_faces (GT images, or gt/ and lq/ subfolders)")
    return folder_dataset(arg)


def _released_entry(entry: released.ReleasedSet) -> DatasetEntry:
    return DatasetEntry(
        entry.name,
        entry.name,
        entry.description,
        entry.licence,
        lambda arg, data_root: released.released_dataset(entry, data_root),
        lambda data_root: str(released.default_root(entry, data_root)),
    )


for _entry in (
    *map(_released_entry, released.RELEASED_SETS),
    DatasetEntry(
        "demo",
        "demo",
        "6 real aligned GT faces bundled with cfbench (CelebA-HQ, FFHQ); LQ synthesized with --severity",
        demo.DEMO_LICENCE,
        _named(demo.demo_dataset),
        lambda data_root: str(demo.demo_dir() / "gt"),
    ),
    DatasetEntry(
        "demo-lq",
        "demo-lq",
        "4 real low-quality aligned faces bundled with cfbench (no GT: no-reference metrics only)",
        demo.DEMO_LQ_LICENCE,
        _named(demo.demo_lq_dataset),
        lambda data_root: str(demo.demo_dir()),
    ),
    DatasetEntry(
        "folder",
        "folder:PATH",
        "a folder of aligned GT faces, or with gt/ and/or lq/ subfolders (matched by file name)",
        "your data",
        _build_folder,
        lambda data_root: "PATH",
        parametric=True,
    ),
    DatasetEntry(
        "hf",
        "hf:NAME[:split]",
        "a Hugging Face dataset (hub cache, save_to_disk or imagefolder folder); needs pip install datasets",
        "from the dataset card",
        _build_hf,
        lambda data_root: "the Hugging Face cache, or NAME as a folder",
        parametric=True,
    ),
):
    DATASETS.add(_entry.name, _entry)


def _unknown(spec: str) -> BadInputError:
    usages = [e.usage for _, e in DATASETS.items()]
    close = difflib.get_close_matches(spec, [e.name for _, e in DATASETS.items()], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(DATASETS.get(c).usage) for c in close)}?" if close else ""
    if not close and Path(spec).expanduser().is_dir():
        hint = f"; for a folder of faces use 'folder:{spec}'"
    return BadInputError(f"unknown dataset {spec!r}{hint} (known: {', '.join(usages)})")


def get_dataset(spec: str, data_root: str | Path | None = None) -> FaceDataset:
    """The dataset named by ``spec`` (``celeba-test``, ``demo``, ``demo-lq``, ``folder:PATH``, ``hf:NAME[:split]``).

    ``data_root`` is where a released set is looked for (default ``$CFBENCH_DATA/<name>``).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise BadInputError("no dataset given; use one of: " + ", ".join(e.usage for _, e in DATASETS.items()))
    spec = spec.strip()
    kind, sep, arg = spec.partition(":")
    if sep and kind in DATASETS and DATASETS.get(kind).parametric:
        return DATASETS.get(kind).build(arg, data_root)
    if spec in DATASETS:
        entry = DATASETS.get(spec)
        if entry.parametric:
            raise BadInputError(f"dataset {spec!r} needs an argument: {entry.usage}")
        return entry.build(None, data_root)
    raise _unknown(spec)


def open_dataset(
    spec: str,
    data_root: str | Path | None = None,
    severity: Severity | None = None,
    seed: int = 0,
    preset: str | None = None,
) -> FaceDataset:
    """`get_dataset`, then, when ``severity`` is given, a `DegradedDataset` at that severity."""
    from cfbench.data.synth import with_severity

    return with_severity(get_dataset(spec, data_root), severity, seed=seed, preset=preset)


def list_datasets(data_root: str | Path | None = None) -> list[dict[str, Any]]:
    """One JSON-able row per registered dataset: name, description, where, available, images, licence, reason."""
    rows = []
    for _, entry in DATASETS.items():
        row: dict[str, Any] = {
            "name": entry.usage,
            "description": entry.description,
            "where": entry.where(data_root),
            "available": None,
            "images": None,
            "has_gt": None,
            "has_lq": None,
            "licence": entry.licence,
            "reason": None,
        }
        if entry.parametric:
            row["reason"] = f"give {entry.usage}"
        else:
            try:
                ds = entry.build(None, data_root)
            except BadInputError as exc:
                row.update(available=False, reason=str(exc))
            else:
                row.update(available=True, images=len(ds), has_gt=ds.has_gt, has_lq=ds.has_lq)
        rows.append(row)
    first = {"demo": 0, "demo-lq": 1}
    last = {"folder": 1, "hf": 2}
    rows.sort(key=lambda r: (last.get(r["name"].split(":")[0], 0), first.get(r["name"], 9)))
    return rows
