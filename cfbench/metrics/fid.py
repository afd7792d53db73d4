"""FID `fid[<ref>]`: Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium") with the pytorch-fid InceptionV3 (`cfbench.metrics.inception`). Lower is
better; a distribution metric, one value per group.

Input: float32 RGB NCHW in [0, 1], any size, resized to 299x299 (`clean`: clean-fid's antialiased PIL bicubic, the
default for `ref=gt`; `legacy_pytorch`: pytorch-fid's bilinear) -> pool3 features (2048-d) -> mean and covariance
(ddof=1) -> Frechet distance in float64 to the reference: `gt` (the run's GT images), `ffhq512` (BasicSR's FFHQ
statistics, `legacy_pytorch` only) or a statistics file (.npz `mu`/`sigma` or `mean`/`cov`, BasicSR/VQFR .pth).
Tolerance: the distance within 1e-6 (relative) of pytorch-fid's `calculate_frechet_distance`; the `clean` resize
within 1e-4 of clean-fid's resizer (tests/metrics/test_fid.py). Resize modes, what `clean` does not reproduce and
the references in detail: docs/metrics/fid.md.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import pickle
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cfbench import weights
from cfbench.errors import BadInputError
from cfbench.metrics.base import DistributionMetric, FeatureStatistics, MetricKind, MetricSpec, check_images
from cfbench.metrics.inception import FEATURE_DIM, INPUT_SIZE, load_fid_inception
from cfbench.metrics.registry import register

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray

EXTRACTOR = "pytorch-fid InceptionV3 (TF 2015-12-05 graph) pool3"

RESIZE_MODES: dict[str, str] = {
    "clean": "clean-fid 'clean': PIL antialiased bicubic per channel on x*255 (float32), clipped to [0, 255]",
    "legacy_pytorch": "pytorch-fid: F.interpolate bilinear, align_corners=False, no antialias, on [0, 1]",
}
AUTO = "auto"


# ---------------------------------------------------------------------------------------------------------------
# Reference statistics sources and the resize rules that go with them


@dataclass(frozen=True)
class NamedStatistics:
    """Published reference statistics, found through the weights registry."""

    weights: str  # name in cfbench.weights.WEIGHTS
    resize: str  # the resize mode the statistics were computed with; FID against them must use it
    description: str


NAMED_STATISTICS: dict[str, NamedStatistics] = {
    "ffhq512": NamedStatistics(
        "fid_stats_ffhq512",
        "legacy_pytorch",
        "FFHQ 512x512, 50,000 images, pytorch-fid Inception with bilinear resize (BasicSR inception_FFHQ_512)",
    ),
    "ffhq70k": NamedStatistics(
        "fid_stats_ffhq70k_clean",
        "clean",
        "FFHQ 512x512, all 70,000 images (train + val), clean-fid's protocol: PIL bicubic resize and the same "
        "TF-Inception pool3 (clean-fid/pyiqa ffhq_clean_trainval70k_512)",
    ),
}


@dataclass(frozen=True)
class ReferenceSource:
    """What `fid` compares against, and which resize modes that allows.

    | ref            | label       | default resize   | allowed resize                         |
    |----------------|-------------|------------------|----------------------------------------|
    | `gt`           | gt          | `clean`          | both (GT goes through the same resize) |
    | `ffhq512`      | ffhq512     | `legacy_pytorch` | `legacy_pytorch` only                  |
    | `ffhq70k`      | ffhq70k     | `clean`          | `clean` only                           |
    | `path.npz/pth` | file stem   | `legacy_pytorch` | both (we cannot tell how it was made)  |

    Files default to `legacy_pytorch` because the tools that write this Inception's statistics (pytorch-fid,
    BasicSR, VQFR) all resize bilinearly.
    """

    kind: str  # "gt" | "named" | "file"
    label: str  # the column variant: fid[label]
    path: Path | None = None
    named: NamedStatistics | None = None

    @classmethod
    def parse(cls, ref: str | os.PathLike) -> ReferenceSource:
        text = str(ref)
        if text == "gt":
            return cls("gt", "gt")
        if text in NAMED_STATISTICS:
            return cls("named", text, named=NAMED_STATISTICS[text])
        path = Path(text)
        if path.suffix.lower() in (".npz", ".pth", ".pt") or path.is_file():
            if not path.is_file():
                raise BadInputError(f"FID reference statistics file not found: {path}")
            return cls("file", path.stem, path=path)
        names = ", ".join(["gt", *NAMED_STATISTICS])
        raise BadInputError(f"unknown FID reference '{text}': use one of {names}, or a path to a .npz/.pth stats file")

    @property
    def default_resize(self) -> str:
        if self.named is not None:
            return self.named.resize
        return "clean" if self.kind == "gt" else "legacy_pytorch"

    def resolve_resize(self, resize: str | None) -> str:
        """The resize mode to use for `resize` ('auto'/None = the default for this reference); refuse mismatches."""
        if resize is None or resize == AUTO:
            return self.default_resize
        if resize not in RESIZE_MODES:
            raise BadInputError(f"unknown FID resize mode '{resize}': use one of {AUTO}, {', '.join(RESIZE_MODES)}")
        if self.named is not None and resize != self.named.resize:
            raise BadInputError(
                f"fid[{self.label}] statistics were computed with the '{self.named.resize}' resize; comparing "
                f"'{resize}'-resized images against them measures the resize, not the images (leave resize unset)"
            )
        return resize

    def locate(self) -> Path | None:
        """The statistics file (None for gt); named statistics raise MissingWeightsError when not installed."""
        if self.named is not None:
            return weights.require(self.named.weights)
        return self.path


# ---------------------------------------------------------------------------------------------------------------
# Resizing to 299 x 299


def _pil_bicubic(x: np.ndarray) -> np.ndarray:
    """PIL's bicubic kernel (Keys, a = -0.5)."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@functools.lru_cache(maxsize=32)
def pil_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float64 matrix of PIL's antialiased bicubic resampling along one axis.

    Follows PIL's coefficient rule (Resample.c, precompute_coeffs): the kernel is stretched by the downscale factor
    (support 2 * max(scale, 1)), each output sample takes the input pixels whose centres fall in its window, and
    the weights are normalised to sum to one.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    inv = 1.0 / filterscale
    mat = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = _pil_bicubic((np.arange(lo, hi) - center + 0.5) * inv)
        total = taps.sum()
        mat[i, lo:hi] = taps / total if total != 0.0 else taps
    return mat


def pil_bicubic_resize(x255: torch.Tensor, size: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE)) -> torch.Tensor:
    """PIL 'F'-mode bicubic resize of a float (N, C, H, W) batch on the 0-255 scale to `size` = (height, width),
    then clipped to [0, 255]: clean-fid's 'clean' resizer, batched.

    Like PIL: horizontal pass first, each pass accumulates in float64 and stores float32; a pass whose size does
    not change is skipped (its matrix would be the identity).
    """
    out_h, out_w = size
    x = x255.to(torch.float32)
    if x.shape[-1] != out_w:
        mat = torch.from_numpy(pil_bicubic_matrix(x.shape[-1], out_w)).to(x.device)
        x = torch.matmul(x.double(), mat.T).float()
    if x.shape[-2] != out_h:
        mat = torch.from_numpy(pil_bicubic_matrix(x.shape[-2], out_h)).to(x.device)
        x = torch.matmul(mat, x.double()).float()
    return x.clamp(0.0, 255.0)


def resize_for_inception(images: torch.Tensor, mode: str) -> torch.Tensor:
    """[0, 1] float (N, 3, H, W) -> [0, 1] float32 (N, 3, 299, 299) with resize `mode` (see docs/metrics/fid.md)."""
    x = images.to(torch.float32)
    if mode == "clean":
        return pil_bicubic_resize(x * 255.0) / 255.0
    if mode == "legacy_pytorch":
        return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    raise BadInputError(f"unknown FID resize mode '{mode}': use one of {', '.join(RESIZE_MODES)}")


# ---------------------------------------------------------------------------------------------------------------
# Frechet distance


def _gaussian(mu: Any, sigma: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise BadInputError(f"{what}: mean must be (D,) and covariance (D, D); got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise BadInputError(f"{what}: mean or covariance contains NaN or infinite values")
    return mu, sigma


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64:

        ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))

    The trace term is computed without a general matrix square root. sigma1 sigma2 has the same eigenvalues as
    the symmetric PSD matrix sigma1^(1/2) sigma2 sigma1^(1/2); with sigma1 = V diag(w) V^T and R = V diag(sqrt(w))
    that is R^T sigma2 R up to an orthogonal change of basis, so tr((sigma1 sigma2)^(1/2)) = sum sqrt(eig(R^T sigma2
    R)). Eigenvalues of sigma1 below D * machine-eps * max(w) are rounding noise (covariances of fewer than D
    samples are singular) and are dropped with their vectors; negative eigenvalues of R^T sigma2 R are clipped to 0.
    This is two symmetric eigendecompositions (eigh), real throughout, where pytorch-fid calls scipy's `sqrtm`
    on the non-symmetric product (with an eps * I retry and an imaginary-part check); on well-conditioned
    covariances both agree to ~1e-12 relative, and this one stays accurate on the rank-deficient ones of small
    sets. A result below 0 (rounding, identical inputs) is returned as 0.
    """
    mu1, sigma1 = _gaussian(mu1, sigma1, "first Gaussian")
    mu2, sigma2 = _gaussian(mu2, sigma2, "second Gaussian")
    if mu1.shape != mu2.shape:
        raise BadInputError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    w, v = np.linalg.eigh(sigma1)
    keep = w > max(w[-1], 0.0) * sigma1.shape[0] * np.finfo(np.float64).eps
    root = v[:, keep] * np.sqrt(w[keep])
    inner = root.T @ sigma2 @ root
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Reference statistics files

# What a BasicSR/VQFR statistics .pth may contain besides plain containers: numpy arrays, dtypes and scalars.
# numpy 1.x pickles them under numpy.core, numpy 2.x under numpy._core.
_NUMPY_SAFE_GLOBALS: list[Any] = [
    np.ndarray,
    np.dtype,
    *sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdFD"}, key=str),
    *[
        (getattr(_np_multiarray, fn), f"{mod}.multiarray.{fn}")
        for fn in ("_reconstruct", "scalar")
        for mod in ("numpy.core", "numpy._core")
    ],
]

_KEY_PAIRS = (("mu", "sigma"), ("mean", "cov"))


def _unpickling_problem(exc: Exception) -> tuple[bool, str]:
    """(whether the file was refused for holding a non-array object, a one-line reason) from torch's message."""
    text = str(exc)
    found = re.search(r"GLOBAL (\S+)", text) or re.search(r"but got (<[^>]+>)", text)
    if found:
        return True, f"it contains a pickled {found.group(1)}, and only arrays are loaded (nothing was executed)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "operand" in ln or "load key" in ln), lines[-1] if lines else "unreadable")
    return False, detail


def _load_torch_stats(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused, reason = _unpickling_problem(exc)
        if refused:
            raise BadInputError(f"refusing FID statistics file {path}: {reason}") from None
        raise BadInputError(f"{path} is not a torch-saved FID statistics file ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInputError(f"{path} is not a torch-saved FID statistics file ({first})") from None


def _load_npz_stats(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInputError(f"{path} is not a .npz FID statistics file ({first})") from None


def load_reference_statistics(
    source: str | os.PathLike, dim: int | None = FEATURE_DIM
) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), cov (D, D)) in float64 from a statistics name (`ffhq512`) or file.

    `.npz`: keys `mu`/`sigma` (pytorch-fid `save_fid_stats`, clean-fid) or `mean`/`cov`; pickled arrays refused.
    `.pth`/`.pt`: the BasicSR/VQFR layout `torch.save({'name', 'size', 'mean': ndarray, 'cov': ndarray})` (tensors
    also accepted), read with `torch.load(weights_only=True)` allowing only numpy arrays, dtypes and scalars, so a
    file with any other pickled object is refused without running it. `dim`: the required D (None: any).
    Every problem raises a one-line BadInputError naming the file.
    """
    text = str(source)
    if text in NAMED_STATISTICS:
        path = weights.require(NAMED_STATISTICS[text].weights)
    else:
        path = Path(text)
        if not path.is_file():
            raise BadInputError(f"FID statistics file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        data: Any = _load_npz_stats(path)
    elif suffix in (".pth", ".pt"):
        data = _load_torch_stats(path)
    else:
        raise BadInputError(f"{path}: FID statistics must be a .npz or .pth file")
    if not isinstance(data, dict):
        raise BadInputError(f"{path} holds a {type(data).__name__}, not a dict of FID statistics (mean, cov)")
    pair = next(((m, c) for m, c in _KEY_PAIRS if m in data and c in data), None)
    if pair is None:
        keys = ", ".join(map(str, data)) or "none"
        raise BadInputError(f"{path} has keys [{keys}]; FID statistics need 'mu' and 'sigma', or 'mean' and 'cov'")
    arrays = []
    for key in pair:
        value = data[key]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            raise BadInputError(f"{path}: '{key}' must be a numeric array; got {type(value).__name__}")
        arrays.append(value.astype(np.float64))
    mean, cov = arrays
    if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise BadInputError(f"{path}: '{pair[0]}' must be (D,) and '{pair[1]}' (D, D); got {mean.shape}, {cov.shape}")
    if dim is not None and mean.shape[0] != dim:
        raise BadInputError(f"{path}: statistics of {mean.shape[0]}-d features; FID Inception pool3 needs {dim}")
    if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
        raise BadInputError(f"{path}: the statistics contain NaN or infinite values")
    return mean, cov


# ---------------------------------------------------------------------------------------------------------------
# The metric


@contextlib.contextmanager
def _exact_fp32(device: torch.device) -> Iterator[None]:
    """On CUDA, turn TF32 off for convolutions and matmuls for the duration (restored afterwards), so GPU features
    match CPU ones to float32 rounding. A no-op elsewhere."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class FID(DistributionMetric):
    """Frechet Inception Distance of a group of restored images to a reference (see docs/metrics/fid.md).

    `FID(device, ref='gt', resize='auto', batch_size=16)`: `ref` is `gt`, `ffhq512` or a statistics file;
    `resize` is `clean`, `legacy_pytorch` or `auto` (= `clean` for gt, `legacy_pytorch` for ffhq512 and files;
    `clean` with ffhq512 is refused, those statistics were made with bilinear resizing). The Inception weights
    (`pt_inception`) and, for `ffhq512`, the statistics file must be installed; otherwise MissingWeightsError.

    The caller accumulates `features(images)` per group in `FeatureStatistics` and calls `distance` with the
    reference mean and covariance: the GT group's statistics for `ref=gt`, `reference_statistics()` otherwise.
    """

    dim = FEATURE_DIM

    def __init__(
        self,
        device: torch.device | str = "cpu",
        ref: str | os.PathLike = "gt",
        resize: str | None = AUTO,
        batch_size: int = 16,
    ) -> None:
        super().__init__(device)
        self.reference = ReferenceSource.parse(ref)
        self.resize = self.reference.resolve_resize(resize)
        if int(batch_size) < 1:
            raise BadInputError(f"FID batch_size must be at least 1; got {batch_size}")
        self.batch_size = int(batch_size)
        self.reference_path = self.reference.locate()  # MissingWeightsError now rather than after the features
        self.weights_path = weights.require("pt_inception")
        self.model = load_fid_inception(self.weights_path, self.device)
        self._reference_stats: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def column_name(self) -> str:
        """`fid[gt]`, `fid[ffhq512]` or `fid[<statistics file stem>]`."""
        return f"fid[{self.reference.label}]"

    @property
    def weights_sha256(self) -> str:
        return weights.sha256_file(self.weights_path)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float RGB in [0, 1], any H and W -> (N, 2048) float32 pool3 features on `self.device`."""
        if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[:2] == (0, 3):
            return torch.zeros(0, self.dim, dtype=torch.float32, device=self.device)
        check_images(images)
        out = []
        with torch.no_grad(), _exact_fp32(self.device):
            self.model.eval()
            for start in range(0, images.shape[0], self.batch_size):
                chunk = images[start : start + self.batch_size].to(self.device, torch.float32)
                out.append(self.model(resize_for_inception(chunk, self.resize)))
        return torch.cat(out).float()

    def cache_key(self) -> dict[str, Any]:
        """Everything that changes the features of a given image (the reference does not)."""
        return {"metric": "fid", **self.extractor_key()}

    def extractor_key(self) -> dict[str, Any]:
        return {
            "extractor": EXTRACTOR,
            "feature_dim": self.dim,
            "weights": Path(self.weights_path).name,
            "weights_sha256": self.weights_sha256,
            "resize": self.resize,
            "resize_detail": RESIZE_MODES[self.resize],
            "resolution": f"any input size -> {INPUT_SIZE}x{INPUT_SIZE}",
            "precision": "float32 (no TF32, no half precision)",
        }

    def reference_statistics(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, cov) of a named or file reference, loaded once; None for `ref=gt`."""
        if self.reference_path is None:
            return None
        if self._reference_stats is None:
            self._reference_stats = load_reference_statistics(self.reference_path, self.dim)
        return self._reference_stats

    def distance(self, pred: FeatureStatistics, ref_mean: np.ndarray, ref_cov: np.ndarray) -> float:
        """FID between the accumulated restored-image features and the reference mean and covariance."""
        return frechet_distance(pred.mean, pred.cov, ref_mean, ref_cov)


def _reference_weights(options: dict[str, Any]) -> tuple[str, ...]:
    named = NAMED_STATISTICS.get(str(options.get("ref")))
    return (named.weights,) if named else ()


_REFERENCE_TEXT = (
    "pytorch-fid 0.3.0 InceptionV3 pool3 + Frechet distance (legacy_pytorch mode); clean-fid 0.1.35 'clean' resize"
)


def _spec(ref: str | None) -> MetricSpec:
    """`fid` (reference from the `ref` option, `--fid-ref`), or `fid[<ref>]` with the reference fixed, as the
    protocols name them (`fid[ffhq512]`, `fid[gt]`)."""
    if ref is None:
        name, options = "fid", {"ref": "gt", "resize": AUTO}
        what = (
            "Frechet Inception Distance of the restored set to a reference (ref=gt: the GT images; ffhq512: "
            "BasicSR's FFHQ-512 statistics; or a .npz/.pth statistics file); reported as fid[<ref>]"
        )
    else:
        name, options = f"fid[{ref}]", {"resize": AUTO}
        what = f"FID against {'the GT images' if ref == 'gt' else NAMED_STATISTICS[ref].description}"
    return MetricSpec(
        name=name,
        family="fid",
        backend="inception",
        kind=MetricKind.DISTRIBUTION,
        higher_is_better=False,
        reference=_REFERENCE_TEXT,
        build=(lambda device, **opts: FID(device, **opts))
        if ref is None
        else (lambda device, **o: FID(device, ref, **o)),
        description=what,
        weights=("pt_inception", *_reference_weights({"ref": ref})),
        options=options,
        value_range=(0.0, math.inf),
        option_weights=_reference_weights if ref is None else None,
        label="FID",
        role="quality",
        gt_set=ref == "gt",
    )


SPEC = register(_spec(None))
REFERENCE_SPECS = {ref: register(_spec(ref)) for ref in ("gt", *NAMED_STATISTICS)}
FID.spec = SPEC
