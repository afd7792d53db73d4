"""Metric throughput at 512x512: cfbench's batched metrics against the reference implementations' per-image APIs.

    python benchmarks/bench_metrics.py [--images 8] [--batch 8] [--device auto|cpu|cuda]
        [--metrics psnr,ssim,psnr[y],lpips[alex],lpips[vgg],niqe,fid] [--pyiqa-python PATH] [--basicsr-src DIR]
        [--repeats 1] [--threads N] [--json PATH]

Images: the real faces of tests/data/metrics (restored = `lq/`, ground truth = `gt/`), repeated to --images. Every
implementation gets them already decoded, in the form its API takes (cfbench: float32 RGB NCHW [0, 1] batches of
--batch; pyiqa: (1, 3, H, W) [0, 1] tensors; the lpips package: [-1, 1] tensors; scikit-image and BasicSR: uint8 HWC
arrays), so file decoding is not timed. Each implementation is warmed up on a 256x256 crop, then times all images
(the best of --repeats passes). cfbench and the references of one metric are measured back to back, so the ratios
hold on a shared machine; the absolute images/s do not.

References, one image per call:

- pyiqa `create_metric(...)` (psnr, ssimc, psnry, lpips, lpips-vgg, niqe) when `import pyiqa` works here, or in the
  interpreter given by --pyiqa-python (a child process fed the same files; cfbench need not be installed there).
  LPIPS is built with `pretrained=False, pnet_rand=True` (random weights, no download: the time does not depend on
  the values, but its values are not comparable); NIQE gets the bundled pristine parameters as a .mat file and
  keeps pyiqa's default YIQ luma (so its values differ from BasicSR's, see cfbench/metrics/niqe.py). pyiqa's FID
  works on folders only, so FID has no pyiqa row.
- installed libraries: scikit-image `peak_signal_noise_ratio` / `structural_similarity` with BasicSR's settings
  (data_range 255; Gaussian window sigma 1.5, population covariance; `psnr[y]` on BasicSR's float32 BT.601 Y), the
  `lpips` package `LPIPS(net=...)`, pytorch-fid's `InceptionV3([3])` (pool3 features, its bilinear resize; the
  difference column compares it with cfbench's `legacy_pytorch` mode, the timing uses cfbench's default `clean`).
- BasicSR 1.4.2's numpy `calculate_psnr` / `calculate_ssim` / `calculate_niqe` from a source tree given by
  --basicsr-src (loaded by path, as scripts/golden_niqe.py does). Without it, the NIQE section quotes the earlier
  measurement of cfbench/metrics/niqe.py's helper.

Weights: the LPIPS backbones and the FID Inception are seeded random weights, written to a temporary
TORCH_HOME/hub/checkpoints under their registered file names (the lpips package's linear heads are the real ones),
with an empty temporary CFBENCH_HOME. cfbench, the lpips package and pytorch-fid load the same files, so their
values are compared in the "max abs diff" column.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "metrics"
NIQE_NPZ = ROOT / "cfbench" / "weights_bundled" / "niqe_pris_params.npz"
METRIC_NAMES = ("psnr", "ssim", "psnr[y]", "lpips[alex]", "lpips[vgg]", "niqe", "fid")
PYIQA_NAMES = {
    "psnr": "psnr",
    "ssim": "ssimc",  # pyiqa's `ssim` is on Y; `ssimc` on RGB
    "psnr[y]": "psnry",
    "lpips[alex]": "lpips",
    "lpips[vgg]": "lpips-vgg",
    "niqe": "niqe",
}
# The registered file names (cfbench/weights.py) of the networks that get seeded random weights.
SEEDED_FILES = {
    "alexnet": "alexnet-owt-7be5be79.pth",
    "vgg16": "vgg16-397923af.pth",
    "pt_inception": "pt_inception-2015-12-05-6726825d.pth",
}
NIQE_EARLIER = (
    "BasicSR 1.4.2 numpy calculate_niqe was not run (give --basicsr-src): the NIQE helper's measurement on this "
    "machine was 0.26 s per 512x512 image for BasicSR against 0.054 s for cfbench (4.8x)"
)
RESULT_TAG = "@@bench_metrics "
WARMUP_CROP = 256  # NIQE needs at least 192x192


# ---------------------------------------------------------------------------------------------------------------
# Seeded weights and temporary homes (also used by bench_eval.py)


def _seeded_backbone(net: str) -> dict[str, torch.Tensor]:
    """A seeded random torchvision backbone, `features.<i>` keys only (as tests/metrics/test_lpips.py makes it)."""
    import torchvision

    torch.manual_seed(1234)
    if net == "alexnet":
        features = torchvision.models.alexnet(weights=None).features
    else:  # only the features: VGG16's 120M-parameter classifier is never used
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    return {f"features.{k}": v for k, v in features.state_dict().items()}


def write_seeded_weights(torch_home: Path) -> Path:
    """Write the seeded LPIPS backbones and FID Inception into `torch_home`/hub/checkpoints; returns torch_home."""
    folder = torch_home / "hub" / "checkpoints"
    from cfbench.metrics.inception import seeded_inception_state

    folder.mkdir(parents=True, exist_ok=True)
    for name, filename in SEEDED_FILES.items():
        if not (folder / filename).is_file():
            state = seeded_inception_state() if name == "pt_inception" else _seeded_backbone(name)
            torch.save(state, folder / filename)
    return torch_home


@contextlib.contextmanager
def temporary_homes(seeded_weights: bool, link_weights_from: Path | None = None) -> Iterator[Path]:
    """A temporary directory with an empty CFBENCH_HOME (its `weights/` a link to `link_weights_from` when given)
    and, with `seeded_weights`, a TORCH_HOME holding the seeded files; both variables restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("CFBENCH_HOME", "TORCH_HOME")}
    with tempfile.TemporaryDirectory(prefix="cfbench-bench-") as tmp:
        root = Path(tmp)
        home = root / "cfbench_home"
        home.mkdir()
        if link_weights_from is not None and link_weights_from.is_dir():
            (home / "weights").symlink_to(link_weights_from.resolve(), target_is_directory=True)
        os.environ["CFBENCH_HOME"] = str(home)
        if seeded_weights:
            os.environ["TORCH_HOME"] = str(write_seeded_weights(root / "torch_home"))
        try:
            yield root
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def seeded_file(name: str) -> Path:
    return Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / SEEDED_FILES[name]


def host_description() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = platform.processor() or platform.machine()
    return (
        f"{cpu}, {os.cpu_count()} cores, load average {load:.2f} at start, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


# ---------------------------------------------------------------------------------------------------------------
# Images


def face_files() -> list[tuple[Path, Path]]:
    """(restored, gt) file pairs: tests/data/metrics lq/ and gt/, matched by name."""
    names = sorted(p.name for p in (DATA / "gt").glob("*.png") if (DATA / "lq" / p.name).is_file())
    return [(DATA / "lq" / n, DATA / "gt" / n) for n in names]


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, decoded as cfbench.imageio.read_image decodes it."""
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> float32 (3, H, W) in [0, 1], the same values as read_image."""
    return torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1).div_(255.0)


def load_images(files: list[tuple[Path, Path]], n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    decoded = [(read_rgb(p), read_rgb(g)) for p, g in files]
    pairs = [decoded[i % len(decoded)] for i in range(n)]
    return [p for p, _ in pairs], [g for _, g in pairs]


def _crop(x: torch.Tensor) -> torch.Tensor:
    return x[..., :WARMUP_CROP, :WARMUP_CROP].contiguous()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, Any]:
    """The smallest wall time of `repeats` calls of `fn` (synchronised on CUDA), and the last result."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best, out


# ---------------------------------------------------------------------------------------------------------------
# pyiqa: in this process, or in a child process running another interpreter


def pyiqa_measure(request: dict[str, Any]) -> dict[str, Any]:
    """Time pyiqa's per-image API on the files of `request`; imports only torch, numpy, cv2 and pyiqa."""
    import pyiqa

    if request.get("threads"):
        torch.set_num_threads(request["threads"])
    device = torch.device(request["device"])
    name = request["pyiqa_name"]
    opts: dict[str, Any] = {}
    if name.startswith("lpips"):
        import pyiqa.archs.lpips_arch as arch
        import torchvision

        # pyiqa 0.1.16 asks torchvision for the ImageNet backbone whatever `pnet_rand` says: build it random instead
        arch.models = SimpleNamespace(
            alexnet=lambda **_: torchvision.models.alexnet(weights=None),
            vgg16=lambda **_: torchvision.models.vgg16(weights=None),
        )
        opts = {"pretrained": False, "pnet_rand": True}
    elif name == "niqe":
        opts = {"pretrained_model_path": str(write_niqe_mat(Path(request["niqe_mat"])))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = pyiqa.create_metric(name, device=device, **opts)
    preds, gts = load_images([(Path(p), Path(g)) for p, g in request["files"]], request["n"])
    preds = [to_tensor(x)[None].to(device) for x in preds]
    gts = [to_tensor(x)[None].to(device) for x in gts]
    full_ref = metric.metric_mode == "FR"

    def call(p: torch.Tensor, g: torch.Tensor) -> float:
        return float((metric(p, g) if full_ref else metric(p)).flatten()[0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(_crop(preds[0]), _crop(gts[0]))
        seconds, values = best_time(
            lambda: [call(p, g) for p, g in zip(preds, gts, strict=True)], device, request["repeats"]
        )
    return {"seconds": seconds, "values": values, "label": f"pyiqa {pyiqa.__version__} create_metric('{name}')"}


def pyiqa_child() -> None:
    """Serve `pyiqa_measure` requests, one JSON object per stdin line; answers are tagged lines on stdout."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request.get("op") == "version":
                import pyiqa

                answer: dict[str, Any] = {"version": pyiqa.__version__, "torch": torch.__version__}
            else:
                answer = pyiqa_measure(request)
        except Exception as exc:  # reported to the parent, which prints it in the table
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(RESULT_TAG + json.dumps(answer), flush=True)


class Pyiqa:
    """pyiqa's per-image API, here or through `python` (a child process); `available` False with `why` otherwise."""

    def __init__(self, python: str | None, niqe_mat: Path) -> None:
        self.niqe_mat = niqe_mat
        self.child: subprocess.Popen | None = None
        self.errors = None
        self.why = ""
        try:
            import pyiqa

            self.available, self.where = True, f"pyiqa {pyiqa.__version__} in this interpreter"
            return
        except ImportError:
            self.available = False
        here = f"`import pyiqa` fails in {sys.executable}"
        if not python:
            self.why = f"{here}; no --pyiqa-python given, so there are no pyiqa rows"
            return
        self.errors = tempfile.TemporaryFile("w+")
        self.child = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--pyiqa-child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        answer = self._ask({"op": "version"})
        if "error" in answer:
            self.why = f"{here}, and in {python}: {answer['error']}"
            self.close()
            return
        self.available = True
        self.where = f"pyiqa {answer['version']} in {python} (torch {answer['torch']}), a child process"

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.child is not None and self.child.stdin is not None and self.child.stdout is not None
        try:
            self.child.stdin.write(json.dumps(request) + "\n")
            self.child.stdin.flush()
            for line in self.child.stdout:
                if line.startswith(RESULT_TAG):
                    return json.loads(line[len(RESULT_TAG) :])
        except (BrokenPipeError, OSError):
            pass
        assert self.errors is not None
        self.errors.seek(0)
        tail = " ".join(self.errors.read().strip().splitlines()[-2:])
        return {"error": f"the pyiqa child process ended ({tail or 'no message'})"}

    def measure(self, name: str, files: list[tuple[Path, Path]], n: int, device: str, repeats: int) -> dict:
        request = {
            "pyiqa_name": PYIQA_NAMES[name],
            "files": [[str(p), str(g)] for p, g in files],
            "n": n,
            "device": device,
            "repeats": repeats,
            "niqe_mat": str(self.niqe_mat),
            "threads": torch.get_num_threads(),
        }
        if self.child is not None:
            return self._ask(request)
        try:
            return pyiqa_measure(request)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    def close(self) -> None:
        if self.child is not None:
            with contextlib.suppress(OSError):
                self.child.stdin.close()
            self.child.wait(timeout=30)
            self.child = None


def write_niqe_mat(path: Path) -> Path:
    """pyiqa's `niqe_modelparameters.mat` layout (mu_prisparam, cov_prisparam) from the bundled npz (scipy is a pyiqa
    dependency, so this runs where pyiqa does)."""
    from scipy.io import savemat

    if path.is_file():
        return path
    params = np.load(NIQE_NPZ)
    savemat(path, {"mu_prisparam": params["mu_pris_param"], "cov_prisparam": params["cov_pris_param"]})
    return path


# ---------------------------------------------------------------------------------------------------------------
# cfbench and the installed reference libraries


@dataclass
class Inputs:
    """The same images in every API's form, for one device."""

    device: torch.device
    pred: torch.Tensor  # (N, 3, H, W) [0, 1] on device
    gt: torch.Tensor
    pred_rgb: list[np.ndarray]  # uint8 HWC RGB
    gt_rgb: list[np.ndarray]

    @property
    def n(self) -> int:
        return self.pred.shape[0]


@dataclass
class Reference:
    label: str
    call: Callable[[int], Any]  # image index -> value (a float, or a feature vector)
    warmup: Callable[[], Any]
    device: torch.device
    comparable: bool = True  # the values should equal cfbench's (same definition and weights)
    note: str = ""


def cfbench_metric(name: str, device: torch.device):
    """(object, batch function) for a cfbench metric; `fid` measures the Inception features."""
    if name == "fid":
        from cfbench.metrics.fid import FID

        fid = FID(device)
        return fid, lambda pred, gt: fid.features(pred)
    from cfbench.metrics import get_metric

    spec = get_metric(name)
    metric = spec.build(device)
    return metric, (lambda pred, gt: metric(pred, gt)) if spec.needs_gt else (lambda pred, gt: metric(pred))


def basicsr_y(rgb: np.ndarray) -> np.ndarray:
    """BasicSR's `to_y_channel` of a uint8 RGB image: float32 BT.601 Y on the 0-255 scale, not rounded."""
    w = np.array([65.481, 128.553, 24.966], np.float32)
    return ((rgb.astype(np.float32) / 255.0) @ w + 16.0) / 255.0 * 255.0


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def load_basicsr(src: Path):
    """BasicSR's numpy metric modules (niqe, psnr_ssim) loaded by path from a source tree."""
    spec = importlib.util.spec_from_file_location("_golden_niqe", ROOT / "scripts" / "golden_niqe.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    niqe = helper.load_basicsr_niqe(src)  # sets up the stand-in `basicsr` packages psnr_ssim needs as well
    name = "basicsr.metrics.psnr_ssim"
    spec = importlib.util.spec_from_file_location(name, src / "basicsr" / "metrics" / "psnr_ssim.py")
    psnr_ssim = importlib.util.module_from_spec(spec)
    sys.modules[name] = psnr_ssim
    spec.loader.exec_module(psnr_ssim)
    return niqe, psnr_ssim


def _lpips_package(net: str, device: torch.device):
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's `pretrained` deprecation
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    state = torch.load(seeded_file("alexnet" if net == "alex" else "vgg16"), map_location="cpu")
    with torch.no_grad():
        for pname, param in model.net.named_parameters():  # slice<k>.<features index>.<weight|bias>
            _, index, kind = pname.split(".")
            param.copy_(state[f"features.{index}.{kind}"])
    return model.eval().to(device)


def _skimage_refs(name: str, x: Inputs) -> list[Reference]:
    import skimage
    from skimage.metrics import peak_signal_noise_ratio as sk_psnr
    from skimage.metrics import structural_similarity as sk_ssim

    ssim_opts = {"channel_axis": 2, "data_range": 255, "gaussian_weights": True, "sigma": 1.5}
    ssim_opts["use_sample_covariance"] = False
    fn, call = {
        "psnr": (lambda a, b: sk_psnr(b, a, data_range=255), "peak_signal_noise_ratio(data_range=255)"),
        "ssim": (lambda a, b: sk_ssim(b, a, **ssim_opts), "structural_similarity(BasicSR settings)"),
        "psnr[y]": (
            lambda a, b: sk_psnr(basicsr_y(b), basicsr_y(a), data_range=255),
            "peak_signal_noise_ratio on BasicSR's Y",
        ),
    }[name]
    r0, s0 = x.pred_rgb[0][:WARMUP_CROP, :WARMUP_CROP], x.gt_rgb[0][:WARMUP_CROP, :WARMUP_CROP]
    return [
        Reference(
            f"scikit-image {skimage.__version__} {call}",
            lambda i: float(fn(x.pred_rgb[i], x.gt_rgb[i])),
            lambda: fn(r0, s0),
            x.device,
        )
    ]


def _basicsr_refs(name: str, x: Inputs, basicsr) -> list[Reference]:
    niqe_mod, ps = basicsr
    bgr = [np.ascontiguousarray(a[:, :, ::-1]) for a in x.pred_rgb]
    bgr_gt = [np.ascontiguousarray(a[:, :, ::-1]) for a in x.gt_rgb]
    b0, c0 = bgr[0][:WARMUP_CROP, :WARMUP_CROP].copy(), bgr_gt[0][:WARMUP_CROP, :WARMUP_CROP].copy()
    if name == "niqe":

        def niqe(img: np.ndarray) -> float:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)  # as BasicSR's scripts
                return float(niqe_mod.calculate_niqe(img, 0, input_order="HWC", convert_to="y"))

        label = "BasicSR 1.4.2 calculate_niqe(convert_to='y')"
        return [Reference(label, lambda i: niqe(bgr[i]), lambda: niqe(b0), x.device)]
    y = name == "psnr[y]"
    f = ps.calculate_ssim if name == "ssim" else ps.calculate_psnr
    label = f"BasicSR 1.4.2 {f.__name__}" + ("(test_y_channel=True)" if y else "")
    return [
        Reference(
            label,
            lambda i: float(f(bgr[i], bgr_gt[i], 0, input_order="HWC", test_y_channel=y)),
            lambda: f(b0, c0, 0, input_order="HWC", test_y_channel=y),
            x.device,
        )
    ]


def _lpips_refs(name: str, x: Inputs) -> list[Reference]:
    net = name[len("lpips[") : -1]
    model = _lpips_package(net, x.device)

    def lp(p: torch.Tensor, g: torch.Tensor) -> float:
        return float(model(p * 2 - 1, g * 2 - 1).flatten()[0])

    return [
        Reference(
            f"lpips {_version('lpips')} LPIPS(net='{net}')",
            lambda i: lp(x.pred[i : i + 1], x.gt[i : i + 1]),
            lambda: lp(_crop(x.pred[:1]), _crop(x.gt[:1])),
            x.device,
        )
    ]


def _pytorch_fid_refs(x: Inputs) -> list[Reference]:
    from pytorch_fid.inception import InceptionV3

    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(x.device).eval()
    return [
        Reference(
            f"pytorch-fid {_version('pytorch-fid')} InceptionV3([3]) features",
            lambda i: model(x.pred[i : i + 1])[0].flatten(1)[0],
            lambda: model(_crop(x.pred[:1])),
            x.device,
            note="diff against cfbench's legacy_pytorch resize; timed: cfbench's default clean resize",
        )
    ]


def references(name: str, x: Inputs, basicsr, notes: list[str]) -> list[Reference]:
    """The installed per-image references of metric `name` on `x.device` (numpy ones on the CPU only); a library
    that is not installed is noted and left out."""
    cpu = x.device.type == "cpu"
    makers: list[tuple[str, Callable[[], list[Reference]]]] = []
    if cpu and name in ("psnr", "ssim", "psnr[y]"):
        makers.append(("scikit-image", lambda: _skimage_refs(name, x)))
    if cpu and basicsr is not None and name in ("psnr", "ssim", "psnr[y]", "niqe"):
        makers.append(("BasicSR", lambda: _basicsr_refs(name, x, basicsr)))
    if name.startswith("lpips"):
        makers.append(("lpips", lambda: _lpips_refs(name, x)))
    if name == "fid":
        makers.append(("pytorch-fid", lambda: _pytorch_fid_refs(x)))
    refs: list[Reference] = []
    for library, make in makers:
        try:
            refs += make()
        except ImportError as exc:
            note = f"{library} is not installed here ({exc.name}): no {library} row for {name}"
            if note not in notes:
                notes.append(note)
    return refs


# ---------------------------------------------------------------------------------------------------------------
# The benchmark


def _max_diff(ours: torch.Tensor, ref: list[Any]) -> float:
    a = ours.detach().double().cpu()
    b = torch.stack([torch.as_tensor(v).detach().double().cpu() for v in ref])
    both_inf = torch.isinf(a) & torch.isinf(b) & (a == b)
    return float(torch.where(both_inf, 0.0, (a - b).abs()).max())


def _fmt_diff(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def run_device(
    device: torch.device, names: list[str], args, files, pyiqa: Pyiqa, basicsr, rows: list[dict], notes: list[str]
) -> None:
    from cfbench.errors import MissingWeightsError

    preds_rgb, gts_rgb = load_images(files, args.images)
    x = Inputs(
        device,
        torch.stack([to_tensor(a) for a in preds_rgb]).to(device),
        torch.stack([to_tensor(a) for a in gts_rgb]).to(device),
        preds_rgb,
        gts_rgb,
    )
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"## {label}: cfbench at batch {args.batch} against per-image references, {x.n} images 512x512")
    print("| metric | cfbench img/s | reference (one image per call) | reference img/s | cfbench / reference "
          "| max abs diff |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in names:
        try:
            metric, batch_fn = cfbench_metric(name, device)
        except MissingWeightsError as exc:
            print(f"| {name} | skipped | - | - | - | - |", flush=True)
            notes.append(f"cfbench {name} skipped: {exc}")
            continue
        b = args.batch

        def ours(batch_fn=batch_fn, b=b) -> torch.Tensor:
            return torch.cat([batch_fn(x.pred[i : i + b], x.gt[i : i + b]) for i in range(0, x.n, b)])

        with torch.inference_mode():
            batch_fn(_crop(x.pred[:1]), _crop(x.gt[:1]))
            seconds, values = best_time(ours, device, args.repeats)
            check = values
            if name == "fid":  # compare features with pytorch-fid's bilinear resize
                metric.resize = "legacy_pytorch"
                check = ours()
                metric.resize = "clean"
            refs = references(name, x, basicsr, notes)
            measured = []
            for ref in refs:
                ref.warmup()
                ref_seconds, ref_values = best_time(
                    lambda ref=ref: [ref.call(i) for i in range(x.n)], ref.device, args.repeats
                )
                diff = _max_diff(check, ref_values) if ref.comparable else None
                measured.append((ref.label, ref_seconds, diff, ref.note))
        if name in PYIQA_NAMES and pyiqa.available:
            got = pyiqa.measure(name, files, args.images, str(device), args.repeats)
            if "error" in got:
                notes.append(f"pyiqa {PYIQA_NAMES[name]} on {label}: {got['error']}")
            else:
                comparable = name in ("psnr", "psnr[y]", "ssim")
                why = "random LPIPS weights" if name.startswith("lpips") else "pyiqa's default YIQ luma"
                note = (
                    "pyiqa's own Y conversion" if name == "psnr[y]" else "" if comparable else f"not comparable: {why}"
                )
                diff = _max_diff(values, got["values"]) if comparable else None
                measured.insert(0, (got["label"], got["seconds"], diff, note))
        ips = x.n / seconds
        if not measured:
            measured.append(("-", None, None, ""))
        for ref_label, ref_seconds, diff, note in measured:
            ratio = ref_seconds / seconds if ref_seconds else None
            ref_ips = f"{x.n / ref_seconds:.2f}" if ref_seconds else "-"
            ratio_text = f"{ratio:.2f}x" if ratio else "-"
            shown = name + (" (features)" if name == "fid" else "")
            print(f"| {shown} | {ips:.2f} | {ref_label} | {ref_ips} | {ratio_text} | {_fmt_diff(diff)} |", flush=True)
            rows.append(
                {
                    "device": label,
                    "metric": name,
                    "images": x.n,
                    "cfbench_batch": b,
                    "cfbench_seconds": seconds,
                    "cfbench_images_per_s": ips,
                    "reference": ref_label,
                    "reference_seconds": ref_seconds,
                    "reference_images_per_s": x.n / ref_seconds if ref_seconds else None,
                    "ratio": ratio,
                    "max_abs_diff": diff,
                    "note": note,
                }
            )
        del metric
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="images per measurement (the test faces, repeated)")
    parser.add_argument("--batch", type=int, default=8, help="cfbench batch size")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: cpu, and cuda too")
    parser.add_argument("--metrics", default=",".join(METRIC_NAMES), help="comma-separated, from the default list")
    parser.add_argument("--pyiqa-python", help="an interpreter where `import pyiqa` works (if not this one)")
    parser.add_argument("--basicsr-src", type=Path, help="a BasicSR 1.4.2 source tree (the numpy references)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per implementation (the best counts)")
    parser.add_argument("--threads", type=int, help="torch CPU threads, here and in the pyiqa child (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--pyiqa-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pyiqa_child:
        pyiqa_child()
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    unknown = sorted(set(names) - set(METRIC_NAMES))
    if unknown:
        parser.error(f"unknown metric(s) {unknown}; choose from {','.join(METRIC_NAMES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu"]
    if args.device == "auto" and torch.cuda.is_available():
        devices.append("cuda")
    files = face_files()
    notes: list[str] = []
    rows: list[dict] = []
    host = host_description()
    print(f"host: {host}")
    print(f"faces: {len(files)} pairs from tests/data/metrics (lq = restored, gt), 512x512, repeated to {args.images}")
    with temporary_homes(seeded_weights=True) as tmp:
        pyiqa = Pyiqa(args.pyiqa_python, tmp / "niqe_modelparameters.mat")
        print(f"pyiqa: {pyiqa.where if pyiqa.available else pyiqa.why}")
        notes.append(f"pyiqa: {pyiqa.where if pyiqa.available else pyiqa.why}")
        basicsr = load_basicsr(args.basicsr_src) if args.basicsr_src else None
        if "niqe" in names and basicsr is None:
            notes.append(NIQE_EARLIER)
        notes.append("LPIPS backbones and FID Inception: seeded random weights (timing does not depend on values)")
        print("weights: seeded random LPIPS backbones and FID Inception in a temporary TORCH_HOME")
        print()
        try:
            for device in devices:
                if device == "cpu" and "cuda" in devices:
                    print("(no CUDA row for the numpy references: scikit-image and BasicSR run on the CPU only)")
                run_device(torch.device(device), names, args, files, pyiqa, basicsr, rows, notes)
        finally:
            pyiqa.close()
    if "cuda" not in devices:
        notes.append("no CUDA device: the GPU section is not measured")
    for note in notes:
        print(f"- {note}")
    if args.json:
        report = {
            "benchmark": "bench_metrics",
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": host,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
            "rows": rows,
            "notes": notes,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
