"""What a registered weights file must hold, checked by loading it: the guard for names whose sha256 cannot be pinned
(the official CodeFormer release publishes none), where the first file imported or fetched would otherwise be pinned
for good, whatever it is.

`check_content(name, path)` loads `path` strictly into what uses it (the registered model variant, ArcFace, FAN, the
LPIPS heads, the dlib networks) and raises one `CheckpointError` line when it does not fit. `cfbench weights import`
and `fetch` run it before recording the hash; `cfbench weights verify` runs it on every unpinned file present.
Above models, face and metrics (imported only when a check runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from cfbench import weights
from cfbench.errors import CheckpointError
from cfbench.state_dict import check_state_dict, load_state_dict_file


def refuse_non_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(f"{path} holds NaN or infinite weights ({len(broken)} tensors, e.g. {broken[0]})")


def model_variant_check(variant: str) -> Callable[[Path], None]:
    """Keys and shapes of the registered model variant (built on the meta device: no memory), finite values."""

    def check(path: Path) -> None:
        from cfbench.models import MODEL_VARIANTS, instantiate

        state, _ = load_state_dict_file(path)
        with torch.device("meta"):
            model = instantiate(MODEL_VARIANTS.get(variant).config())
        check_state_dict(model, state, str(path), f"the registered model {variant!r}")
        refuse_non_finite(state, path)

    return check


def _arcface(path: Path) -> None:
    from cfbench.face.arcface import load_arcface

    load_arcface(load_state_dict_file(path)[0])


def _fan(path: Path) -> None:
    from cfbench.face.fan import load_fan

    load_fan(load_state_dict_file(path, wrappers=("state_dict",))[0])


def _lpips_heads(net: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        from cfbench.metrics.lpips import LPIPSNet

        LPIPSNet(net).load_heads(path)

    return check


def _fid_statistics(path: Path) -> None:
    from cfbench.errors import BadInputError
    from cfbench.metrics.fid import load_reference_statistics

    try:
        load_reference_statistics(path)
    except BadInputError as err:
        raise CheckpointError(str(err)) from None


def _finite_state_dict(path: Path) -> None:
    """For networks built inside another package (pyiqa): a loadable, non-empty state dict of finite tensors."""
    state, _ = load_state_dict_file(path)
    if not state:
        raise CheckpointError(f"{path} holds no tensors")
    refuse_non_finite(state, path)


def _dlib(constructor: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        try:
            import dlib
        except ImportError:
            raise CheckpointError(f"cannot check {path} without dlib; pip install dlib, then import it") from None
        try:
            getattr(dlib, constructor)(str(path))
        except RuntimeError as err:
            raise CheckpointError(f"{path} is not a dlib {constructor} file ({str(err).splitlines()[0]})") from None

    return check


# name -> check, for every registered file without a pinned sha256 or hash prefix (a test keeps this complete)
CHECKS: dict[str, Callable[[Path], None]] = {
    "arcface_resnet18": _arcface,
    "fan_wflw": _fan,
    "lpips_alex_lin": _lpips_heads("alex"),
    "lpips_vgg_lin": _lpips_heads("vgg"),
    "dlib_face_recognition_resnet": _dlib("face_recognition_model_v1"),
    "dlib_mmod_detector": _dlib("cnn_face_detection_model_v1"),
    "dlib_shape_predictor_5": _dlib("shape_predictor"),
    "dlib_shape_predictor_68": _dlib("shape_predictor"),
    "fid_stats_ffhq70k_clean": _fid_statistics,
    "pyiqa_maniqa_koniq": _finite_state_dict,
}


def unpinned(name: str) -> bool:
    """Whether `name` has neither a pinned sha256 nor a hash prefix (nor ships inside the package)."""
    entry = weights.WEIGHTS.get(name)
    return entry.sha256 is None and entry.sha256_prefix is None and not entry.bundled


def content_check(name: str) -> Callable[[Path], None] | None:
    """The check of an unpinned registered name (its model variant's, or one of `CHECKS`); None for a name whose
    hash is pinned (the hash is the check)."""
    if not unpinned(name):
        return None
    entry = weights.WEIGHTS.get(name)
    return model_variant_check(entry.model) if entry.model and name not in CHECKS else CHECKS.get(name)


def check_content(name: str, path: str | Path) -> None:
    """Raise CheckpointError (naming the file and `name`) unless `path` loads strictly as registered `name`."""
    check = content_check(name)
    if check is None:
        return
    try:
        check(Path(path))
    except CheckpointError as err:
        raise CheckpointError(f"{err}; it is not '{name}' ({weights.WEIGHTS.get(name).filename})") from None
