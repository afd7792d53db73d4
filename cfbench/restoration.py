"""High-level restoration: float32 RGB NCHW images in [0, 1] in, restored images in [0, 1] out."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cfbench import weights
from cfbench.errors import BadInputError, CheckpointError
from cfbench.export.runtime import OnnxCodeFormer, is_onnx
from cfbench.imageio import check_images
from cfbench.models.checkpoint import load_checkpoint
from cfbench.models.codeformer import CodeFormer

DEFAULT_CHECKPOINT = "auto"
AUTO_ORDER = ("codeformer", "codeformer_tiny")


def default_checkpoint() -> str:
    """'auto': the official CodeFormer when its weights are in the cache, else the bundled demo model."""
    return next(n for n in AUTO_ORDER if weights.weights_path(n).is_file() or n == AUTO_ORDER[-1])


def resolve_checkpoint(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """A checkpoint given as 'auto', a registered weights name or a file path -> (file path, model variant or None)."""
    if str(spec) == DEFAULT_CHECKPOINT:
        spec = default_checkpoint()
    if str(spec) in weights.WEIGHTS:
        return weights.require(str(spec)), weights.WEIGHTS.get(str(spec)).model
    path = Path(spec)
    if path.is_file():
        return path, None
    raise BadInputError(
        f"checkpoint {str(spec)!r} is neither a registered weights name ({', '.join(weights.WEIGHTS.names())}) "
        "nor an existing file"
    )


def load_restorer(
    spec: str | os.PathLike | CodeFormer = DEFAULT_CHECKPOINT, device: str = "cpu"
) -> CodeFormer | OnnxCodeFormer:
    """A CodeFormer in eval mode from a weights name, a checkpoint path, or a model (moved to `device`); an `.onnx`
    file gives its checked onnxruntime session (`cfbench.export.runtime`)."""
    if isinstance(spec, CodeFormer):
        return spec.to(device).eval()
    path, variant = resolve_checkpoint(spec)
    if is_onnx(path):
        return OnnxCodeFormer(path, device)
    model = load_checkpoint(path, name=variant, device=device)
    if not isinstance(model, CodeFormer):
        raise BadInputError(f"{path} holds a {type(model).__name__}, not a CodeFormer; pass a CodeFormer checkpoint")
    return model


def face_size(net: CodeFormer | OnnxCodeFormer) -> int:
    """The side S of the aligned (N, 3, S, S) faces a loaded restorer takes."""
    return net.img_size if isinstance(net, OnnxCodeFormer) else net.config.img_size


def check_unit_images(images: torch.Tensor, size: int) -> None:
    """Raise BadInputError unless `images` is a finite float (N, 3, size, size) batch in [0, 1]."""
    check_images(images)
    if tuple(images.shape[2:]) != (size, size):
        raise BadInputError(
            f"expected aligned {size}x{size} faces; got {images.shape[3]}x{images.shape[2]} "
            "(resize them first, or use `cfbench restore --resize`)"
        )


def check_restored(images: torch.Tensor, checkpoint: str) -> torch.Tensor:
    """`images` (N, 3, H, W), the output of a restorer, unchanged; CheckpointError naming `checkpoint` when any
    face holds NaN or infinite values, or is one constant colour (broken weights write black or flat images)."""
    flat = images.detach().flatten(1)
    bad = ~torch.isfinite(flat).all(dim=1)
    lo, hi = flat.aminmax(dim=1)
    constant = lo == hi
    if not bool((bad | constant).any()):  # the one wait for the device in the sweep's hot path
        return images
    if bad.any():
        raise CheckpointError(
            f"checkpoint {checkpoint} restored {int(bad.sum())} of {len(flat)} face(s) to NaN or infinite values; "
            "its weights are broken: re-export or re-download it (`cfbench weights verify`)"
        )
    value = float(lo[constant][0])
    raise CheckpointError(
        f"checkpoint {checkpoint} restored {int(constant.sum())} of {len(flat)} face(s) to a constant image "
        f"(every value {value:.4g}); its weights are broken: re-export or re-download it"
    )


def restore_batch(
    net: CodeFormer | OnnxCodeFormer,
    images: torch.Tensor,
    w: float | torch.Tensor,
    adain: bool = True,
    lookup: str = "transformer",
    checkpoint: str = "(a model object)",
) -> torch.Tensor:
    """One forward pass: (N, 3, S, S) in [0, 1] on the model's device -> restored (N, 3, S, S) in [0, 1], checked
    by `check_restored` (`checkpoint` names the weights in its error)."""
    if isinstance(net, OnnxCodeFormer):
        check_onnx_options(adain, lookup)
        return check_restored(net.restore(images, w)[0], checkpoint)
    y = net.decode(net.encode(images * 2 - 1, lookup=lookup), w, adain=adain)
    return check_restored((y.clamp(-1, 1) + 1) / 2, checkpoint)


def check_onnx_options(adain: bool, lookup: str) -> None:
    """An ONNX export runs its graph as exported (AdaIN on, transformer lookup): refuse other options."""
    if not adain or lookup != "transformer":
        raise BadInputError(
            "an ONNX export always runs with AdaIN and the transformer lookup; drop --no-adain / --nn-lookup, or use "
            "the PyTorch checkpoint"
        )


@torch.inference_mode()
def restore(
    images: torch.Tensor,
    w: float = 0.5,
    model: str | os.PathLike | CodeFormer = DEFAULT_CHECKPOINT,
    adain: bool = True,
    lookup: str = "transformer",
    batch_size: int = 4,
    device: str | None = None,
) -> torch.Tensor:
    """Restore aligned faces (N, 3, S, S) float32 RGB in [0, 1] with fidelity weight w (0 quality ... 1 fidelity).

    Mirrors the official inference: normalise to [-1, 1], `net(x, w=w, adain=True)`, clamp, back to [0, 1]. The
    result is on the input's device, float32, not quantised to 8 bits.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    net = load_restorer(model, device)
    label = "(a model object)" if isinstance(model, CodeFormer) else str(model)
    check_unit_images(images, face_size(net))
    if batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1, got {batch_size}")
    outs = [
        restore_batch(net, chunk.to(device, torch.float32), w, adain, lookup, label).to(images.device)
        for chunk in images.split(batch_size)
    ]
    return torch.cat(outs)
