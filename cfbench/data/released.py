"""The published face-restoration test sets, read from the folders their authors release.

None of them may be redistributed with cfbench: download each from the page its entry names and put it in
``$CFBENCH_DATA/<name>/`` (``$CFBENCH_DATA`` defaults to ``$CFBENCH_HOME/data``), or pass ``--data-root`` (the
set's folder or the folder holding it). Each entry lists the folder layouts it accepts, first match wins:

    celeba-test/celeba_512_validation/ + celeba_512_validation_lq/   (GFPGAN's release; or gt/ + lq/)
    lfw-test/, webphoto-test/, wider-test/, celebchild-test/         (real LQ only: lq/, or the images themselves)

GT and LQ are paired by file stem. Unlike ``folder:`` datasets, a released set keeps the faces that pair and
records the files that do not (`ReleasedDataset.unmatched`), so a protocol run can warn, or refuse with --strict,
naming them; and its LQ faces must already be 512x512 (`exact_lq_size`): a released LQ image of another size is
the wrong file, never something to resize.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfbench.data.base import Item, SourceDataset
from cfbench.data.faces import FACE_SIZE, FileSource
from cfbench.data.folder import Unmatched, match_folders
from cfbench.errors import BadInputError
from cfbench.imageio import image_size, name_list
from cfbench.weights import cfbench_home

CELEBA_LICENCE = (
    "CelebA images: non-commercial research use only (CelebA / CelebA-HQ agreements); LQ synthesized and released "
    "by the GFPGAN authors"
)
WEB_LICENCE = "faces collected from the Internet by the set's authors: research use only, check the release page"

Layout = tuple[str | None, str | None]  # (GT folder, LQ folder) inside the set's folder; "." is the folder itself


@dataclass(frozen=True)
class ReleasedSet:
    """A published test set: its registry name, what it is, where to get it and the folder layouts it accepts."""

    name: str
    description: str
    licence: str
    source: str
    layouts: tuple[Layout, ...]


RELEASED_SETS: tuple[ReleasedSet, ...] = (
    ReleasedSet(
        "celeba-test",
        "CelebA-Test: 3000 synthetic GT/LQ pairs (the GFPGAN release); LQ can also be synthesized with --severity",
        CELEBA_LICENCE,
        "the CelebA-Test set released by the GFPGAN authors (linked from the GFPGAN and VQFR READMEs)",
        (("celeba_512_validation", "celeba_512_validation_lq"), ("gt", "lq")),
    ),
    ReleasedSet(
        "lfw-test",
        "LFW-Test: real mildly degraded faces, LQ only (GFPGAN's test set)",
        "LFW: research use (University of Massachusetts, Amherst)",
        "the LFW-Test faces released with GFPGAN / VQFR",
        ((None, "lq"), (None, ".")),
    ),
    ReleasedSet(
        "webphoto-test",
        "WebPhoto-Test: real faces from old and compressed web photos, LQ only (GFPGAN's test set)",
        WEB_LICENCE,
        "the WebPhoto-Test faces released with GFPGAN / VQFR",
        ((None, "lq"), (None, ".")),
    ),
    ReleasedSet(
        "wider-test",
        "WIDER-Test: real heavily degraded faces from WIDER Face, LQ only (CodeFormer's test set)",
        "WIDER Face: research use (its dataset page)",
        "the WIDER-Test faces released with CodeFormer",
        ((None, "lq"), (None, ".")),
    ),
    ReleasedSet(
        "celebchild-test",
        "CelebChild-Test: real child photos of celebrities, LQ only (GFPGAN's test set)",
        WEB_LICENCE,
        "the CelebChild-Test faces released with GFPGAN / VQFR",
        ((None, "lq"), (None, ".")),
    ),
)


class ReleasedDataset(SourceDataset):
    """A `SourceDataset` that also knows the files that did not pair and insists on 512x512 LQ files."""

    exact_lq_size = True

    def __init__(self, name: str, items: Sequence[Item], unmatched: Unmatched, **kw: Any) -> None:
        super().__init__(name, items, **kw)
        self.unmatched = unmatched

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.unmatched:
            out["unmatched"] = {"only_gt": self.unmatched.only_gt, "only_lq": self.unmatched.only_lq}
        return out

    def check_lq_sizes(self) -> None:
        """Raise BadInputError naming the LQ files that are not 512x512 (read from their headers, no decoding)."""
        wrong = []
        for item in self.items:
            if not isinstance(item.lq, FileSource):
                continue
            size = image_size(item.lq.path)
            if size is None:
                continue  # unreadable: loading it names the file
            if size != (FACE_SIZE, FACE_SIZE):
                wrong.append(f"{item.lq.path.name} ({size[1]}x{size[0]})")
        if wrong:
            raise BadInputError(
                f"{len(wrong)} LQ image(s) of {self.name} are not {FACE_SIZE}x{FACE_SIZE} as released: "
                f"{name_list(wrong)}; "
                "replace them with the released files"
            )


def data_dir() -> Path:
    """``$CFBENCH_DATA``, default ``$CFBENCH_HOME/data``."""
    return Path(os.environ.get("CFBENCH_DATA") or cfbench_home() / "data").expanduser()


def _find_layout(entry: ReleasedSet, root: Path) -> tuple[Path | None, Path | None] | None:
    for gt_name, lq_name in entry.layouts:
        gt = root / gt_name if gt_name else None
        lq = root / lq_name if lq_name else None
        found = [p for p in (gt, lq) if p is not None and p.is_dir()]
        if found and (lq_name != "." or any(p.is_file() for p in root.iterdir())):
            return (gt if gt is not None and gt.is_dir() else None, lq if lq is not None and lq.is_dir() else None)
    return None


def default_root(entry: ReleasedSet, data_root: str | Path | None = None) -> Path:
    """Where a set is looked for: ``--data-root`` (or its ``<name>/``), else ``$CFBENCH_DATA/<name>``."""
    if data_root is None:
        return data_dir() / entry.name
    root = Path(data_root).expanduser()
    inner = root / entry.name
    if inner.is_dir() and (not root.is_dir() or _find_layout(entry, root) is None or _find_layout(entry, inner)):
        return inner
    return root


def _layout_text(entry: ReleasedSet, root: Path) -> str:
    def one(layout: Layout) -> str:
        sides = [f"{root}/{d}/" if d != "." else f"{root}/ itself" for d in layout if d]
        return " + ".join(sides)

    return " or ".join(one(layout) for layout in entry.layouts)


def released_dataset(entry: ReleasedSet, data_root: str | Path | None = None) -> ReleasedDataset:
    """The set of `entry` from its folder, or a one-line `BadInputError` that says where to put the files."""
    root = default_root(entry, data_root)
    found = _find_layout(entry, root) if root.is_dir() else None
    if found is None:
        raise BadInputError(
            f"{entry.name} not found in {root}: put {entry.source} there as {_layout_text(entry, root)} (PNG/JPEG, "
            f"aligned 512x512 faces); set $CFBENCH_DATA to the folder holding {entry.name}/, or pass --data-root DIR"
        )
    gt_dir, lq_dir = found
    items, unmatched = match_folders(gt_dir, lq_dir)
    if not items:
        shown = unmatched.describe(gt_dir, lq_dir)
        raise BadInputError(f"{entry.name} in {root}: no GT and LQ file share a name ({shown})")
    layout = " + ".join(f"{p.name}/" if p != root else "images" for p in (gt_dir, lq_dir) if p is not None)
    return ReleasedDataset(
        entry.name,
        items,
        unmatched,
        seed_name=entry.name,
        root=str(root.resolve()),
        licence=entry.licence,
        description=f"{entry.description} (found {layout})",
    )
