"""The table of registered weights files: every downloadable or shipped file with its URLs, sha256, size, licence
and where else it may already be (an installed package, torch hub). Where files live, and how they are found,
checked, imported and fetched: `cfbench.weights`."""

from __future__ import annotations

from dataclasses import dataclass

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


def pyiqa_release(name: str, filename: str, description: str, sha256_prefix: str | None = None) -> WeightsFile:
    """A file of pyiqa's weights release: on its Hugging Face mirror and its GitHub release, under pyiqa's licence,
    and loaded by pyiqa from $TORCH_HOME/hub/pyiqa."""
    urls = (PYIQA_WEIGHTS + filename, PYIQA_RELEASE + filename)
    return WeightsFile(name, filename, urls, PYIQA_LICENCE, description, sha256_prefix=sha256_prefix, hub_dir="pyiqa")


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
    pyiqa_release(
        "pyiqa_dists",
        "DISTS_weights-f5e65c96.pth",
        "DISTS alpha/beta weights of pyiqa's `dists` (with the torchvision VGG16 backbone `vgg16`)",
        sha256_prefix="f5e65c96",
    ),
    pyiqa_release(
        "pyiqa_musiq_koniq",
        "musiq_koniq_ckpt-e95806b9.pth",
        "MUSIQ trained on KonIQ-10k: pyiqa's `musiq`",
        sha256_prefix="e95806b9",
    ),
    pyiqa_release(
        "pyiqa_maniqa_koniq",
        "ckpt_koniq10k.pt",
        "MANIQA trained on KonIQ-10k: pyiqa's `maniqa` (its timm ViT-B/8 backbone comes from the Hugging Face hub)",
    ),
    pyiqa_release(
        "pyiqa_topiq_nr_face",
        "topiq_nr_cgfiqa_res50-0a8b8e4f.pth",
        "TOPIQ-NR trained on CGFIQA-40k faces: pyiqa's `topiq_nr-face` (its timm ResNet-50 backbone comes from the "
        "Hugging Face hub)",
        sha256_prefix="0a8b8e4f",
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
