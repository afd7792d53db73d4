"""Image grids from the faces a run saved: rows are faces, columns LQ | restored at several w | GT. A face the
run dir does not hold (the eval runner saves only restored faces, and only with --save-images) is drawn as a
grey tile that says so."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cfbench.imageio import read_image, to_uint8
from reports.load import Run
from reports.style import PAGE_WIDTH, figure

TILE = 160  # pixels per tile in memory; the figure is resized for print anyway


def load_tile(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    tile = Image.fromarray(to_uint8(read_image(path)))  # the reader every cfbench image goes through
    return np.asarray(tile.resize((TILE, TILE), Image.BICUBIC))


def columns_for(run: Run, ws: Sequence[float]) -> list[tuple[str, float | None]]:
    return [("LQ", None), *[(f"w = {w:g}", float(w)) for w in ws], ("GT", None)]


def any_image(run: Run, checkpoint: str, severity: str, image_ids: Sequence[str], ws: Sequence[float]) -> bool:
    return any(run.image_path(checkpoint, severity, w, i) for i in image_ids for w in ws)


def image_grid(
    run: Run,
    checkpoint: str,
    severity: str,
    image_ids: Sequence[str],
    ws: Sequence[float],
    row_labels: Sequence[str] | None = None,
    cell_text: dict[tuple[str, float], str] | None = None,
    title: str = "",
):
    """The figure: one row per image id, columns LQ, each w, GT; `cell_text` (image id, w) -> a caption under a
    restored tile (e.g. its metric values)."""
    cols = columns_for(run, ws)
    n_rows, n_cols = len(image_ids), len(cols)
    width = min(PAGE_WIDTH, 1.2 * n_cols)
    fig, axes = figure(ncols=n_cols, nrows=n_rows, width=width, aspect=1.12)
    for r, image_id in enumerate(image_ids):
        for c, (name, w) in enumerate(cols):
            ax = axes[r, c]
            if w is not None:
                path = run.image_path(checkpoint, severity, w, image_id)
            else:
                path = run.source_image_path(name.lower(), checkpoint, severity, image_id)
            tile = load_tile(path)
            if tile is None:
                ax.imshow(np.full((TILE, TILE, 3), 220, np.uint8))
                ax.text(
                    TILE / 2,
                    TILE / 2,
                    f"{name}\nnot saved\nin run dir",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="0.3",
                )
            else:
                ax.imshow(tile)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(name, fontsize=7)
            if c == 0:
                ax.set_ylabel(row_labels[r] if row_labels else image_id, fontsize=6)
            if cell_text and w is not None and (image_id, w) in cell_text:
                ax.set_xlabel(cell_text[(image_id, w)], fontsize=5.5)
    if title:
        fig.suptitle(title, fontsize=8)
    return fig
