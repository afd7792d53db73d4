"""Helpers of the degradation tests: face loading and PSNR."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1] / "data" / "faces"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "faces" / "aligned_hq"
SHARED_FACES = ("ffhq512_00000000.png", "celebahq_015248.jpg", "celebahq_058150.jpg", "celebahq_081680.jpg")


def load_rgb(path: Path, size: int) -> torch.Tensor:
    """(1, 3, size, size) float32 RGB in [0, 1]; INTER_AREA when shrinking, INTER_CUBIC when enlarging."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    interp = cv2.INTER_AREA if bgr.shape[0] >= size else cv2.INTER_CUBIC
    bgr = cv2.resize(bgr, (size, size), interpolation=interp)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1]).astype(np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()


def bundled_face_paths() -> list[Path]:
    return sorted(DATA.glob("*.png"))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (N, C, H, W) tensors in [0, 1] (capped at 200 dB for identical images)."""
    mse = ((a.double() - b.double()) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-20))
