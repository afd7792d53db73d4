"""`cfbench restore`: restore aligned 512x512 face images into a folder, one output per input, same name."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
import typer

from cfbench.cli.common import console, pick_device, progress
from cfbench.data.demo import demo_lq_paths
from cfbench.errors import BadInputError
from cfbench.imageio import expand_image_paths, read_image, write_image
from cfbench.restoration import (
    DEFAULT_CHECKPOINT,
    check_unit_images,
    default_checkpoint,
    load_restorer,
    restore_batch,
)


def restore_command(
    images: list[Path] = typer.Argument(
        None,
        help="Aligned face images or folders of them; default: the bundled demo faces.",
        show_default=False,
    ),
    w: float = typer.Option(0.5, "--w", "-w", help="Fidelity weight: 0 favours quality, 1 fidelity to the input."),
    checkpoint: str = typer.Option(
        DEFAULT_CHECKPOINT,
        help="Registered weights name, checkpoint file, or 'auto' (official codeformer if present, else the bundled "
        "codeformer_tiny demo model).",
    ),
    out: Path = typer.Option(Path("restored"), "--out", "-o", help="Output folder."),
    batch_size: int = typer.Option(4, min=1, help="Faces per forward pass."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    nn_lookup: bool = typer.Option(False, "--nn-lookup", help="Nearest-code lookup instead of the transformer."),
    adain: bool = typer.Option(True, "--adain/--no-adain", help="AdaIN colour transfer, as the official inference."),
    resize: bool = typer.Option(False, "--resize", help="Resize inputs of another size to the model size (bilinear)."),
) -> None:
    """Restore aligned faces with CodeFormer at fidelity weight w."""
    if not 0.0 <= w <= 1.0:
        raise BadInputError(f"--w must be in [0, 1], got {w}")
    paths = expand_image_paths(images) if images else demo_lq_paths()
    names = [p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInputError(
            f"several inputs share the output name(s) {dupes}; restore them into separate --out folders"
        )
    dev = pick_device(device)
    if checkpoint == DEFAULT_CHECKPOINT:
        checkpoint = default_checkpoint()
        console.print(f"checkpoint: {checkpoint} (auto; `cfbench weights list` shows what is installed)")
    net = load_restorer(checkpoint, dev)
    size = net.config.img_size
    lookup = "nearest" if nn_lookup else "transformer"
    start = time.perf_counter()
    with progress() as bar, torch.inference_mode():
        task = bar.add_task("restoring", total=len(paths), rate="")
        for i in range(0, len(paths), batch_size):
            chunk = paths[i : i + batch_size]
            batch = torch.stack([_load(p, size, resize) for p in chunk])
            check_unit_images(batch, size)
            restored = restore_batch(net, batch.to(dev), w, adain, lookup).cpu()
            for p, img in zip(chunk, restored, strict=True):
                write_image(out / p.name, img)
            done = i + len(chunk)
            bar.update(task, completed=done, rate=f"{done / (time.perf_counter() - start):.2f} faces/s")
    console.print(f"restored {len(paths)} face(s) at w={w} into {out}")


def _load(path: Path, size: int, resize: bool) -> torch.Tensor:
    img = read_image(path)
    if tuple(img.shape[1:]) == (size, size):
        return img
    if not resize:
        raise BadInputError(
            f"{path} is {img.shape[2]}x{img.shape[1]}, but the model takes aligned {size}x{size} faces; "
            "pass --resize to resize it, or align it first"
        )
    return F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1)


def register(app: typer.Typer) -> None:
    app.command("restore")(restore_command)
