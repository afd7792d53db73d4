"""`cfbench restore`: restore face images into a folder, one output per input, same name.

Inputs are aligned faces (the model size, 512x512 for the official model: restored whole, as before) or whole photos
(detect, align, restore, paste back: `cfbench.face.photo`). `--aligned/--whole-photo` forces one kind; by default
(auto) inputs of the model size are aligned faces and others whole photos, unless `--resize` is given, which keeps
resizing other sizes as aligned faces.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
import typer

from cfbench.cli.common import console, pick_device, progress
from cfbench.data.demo import demo_lq_paths
from cfbench.errors import BadInputError, MissingWeightsError
from cfbench.export.runtime import OnnxCodeFormer
from cfbench.face import FACE_BACKENDS, get_backend
from cfbench.face.photo import PASTE_MASKS, FaceMasker, face_masker
from cfbench.imageio import expand_image_paths, read_image, write_image
from cfbench.restoration import (
    DEFAULT_CHECKPOINT,
    check_unit_images,
    default_checkpoint,
    face_size,
    load_restorer,
    restore_batch,
)


def restore_command(
    images: list[Path] = typer.Argument(
        None,
        help="Aligned faces or whole photos, or folders of them; default: the bundled demo faces.",
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
    resize: bool = typer.Option(
        False, "--resize", help="Resize inputs of another size to the model size (bilinear) and treat them as aligned."
    ),
    aligned: bool | None = typer.Option(
        None,
        "--aligned/--whole-photo",
        help="Inputs are aligned faces, or whole photos (detect, align, restore, paste back). Default: auto, "
        "model-size inputs are aligned faces, others whole photos (aligned with --resize).",
        show_default=False,
    ),
    only_center_face: bool = typer.Option(
        False, "--only-center-face", help="Whole photos: restore only the face closest to the image centre."
    ),
    upscale: int = typer.Option(
        1,
        "--upscale",
        min=1,
        max=8,
        help="Whole photos: output size factor; the background is upscaled by a plain bicubic resize (no "
        "super-resolution model), the faces are pasted at that size.",
    ),
    detector: str = typer.Option(
        "dlib",
        help="Whole photos: the face backend that finds the faces and their five points: dlib (offline) or "
        "retinaface (RetinaFace ResNet-50, CodeFormer's detector; needs the retinaface_resnet50 weights).",
    ),
    mask: str = typer.Option(
        "soft",
        help="Whole photos: the paste-back mask: soft (the warped square, eroded and blurred) or parsing "
        "(CodeFormer's use_parse: also limited to the face classes of the ParseNet face parser; needs the "
        "parsing_parsenet weights).",
    ),
) -> None:
    """Restore faces (aligned crops or whole photos) with CodeFormer at fidelity weight w."""
    if not 0.0 <= w <= 1.0:
        raise BadInputError(f"--w must be in [0, 1], got {w}")
    if aligned is False and resize:
        raise BadInputError("--resize applies to aligned faces; it cannot be combined with --whole-photo")
    FACE_BACKENDS.get(detector)  # an unknown name fails here, with suggestions, before any work
    PASTE_MASKS.get(mask)
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
    size = face_size(net)
    lookup = "nearest" if nn_lookup else "transformer"
    photos = [p for p in paths if _is_photo(p, size, aligned, resize)]
    faces = [p for p in paths if p not in photos]
    if photos and isinstance(net, OnnxCodeFormer):
        raise BadInputError(
            f"{len(photos)} input(s) are whole photos (not {size}x{size}), which need the PyTorch checkpoint; give "
            "aligned faces (--aligned --resize) to the ONNX export"
        )
    if photos:
        get_backend(detector)  # loads the detector, or fails on its missing weights, before any restoring
        masker = _masker(mask, dev)
    if faces and upscale != 1:
        console.print(f"note: --upscale applies to whole photos only; {len(faces)} aligned face(s) keep their size")
    start = time.perf_counter()
    with progress() as bar, torch.inference_mode():
        task = bar.add_task("restoring", total=len(paths), rate="")
        done = 0
        for i in range(0, len(faces), batch_size):
            chunk = faces[i : i + batch_size]
            batch = torch.stack([_load(p, size, resize) for p in chunk])
            check_unit_images(batch, size)
            restored = restore_batch(net, batch.to(dev), w, adain, lookup, checkpoint).cpu()
            for p, img in zip(chunk, restored, strict=True):
                write_image(out / p.name, img)
            done += len(chunk)
            bar.update(task, completed=done, rate=f"{done / (time.perf_counter() - start):.2f} images/s")
        found = 0
        for p in photos:
            found += _restore_photo(
                p, out, net, w, upscale, only_center_face, adain, lookup, batch_size, detector, masker, checkpoint
            )
            done += 1
            bar.update(task, completed=done, rate=f"{done / (time.perf_counter() - start):.2f} images/s")
    if faces:
        console.print(f"restored {len(faces)} face(s) at w={w} into {out}")
    if photos:
        console.print(
            f"restored {found} face(s) in {len(photos)} whole photo(s) at w={w}, upscale {upscale} "
            f"(background: bicubic resize), {mask} paste-back mask into {out}",
            soft_wrap=True,
        )


def _masker(mask: str, device: torch.device) -> FaceMasker:
    try:
        return face_masker(mask, device)
    except MissingWeightsError as exc:
        raise MissingWeightsError(f"--mask {mask}: {exc}; or paste back with the default --mask soft") from exc


def _is_photo(path: Path, size: int, aligned: bool | None, resize: bool) -> bool:
    if aligned is not None:
        return not aligned
    h, w = _image_size(path)
    return (h, w) != (size, size) and not resize


def _image_size(path: Path) -> tuple[int, int]:
    img = read_image(path)
    return int(img.shape[1]), int(img.shape[2])


def _restore_photo(
    path: Path,
    out: Path,
    net,
    w: float,
    upscale: int,
    only_center_face: bool,
    adain: bool,
    lookup: str,
    batch: int,
    detector: str,
    masker: FaceMasker,
    checkpoint: str,
) -> int:
    from cfbench.face.photo import restore_photo

    img = read_image(path)
    result = restore_photo(img, net, w, upscale, only_center_face, adain, lookup, batch, detector, masker, checkpoint)
    if result.num_faces == 0:
        console.print(
            f"warning: no face found in {path}; written upscaled x{upscale} (bicubic) and otherwise unchanged",
            soft_wrap=True,
        )
    write_image(out / path.name, torch.from_numpy(result.image).permute(2, 0, 1).float().div(255.0))
    return result.num_faces


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
