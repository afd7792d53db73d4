"""The weights registry: every downloadable file with its URLs, sha256, size and licence, and its cache path.

Files live in `$CFBENCH_HOME/weights/` (default `~/.cache/cfbench/weights/`). Nothing is downloaded implicitly:
`fetch` is called by `cfbench weights fetch`; everything else uses `require`, which raises MissingWeightsError naming
the file, its URL and the exact path to put it. Where a sha256 could not be pinned (the official CodeFormer release
publishes none), the first hash seen is recorded beside the file (`<file>.sha256`) and checked from then on; files
published under the torch-hub / BasicSR naming convention (`name-<first 8 hex of sha256>.pth`) are checked against
that prefix.

Files that ship inside an installed package (the `lpips` linear heads) are found there, not copied; files that
torch hub already downloaded (`$TORCH_HOME/hub/checkpoints/`) are used where they are.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import importlib.util
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cfbench.atomic import atomic_path
from cfbench.errors import CfbenchError, HashMismatchError, MissingWeightsError
from cfbench.registry import Registry

CODEFORMER_RELEASE = "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/"
PYIQA_WEIGHTS = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"  # pyiqa's get_url_from_name
PYIQA_RELEASE = "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/"
PYIQA_LICENCE = "pyiqa weights (repository PolyForm Noncommercial 1.0.0; each model's own licence applies)"
S_LAB = "S-Lab License 1.0 (non-commercial use only)"


@dataclass(frozen=True)
class WeightsFile:
    """A registered weights file. `sha256=None` means no hash could be pinned from a trustworthy source."""

    name: str
    filename: str
    urls: tuple[str, ...]
    licence: str
    description: str
    sha256: str | None = None
    size: int | None = None
    model: str | None = None  # the model variant these weights load into, for checkpoints
    bundled: bool = False  # shipped inside the package (cfbench/weights_bundled/), never downloaded
    sha256_prefix: str | None = None  # the hash prefix in the published file name (torch hub / BasicSR convention)
    package_file: tuple[str, str] | None = None  # (installed package, path inside it) where the file ships
    torch_hub: bool = False  # also look in $TORCH_HOME/hub/checkpoints (torchvision and pytorch-fid put it there)
    page: str | None = None  # where to download it by hand when there is no direct URL
    # the folder under torch hub's dir ($TORCH_HOME/hub/<hub_dir>) where the library that loads the file looks
    # (pyiqa: 'pyiqa', its CLIP: 'clip'): the file lives, and is imported, there rather than in our cache
    hub_dir: str | None = None


WEIGHTS: Registry[WeightsFile] = Registry("weights file")

for _entry in (
    WeightsFile(
        "codeformer",
        "codeformer.pth",
        (CODEFORMER_RELEASE + "codeformer.pth",),
        S_LAB,
        "official CodeFormer (stage III), key params_ema; about 376 MB",
        model="codeformer",
    ),
    WeightsFile(
        "vqgan_code1024",
        "vqgan_code1024.pth",
        (CODEFORMER_RELEASE + "vqgan_code1024.pth",),
        S_LAB,
        "official stage-I VQGAN, codebook 1024 x 256, key params_ema",
        model="vqgan",
    ),
    WeightsFile(
        "codeformer_stage2",
        "codeformer_stage2.pth",
        (CODEFORMER_RELEASE + "codeformer_stage2.pth",),
        S_LAB,
        "official CodeFormer after stage II (w = 0 only is meaningful), key params_ema",
        model="codeformer",
    ),
    WeightsFile(
        "pt_inception",
        "pt_inception-2015-12-05-6726825d.pth",
        ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",),
        "Apache-2.0 (pytorch-fid port of the TensorFlow FID Inception, 2015-12-05)",
        "FID InceptionV3 (pytorch-fid weights, 1008 classes); pool3 features for FID",
        sha256_prefix="6726825d",
        torch_hub=True,
    ),
    WeightsFile(
        "fid_stats_ffhq512",
        "inception_FFHQ_512-f7b384ab.pth",
        (),
        "statistics of FFHQ (CC BY-NC-SA 4.0 images) published by BasicSR (Apache-2.0)",
        "FID reference statistics (mean, cov) of pytorch-fid Inception pool3 on 50,000 FFHQ faces at 512x512",
        sha256_prefix="f7b384ab",
        page="https://github.com/XPixelGroup/BasicSR/blob/master/docs/Metrics.md (Google Drive link there)",
    ),
    WeightsFile(
        "alexnet",
        "alexnet-owt-7be5be79.pth",
        ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
        "BSD-3-Clause (torchvision ImageNet weights)",
        "torchvision AlexNet ImageNet weights: the LPIPS[alex] backbone",
        sha256_prefix="7be5be79",
        torch_hub=True,
    ),
    WeightsFile(
        "vgg16",
        "vgg16-397923af.pth",
        ("https://download.pytorch.org/models/vgg16-397923af.pth",),
        "BSD-3-Clause (torchvision ImageNet weights)",
        "torchvision VGG16 ImageNet weights: the LPIPS[vgg] backbone",
        sha256_prefix="397923af",
        torch_hub=True,
    ),
    WeightsFile(
        "lpips_alex_lin",
        "lpips_v0.1_alex.pth",
        ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",),
        "BSD-2-Clause (lpips)",
        "LPIPS v0.1 linear heads for AlexNet (ships in the lpips package)",
        package_file=("lpips", "weights/v0.1/alex.pth"),
    ),
    WeightsFile(
        "lpips_vgg_lin",
        "lpips_v0.1_vgg.pth",
        ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",),
        "BSD-2-Clause (lpips)",
        "LPIPS v0.1 linear heads for VGG16 (ships in the lpips package)",
        package_file=("lpips", "weights/v0.1/vgg.pth"),
    ),
    WeightsFile(
        "niqe_pris_params",
        "niqe_pris_params.npz",
        (),
        "Apache-2.0 (BasicSR; parameters from the MATLAB NIQE release), see weights_bundled/SOURCES.md",
        "NIQE pristine multivariate Gaussian (mu, cov) and the 7x7 Gaussian window",
        bundled=True,
    ),
    WeightsFile(
        "codeformer_tiny",
        "codeformer_tiny.safetensors",
        (),
        "MIT (trained by cfbench on the faces listed in its model card)",
        "small demo CodeFormer trained on CPU by cfbench train; see cfbench/weights_bundled/codeformer_tiny.card.yaml",
        bundled=True,
    ),
    WeightsFile(
        "dlib_shape_predictor_68",
        "shape_predictor_68_face_landmarks.dat",
        (),
        "trained by dlib (Boost) on iBUG 300-W, whose licence excludes commercial use",
        "dlib 68-point face landmark predictor (iBUG 300-W order); ships in face-recognition-models",
        package_file=("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat"),
        page="https://pypi.org/project/face-recognition-models/ (pip install face-recognition-models)",
    ),
    WeightsFile(
        "dlib_shape_predictor_5",
        "shape_predictor_5_face_landmarks.dat",
        (),
        "CC0 (dlib models)",
        "dlib 5-point face landmark predictor (eye corners, nose bottom); ships in face-recognition-models",
        package_file=("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat"),
        page="https://pypi.org/project/face-recognition-models/ (pip install face-recognition-models)",
    ),
    WeightsFile(
        "dlib_face_recognition_resnet",
        "dlib_face_recognition_resnet_model_v1.dat",
        (),
        "CC0 (dlib models)",
        "dlib 128-D face descriptor (ResNet metric learning); ships in face-recognition-models",
        package_file=("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"),
        page="https://pypi.org/project/face-recognition-models/ (pip install face-recognition-models)",
    ),
    WeightsFile(
        "dlib_mmod_detector",
        "mmod_human_face_detector.dat",
        (),
        "CC0 (dlib models)",
        "dlib mmod CNN face detector; ships in face-recognition-models",
        package_file=("face_recognition_models", "models/mmod_human_face_detector.dat"),
        page="https://pypi.org/project/face-recognition-models/ (pip install face-recognition-models)",
    ),
    WeightsFile(
        "arcface_resnet18",
        "arcface_resnet18.pth",
        ("https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth",),
        "GFPGAN release asset (repository Apache-2.0); trained by ronghuaiyang/arcface-pytorch, licence not verified",
        "ArcFace ResNet-18 (IRBlock, use_se=False, gray 128x128) of the GFPGAN/VQFR identity protocol; "
        "keys may carry a 'module.' prefix",
        model="arcface_resnet18",
    ),
    WeightsFile(
        "fan_wflw",
        "alignment_WFLW_4HG.pth",
        ("https://github.com/xinntao/facexlib/releases/download/v0.1.0/alignment_WFLW_4HG.pth",),
        "facexlib release asset (repository MIT); trained by AdaptiveWingLoss (Apache-2.0), licence not verified",
        "AdaptiveWing FAN, 4 hourglasses, WFLW 98 landmarks (key state_dict) of the VQFR LMD protocol",
    ),
    WeightsFile(
        "retinaface_resnet50",
        "detection_Resnet50_Final.pth",
        ("https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",),
        "facexlib release asset (repository MIT); trained by biubug6/Pytorch_Retinaface (MIT), licence not verified",
        "RetinaFace ResNet-50 face detector with five landmarks (cfbench.face.retinaface), the detector of "
        "CodeFormer's whole-photo pipeline",
        # the same hash and size in many independent pin lists (GFPGAN/CodeFormer deployment manifests)
        sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
        size=109497761,
    ),
    WeightsFile(
        "parsing_parsenet",
        "parsing_parsenet.pth",
        (
            "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
            CODEFORMER_RELEASE + "parsing_parsenet.pth",
        ),
        "facexlib release asset (repository MIT); trained by PSFRGAN (chaofengc/PSFRGAN), licence not verified",
        "ParseNet face parsing, 19 CelebAMask-HQ classes at 512x512 (cfbench.face.parsing): the paste-back mask of "
        "`cfbench restore --mask parsing`; the CodeFormer release holds the same file",
        # the same hash and size in many independent pin lists (GFPGAN/CodeFormer deployment manifests, a PKGBUILD)
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
        size=85331193,
    ),
    WeightsFile(
        "insightface_w600k_r50",
        "w600k_r50.onnx",
        (
            "https://huggingface.co/public-data/insightface/resolve/main/models/buffalo_l/w600k_r50.onnx",
            "https://huggingface.co/deepghs/insightface/resolve/main/buffalo_l/w600k_r50.onnx",
        ),
        "insightface pretrained models: non-commercial research use only (the code is MIT)",
        "insightface buffalo_l ArcFace R50 (WebFace600K, 512-D), ONNX, of identity_cos/deg[insightface]; mirrors of "
        "the file inside the official pack (page), the hash pins the same bytes",
        # the same hash and size in many independent pin lists of the buffalo_l pack's w600k_r50.onnx
        sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
        size=174383860,
        page="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip (unzip w600k_r50.onnx)",
    ),
    WeightsFile(
        "vgg19",
        "vgg19-dcbb9e9d.pth",
        ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",),
        "BSD-3-Clause (torchvision ImageNet weights)",
        "torchvision VGG19 ImageNet weights: the `perceptual: vgg19` training loss (cfbench/train/losses.py)",
        sha256_prefix="dcbb9e9d",
        torch_hub=True,
    ),
    WeightsFile(
        "fid_stats_ffhq70k_clean",
        "ffhq_clean_trainval70k_512.npz",
        (
            PYIQA_WEIGHTS + "ffhq_clean_trainval70k_512.npz",
            "https://www.cs.cmu.edu/~clean-fid/stats/ffhq_clean_trainval70k_512.npz",
        ),
        "statistics of FFHQ (CC BY-NC-SA 4.0 images) published by clean-fid (MIT) and mirrored by pyiqa",
        "FID reference statistics (mu, sigma) of clean-fid's Inception pool3 on all 70,000 FFHQ faces at 512x512 "
        "with the clean (PIL bicubic) resize: `fid[ffhq70k]`, the reference of pyiqa's `fid` on faces",
        hub_dir="pyiqa",
    ),
    WeightsFile(
        "pyiqa_dists",
        "DISTS_weights-f5e65c96.pth",
        (PYIQA_WEIGHTS + "DISTS_weights-f5e65c96.pth", PYIQA_RELEASE + "DISTS_weights-f5e65c96.pth"),
        PYIQA_LICENCE,
        "DISTS alpha/beta weights of pyiqa's `dists` (with the torchvision VGG16 backbone `vgg16`)",
        sha256_prefix="f5e65c96",
        hub_dir="pyiqa",
    ),
    WeightsFile(
        "pyiqa_musiq_koniq",
        "musiq_koniq_ckpt-e95806b9.pth",
        (PYIQA_WEIGHTS + "musiq_koniq_ckpt-e95806b9.pth", PYIQA_RELEASE + "musiq_koniq_ckpt-e95806b9.pth"),
        PYIQA_LICENCE,
        "MUSIQ trained on KonIQ-10k: pyiqa's `musiq`",
        sha256_prefix="e95806b9",
        hub_dir="pyiqa",
    ),
    WeightsFile(
        "pyiqa_maniqa_koniq",
        "ckpt_koniq10k.pt",
        (PYIQA_WEIGHTS + "ckpt_koniq10k.pt", PYIQA_RELEASE + "ckpt_koniq10k.pt"),
        PYIQA_LICENCE,
        "MANIQA trained on KonIQ-10k: pyiqa's `maniqa` (its timm ViT-B/8 backbone comes from the Hugging Face hub)",
        hub_dir="pyiqa",
    ),
    WeightsFile(
        "pyiqa_topiq_nr_face",
        "topiq_nr_cgfiqa_res50-0a8b8e4f.pth",
        (PYIQA_WEIGHTS + "topiq_nr_cgfiqa_res50-0a8b8e4f.pth", PYIQA_RELEASE + "topiq_nr_cgfiqa_res50-0a8b8e4f.pth"),
        PYIQA_LICENCE,
        "TOPIQ-NR trained on CGFIQA-40k faces: pyiqa's `topiq_nr-face` (its timm ResNet-50 backbone comes from the "
        "Hugging Face hub)",
        sha256_prefix="0a8b8e4f",
        hub_dir="pyiqa",
    ),
    WeightsFile(
        "clip_rn50",
        "RN50.pt",
        (
            "https://openaipublic.azureedge.net/clip/models/"
            "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
        ),
        "MIT (OpenAI CLIP)",
        "OpenAI CLIP ResNet-50 (TorchScript): the backbone of pyiqa's `clipiqa`",
        sha256="afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
        hub_dir="clip",
    ),
):
    WEIGHTS.add(_entry.name, _entry)

BUNDLED_DIR = Path(__file__).resolve().parent / "weights_bundled"


def cfbench_home() -> Path:
    """`$CFBENCH_HOME`, default `~/.cache/cfbench`."""
    return Path(os.environ.get("CFBENCH_HOME") or Path.home() / ".cache" / "cfbench")


def weights_dir() -> Path:
    return cfbench_home() / "weights"


def weights_path(name: str) -> Path:
    """Where the registered file `name` lives: the cache, the package for bundled files, or the torch-hub folder
    of the library that loads it (`hub_dir`), present or not."""
    entry = WEIGHTS.get(name)
    if entry.hub_dir:
        return Path(torch.hub.get_dir()) / entry.hub_dir / entry.filename
    return (BUNDLED_DIR if entry.bundled else weights_dir()) / entry.filename


def _package_path(package: str, relative: str) -> Path | None:
    """The file inside an installed package, located without importing the package (its import may be heavy)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    roots = list(spec.submodule_search_locations or []) if spec else []
    return next((Path(r) / relative for r in roots if (Path(r) / relative).is_file()), None)


def candidate_paths(name: str) -> list[Path]:
    """Every place `name` is looked for, in order: our cache (or the package for bundled files), the installed
    package that ships it, torch hub's checkpoint folder."""
    entry = WEIGHTS.get(name)
    paths = [weights_path(name)]
    if entry.package_file and (found := _package_path(*entry.package_file)):
        paths.append(found)
    if entry.torch_hub:
        paths.append(Path(torch.hub.get_dir()) / "checkpoints" / entry.filename)
    return paths


def locate(name: str) -> Path | None:
    """The first existing file of `candidate_paths(name)`, or None."""
    return next((p for p in candidate_paths(name) if p.is_file()), None)


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file, hashed once per process while its size and modification time stay the same (eval
    provenance, the FID cache key and the regression gate all ask for the same large weights files)."""
    st = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def hash_matches(name: str, digest: str) -> bool | None:
    """Whether `digest` is the right sha256 for `name` (True/False), or None when nothing is known to compare."""
    entry = WEIGHTS.get(name)
    want = expected_hash(name)
    if want is not None:
        return digest == want
    return digest.startswith(entry.sha256_prefix) if entry.sha256_prefix else None


def _recorded_hash(path: Path) -> str | None:
    side = path.with_name(path.name + ".sha256")
    return side.read_text().split()[0] if side.is_file() else None


def expected_hash(name: str) -> str | None:
    """The pinned sha256, else the one recorded when the file was first imported or fetched."""
    entry = WEIGHTS.get(name)
    return entry.sha256 or _recorded_hash(weights_path(name))


def missing_message(name: str) -> str:
    """One line: the registered file `name` is missing, where it comes from, where it must go and the commands
    that put it there."""
    entry, path = WEIGHTS.get(name), weights_path(name)
    if entry.bundled:
        return f"bundled weights '{entry.name}' are missing from the installation ({path}); reinstall cfbench"
    source = entry.urls[0] if entry.urls else entry.page
    online = f"; online, `cfbench weights fetch {entry.name}`" if entry.urls else ""
    return (
        f"weights '{entry.name}' are missing: download {entry.filename} from {source} and put it at {path} "
        f"(or run `cfbench weights import {entry.name} FILE`{online})"
    )


def require(name: str) -> Path:
    """The path of `name` (see `candidate_paths`); raise MissingWeightsError (file, URL, destination) if absent."""
    path = locate(name)
    if path is None:
        raise MissingWeightsError(missing_message(name))
    return path


def verify(name: str) -> tuple[bool | None, str]:
    """Hash the file: (True/False against the expected hash or prefix, or None when none is known; the sha256)."""
    digest = sha256_file(require(name))
    return hash_matches(name, digest), digest


def _check_install(name: str, source: str | os.PathLike, digest: str) -> WeightsFile:
    """The entry of `name` if a file with sha256 `digest` (from `source`) may be installed as it, else raise."""
    entry = WEIGHTS.get(name)
    if entry.bundled:
        raise MissingWeightsError(
            f"'{name}' ships inside the package and cannot be replaced; import other weights by path"
        )
    if hash_matches(name, digest) is False:
        want = expected_hash(name) or f"{entry.sha256_prefix}..."
        raise HashMismatchError(
            f"{source} has sha256 {digest}, but '{name}' must have {want}; the file is not {entry.filename}"
        )
    return entry


def _record_hash(entry: WeightsFile, dest: Path, digest: str) -> None:
    """Files with no pinned hash or prefix: record the first hash seen, which `verify` checks from then on."""
    if entry.sha256 is None and entry.sha256_prefix is None:
        dest.with_name(dest.name + ".sha256").write_text(f"{digest}  {entry.filename}\n")


ContentCheck = Callable[[str, Path], None]  # (name, file) -> None, or raise: `cfbench.weights_check.check_content`


def import_file(name: str, source: str | os.PathLike, check: ContentCheck | None = None) -> Path:
    """Copy a file the user downloaded elsewhere into the cache after checking its hash and, with `check`, its
    content (what an unpinned name records is then known to be the right kind of file); returns the cached path."""
    source = Path(source)
    if not source.is_file():
        raise MissingWeightsError(f"file to import not found: {source}")
    digest = sha256_file(source)
    entry = _check_install(name, source, digest)
    if check is not None:
        check(name, source)
    dest = weights_path(name)
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
    _record_hash(entry, dest, digest)
    return dest


def partial_path(name: str) -> Path:
    """Where an interrupted download of `name` is kept until `fetch` resumes it."""
    dest = weights_path(name)
    return dest.with_name(dest.name + ".part")


def _download(url: str, part: Path, progress: Callable[[int, int | None], None] | None, timeout: float) -> None:
    """Stream `url` into `part`, continuing after the bytes already there when the server honours a Range request
    (HTTP 206); otherwise from the start."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        if getattr(resp, "status", None) != 206:
            have = 0
        length = int(resp.headers.get("Content-Length") or 0)
        total = have + length if length else None
        done = have
        with open(part, "ab" if have else "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise ConnectionError(f"the connection closed after {done} of {total} bytes; fetch again to resume")


def fetch(
    name: str,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
    check: ContentCheck | None = None,
) -> Path:
    """Download `name` (trying each URL), check its hash (and, with `check`, its content) and move it into the
    cache; no-op if already present. The download goes into `partial_path(name)`, which an interrupted fetch leaves
    for the next one to resume; it is renamed to the destination only once it passed the checks (a wrong file is
    deleted)."""
    entry = WEIGHTS.get(name)
    dest = weights_path(name)
    if entry.bundled or locate(name) is not None:
        return require(name)
    if not entry.urls:
        raise MissingWeightsError(missing_message(name) + "; it has no direct download URL")
    part = partial_path(name)
    errors = []
    for url in entry.urls:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            _download(url, part, progress, timeout)
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        digest = sha256_file(part)
        try:
            _check_install(name, url, digest)
            if check is not None:
                check(name, part)
        except CfbenchError:
            part.unlink()
            raise
        os.replace(part, dest)
        _record_hash(entry, dest, digest)
        return dest
    raise MissingWeightsError(f"could not download '{name}' ({'; '.join(errors)}); " + missing_message(name))
