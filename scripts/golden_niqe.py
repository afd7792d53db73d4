"""Regenerate tests/data/reference/niqe_golden.json: NIQE values of BasicSR 1.4.2 (and pyiqa, if installed).

Run it with a scratch environment that has the reference libraries, never cfbench's own venv:

    python3 -m venv /tmp/niqe-ref
    /tmp/niqe-ref/bin/pip install numpy scipy opencv-python-headless torch==2.14.1
    /tmp/niqe-ref/bin/pip download basicsr==1.4.2 --no-deps --no-binary :all: --no-build-isolation -d /tmp/bsr
    tar xzf /tmp/bsr/basicsr-1.4.2.tar.gz -C /tmp/bsr
    /tmp/niqe-ref/bin/python scripts/golden_niqe.py --basicsr-src /tmp/bsr/basicsr-1.4.2

BasicSR's package `__init__` imports its whole training stack (which breaks with current torchvision), so the five
files NIQE needs are loaded by path under an empty stand-in `basicsr` package. Images are read as BasicSR reads
them (`cv2.imread(path, cv2.IMREAD_UNCHANGED)`, BGR uint8 HWC) and scored with
`calculate_niqe(img, crop_border, input_order='HWC', convert_to='y')`, the call of BasicSR's and VQFR's scripts.

BasicSR's values carry the float32 rounding of its computation, and its torch `imresize` goes through MKL's
`sgemv`, whose summation order depends on the CPU code path MKL picks. The script therefore scores the cases a second
time in a child process with `MKL_CBWR=COMPATIBLE` (MKL's conditional numerical reproducibility) and records how far
the two runs of the same BasicSR code differ (`basicsr_mkl_compatible`).

With `--pyiqa`, pyiqa's `niqe` is run too (`pyiqa.create_metric('niqe', device='cpu')` on RGB float [0, 1]
tensors from the same files), and once more with `color_space='ycbcr'` (BasicSR's luma instead of pyiqa's default
YIQ); offline it needs `niqe_modelparameters.mat` in its cache (`$TORCH_HOME/hub/pyiqa/`), which `--pyiqa-mat`
writes from the bundled npz (keys mu_prisparam, cov_prisparam) when missing.
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
import time
import types
import warnings
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "metrics"
OUT = ROOT / "tests" / "data" / "reference" / "niqe_golden.json"
NPZ = ROOT / "cfbench" / "weights_bundled" / "niqe_pris_params.npz"

# (file relative to tests/data/metrics, crop_border, rows, cols): rows/cols slice the image before scoring (None =
# whole image); the slices give a non-square size that is not a multiple of the 96-pixel block.
CASES: list[tuple[str, int, tuple[int, int] | None, tuple[int, int] | None]] = [
    *((f"{d}/{p.name}", 0, None, None) for d in ("gt", "lq", "real_lq") for p in sorted((DATA / d).glob("*.png"))),
    ("gt/ffhq512_00000000.png", 4, None, None),
    ("lq/celebahq_015248.png", 0, (17, 330), (5, 244)),
]

BASICSR_FILES = {
    "basicsr.utils.registry": "utils/registry.py",
    "basicsr.utils.color_util": "utils/color_util.py",
    "basicsr.utils.matlab_functions": "utils/matlab_functions.py",
    "basicsr.metrics.metric_util": "metrics/metric_util.py",
    "basicsr.metrics.niqe": "metrics/niqe.py",
}


def load_basicsr_niqe(src: Path):
    """BasicSR's niqe module, loaded by file path under stand-in `basicsr`, `basicsr.utils`, `basicsr.metrics`."""
    pkg = src / "basicsr"
    for name in ("basicsr", "basicsr.utils", "basicsr.metrics"):
        mod = types.ModuleType(name)
        mod.__path__ = []
        sys.modules[name] = mod
    for name, rel in BASICSR_FILES.items():
        spec = importlib.util.spec_from_file_location(name, pkg / rel)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        if name == "basicsr.utils.color_util":  # metric_util does `from basicsr.utils import bgr2ycbcr`
            sys.modules["basicsr.utils"].bgr2ycbcr = mod.bgr2ycbcr
    return sys.modules["basicsr.metrics.niqe"]


def read_bgr(path: Path, rows, cols) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if rows is not None:
        img = img[rows[0] : rows[1]]
    if cols is not None:
        img = img[:, cols[0] : cols[1]]
    return np.ascontiguousarray(img)


def case_key(file: str, crop: int, rows, cols) -> str:
    key = file + (f"@crop{crop}" if crop else "")
    if rows is not None or cols is not None:
        key += f"[{rows[0]}:{rows[1]},{cols[0]}:{cols[1]}]"
    return key


def run_basicsr(src: Path) -> tuple[dict, float]:
    niqe_mod = load_basicsr_niqe(src)
    # the bundled npz must be the one BasicSR ships
    theirs = np.load(src / "basicsr" / "metrics" / "niqe_pris_params.npz")
    ours = np.load(NPZ)
    for k in ("mu_pris_param", "cov_pris_param", "gaussian_window"):
        if not np.array_equal(theirs[k], ours[k]):
            raise SystemExit(f"bundled niqe_pris_params.npz differs from BasicSR's in {k}")
    values, times = {}, []
    for file, crop, rows, cols in CASES:
        img = read_bgr(DATA / file, rows, cols)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # as BasicSR's scripts: empty-slice means
            v = niqe_mod.calculate_niqe(img, crop, input_order="HWC", convert_to="y")
        dt = time.perf_counter() - t0
        if img.shape[:2] == (512, 512) and crop == 0:
            times.append(dt)
        values[case_key(file, crop, rows, cols)] = float(v)
        print(f"basicsr {case_key(file, crop, rows, cols)}: {v:.6f} ({dt:.2f} s)")
    return values, float(np.median(times))


def run_basicsr_mkl_compatible(src: Path) -> dict:
    """The same BasicSR run in a child process with MKL_CBWR=COMPATIBLE (MKL reads it when it starts)."""
    env = dict(os.environ, MKL_CBWR="COMPATIBLE")
    cmd = [sys.executable, __file__, "--basicsr-src", str(src), "--values-only"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_pyiqa(write_mat: bool) -> tuple[dict, dict, str]:
    import pyiqa
    import torch

    if write_mat:
        from scipy.io import savemat

        cache = Path(torch.hub.get_dir()) / "pyiqa"
        mat = cache / "niqe_modelparameters.mat"
        if not mat.exists():
            cache.mkdir(parents=True, exist_ok=True)
            d = np.load(NPZ)
            savemat(mat, {"mu_prisparam": d["mu_pris_param"], "cov_prisparam": d["cov_pris_param"]})
    metric = pyiqa.create_metric("niqe", device="cpu")
    metric_ycbcr = pyiqa.create_metric("niqe", device="cpu", color_space="ycbcr")
    values, values_ycbcr = {}, {}
    for file, crop, rows, cols in CASES:
        if crop:
            continue  # pyiqa's niqe has no crop_border option
        img = read_bgr(DATA / file, rows, cols)[:, :, ::-1].astype(np.float32) / 255
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
        key = case_key(file, crop, rows, cols)
        values[key], values_ycbcr[key] = float(metric(x)), float(metric_ycbcr(x))
        print(f"pyiqa {key}: {values[key]:.6f} (ycbcr {values_ycbcr[key]:.6f})")
    return values, values_ycbcr, pyiqa.__version__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--basicsr-src", type=Path, required=True, help="extracted basicsr-1.4.2 sdist (has basicsr/)")
    ap.add_argument("--pyiqa", action="store_true", help="also run pyiqa's niqe (must be importable)")
    ap.add_argument("--pyiqa-mat", action="store_true", help="write pyiqa's .mat from the bundled npz if missing")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--values-only", action="store_true", help="print the BasicSR values as one JSON line and stop")
    args = ap.parse_args()
    if args.values_only:
        with contextlib.redirect_stdout(sys.stderr):
            values, _ = run_basicsr(args.basicsr_src)
        print(json.dumps(values))
        return

    import scipy
    import torch

    basicsr, t_basicsr = run_basicsr(args.basicsr_src)
    result = {
        "provenance": {
            "library": "BasicSR",
            "version": "1.4.2",
            "source": "PyPI sdist basicsr-1.4.2.tar.gz; basicsr/metrics/niqe.py loaded by path with metric_util.py, "
            "utils/matlab_functions.py, utils/color_util.py, utils/registry.py under a stand-in basicsr package",
            "call": "calculate_niqe(cv2.imread(path, cv2.IMREAD_UNCHANGED)[rows, cols], crop_border, "
            "input_order='HWC', convert_to='y'), RuntimeWarnings ignored",
            "keys": "<file relative to tests/data/metrics>[@crop<k>][<rows>,<cols> slice of the HWC array]",
            "environment": f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
            f"torch {torch.__version__}, opencv {cv2.__version__}",
            "script": "scripts/golden_niqe.py",
            "date": datetime.date.today().isoformat(),
            "basicsr_seconds_per_512_image": round(t_basicsr, 3),
        },
        "basicsr": basicsr,
    }
    compatible = run_basicsr_mkl_compatible(args.basicsr_src)
    result["basicsr_mkl_compatible"] = {
        "note": "the same BasicSR code and inputs, run with MKL_CBWR=COMPATIBLE: a different but equally valid float32 "
        "summation order in imresize's sgemv; the spread is the reproducibility limit of the BasicSR values",
        "max_abs_diff_vs_basicsr": max(abs(compatible[k] - basicsr[k]) for k in basicsr),
        "values": compatible,
    }
    if args.pyiqa:
        values, values_ycbcr, version = run_pyiqa(args.pyiqa_mat)
        result["pyiqa"] = {
            "provenance": {
                "library": "pyiqa",
                "version": version,
                "call": "pyiqa.create_metric('niqe', device='cpu')(RGB float32 [0, 1] NCHW tensor of the same file); "
                "values_ycbcr: the same with color_space='ycbcr' (BasicSR's luma instead of pyiqa's default YIQ)",
                "model": "niqe_modelparameters.mat written from the bundled npz (mu_prisparam, cov_prisparam)"
                if args.pyiqa_mat
                else "niqe_modelparameters.mat downloaded by pyiqa",
            },
            "values": values,
            "values_ycbcr": values_ycbcr,
            "max_abs_diff_vs_basicsr": max(abs(values[k] - basicsr[k]) for k in values),
            "max_abs_diff_vs_basicsr_ycbcr": max(abs(values_ycbcr[k] - basicsr[k]) for k in values_ycbcr),
        }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
