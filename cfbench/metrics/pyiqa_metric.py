"""`pyiqa:NAME`: any per-image metric of pyiqa (`pyiqa.list_models()`), full-reference or no-reference.

The value is `pyiqa.create_metric(NAME)(pred[, gt])` on our float32 RGB NCHW [0, 1] batches, on the run's device:
exact by construction (tests compare with pyiqa on the same images). Direction, kind and score range come from
pyiqa's table (`cfbench.metrics.pyiqa_table`); pyiqa is imported only when such a metric is built.

pyiqa downloads weights at first use. Building a metric here never does: every download pyiqa (or torchvision,
CLIP or the Hugging Face hub under it) would start raises MissingWeightsError naming the file, its URL and the exact
path where pyiqa looks for it; files registered in `cfbench.weights` (the curated metrics) are checked before a run
starts and can be put in place with `cfbench weights import`.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from cfbench import weights
from cfbench.atomic import atomic_path
from cfbench.errors import BadInputError, MissingWeightsError
from cfbench.metrics.base import MetricKind, MetricSpec, PerImageMetric
from cfbench.metrics.pyiqa_table import (
    CURATED,
    IDENTITY,
    INSTALL_HINT,
    PER_FOLDER,
    PREFIX,
    WEIGHT_FREE,
    parse_range,
    pyiqa_configs,
    pyiqa_names,
    pyiqa_version,
)
from cfbench.metrics.registry import ALIASES, add_resolver, register
from cfbench.registry import UnknownNameError


def _registered_by_filename(filename: str) -> str | None:
    return next((n for n, e in weights.WEIGHTS.items() if e.filename == filename), None)


def serve_or_refuse(url: str, dst: str | os.PathLike) -> None:
    """Instead of downloading `url` to `dst`: copy the registered file of that name when it is elsewhere (our cache,
    after `cfbench weights import`), else raise `download_refused`."""
    registered = _registered_by_filename(Path(dst).name)
    found = weights.locate(registered) if registered is not None else None
    if found is None:
        raise download_refused(url, dst)
    with atomic_path(dst) as tmp:
        shutil.copyfile(found, tmp)


def download_refused(url: str, dst: str | os.PathLike) -> MissingWeightsError:
    """The one-line error for a file pyiqa would download from `url` to `dst`."""
    registered = _registered_by_filename(Path(dst).name)
    if registered is not None:
        return MissingWeightsError(weights.missing_message(registered))
    return MissingWeightsError(
        f"weights file {Path(dst).name} is missing: download {url} and put it at {dst} "
        "(cfbench never downloads at run time)"
    )


def _hub_download_offline(download: Callable[..., str]) -> Callable[..., str]:
    """`hf_hub_download` for timm backbones: the Hugging Face cache only; a miss names the repository file."""
    import huggingface_hub

    def offline(repo_id: str, filename: str, *args: Any, **kwargs: Any) -> str:
        try:
            return download(repo_id, filename, *args, **{**kwargs, "local_files_only": True})
        except (OSError, ValueError) as exc:
            url = huggingface_hub.hf_hub_url(repo_id, filename)
            raise MissingWeightsError(
                f"timm backbone {repo_id}/{filename} is not in the Hugging Face cache "
                f"({huggingface_hub.constants.HF_HUB_CACHE}): on a connected machine run `hf download {repo_id} "
                f"{filename}` ({url}) and copy that cache folder here (cfbench never downloads at run time)"
            ) from exc

    return offline


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """While pyiqa builds a metric: its cache folder follows the current $TORCH_HOME, and every download (pyiqa,
    torch hub, CLIP, timm through the Hugging Face hub) raises MissingWeightsError instead of touching the network."""
    import huggingface_hub.constants
    import pyiqa.archs.clip_model as clip_model
    import pyiqa.utils.download_util as download_util
    import timm.models._hub as timm_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        serve_or_refuse(url, dst)

    load_clip = clip_model._download

    def clip_download(url: str, root: str) -> str:
        target = Path(root) / Path(url).name
        if not target.is_file():
            raise download_refused(url, target)
        return load_clip(url, root)

    patches = (
        contextlib.redirect_stdout(io.StringIO()),  # pyiqa prints "Downloading ..." before the refusal
        mock.patch.object(download_util, "DEFAULT_CACHE_DIR", str(Path(torch.hub.get_dir()) / "pyiqa")),
        mock.patch.object(download_util, "download_url_to_file", refuse),
        mock.patch.object(torch.hub, "download_url_to_file", refuse),
        mock.patch.object(clip_model, "_download", clip_download),
        mock.patch.object(timm_hub, "hf_hub_download", _hub_download_offline(timm_hub.hf_hub_download)),
        mock.patch.object(huggingface_hub.constants, "HF_HUB_OFFLINE", True),
        mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}),
    )
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        try:
            yield
        except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:  # other Hugging Face downloads (transformers)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MissingWeightsError(
                f"a file from the Hugging Face hub is not in its cache ({huggingface_hub.constants.HF_HUB_CACHE}): "
                f"{first}"
            ) from None


def build_pyiqa(name: str, device: torch.device) -> torch.nn.Module:
    """`pyiqa.create_metric(name)` on `device`, with downloads refused (see `no_downloads`)."""
    try:
        import pyiqa
    except ImportError as exc:
        raise ImportError(f"{PREFIX}{name} needs the pyiqa package ({exc}): {INSTALL_HINT}") from None
    with no_downloads():
        return pyiqa.create_metric(name, device=device)


class PyiqaMetric(PerImageMetric):
    """A pyiqa metric behind our per-image interface: (N, 3, H, W) in [0, 1] -> float64 (N,)."""

    def __init__(self, spec: MetricSpec, name: str, device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        self.spec = spec
        self.model = build_pyiqa(name, self.device)

    def compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        out = self.model(pred) if gt is None else self.model(pred, gt)
        out = torch.as_tensor(out).detach()
        if out.numel() != pred.shape[0]:
            raise BadInputError(
                f"{self.spec.name} gave {out.numel()} values for {pred.shape[0]} images; it is not a per-image metric"
            )
        return out.reshape(pred.shape[0])


def pyiqa_spec(name: str) -> MetricSpec:
    """The spec of `pyiqa:<name>` from pyiqa's table (and the curated facts for the short-named ones)."""
    configs = pyiqa_configs()
    column = PREFIX + name
    if name in PER_FOLDER:
        raise BadInputError(f"{column} scores a folder, not an image: use cfbench's `fid` or `kid` instead")
    if name not in configs:
        close = difflib.get_close_matches(name, list(configs), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown pyiqa metric {column!r}{hint} (`cfbench metrics list --pyiqa` lists them)")
    entry = configs[name]
    curated = CURATED.get(name)
    version = pyiqa_version()

    def build(device: torch.device | str) -> PyiqaMetric:
        return PyiqaMetric(spec, name, device)

    spec = MetricSpec(
        name=column,
        family=column,
        backend="pyiqa",
        kind=MetricKind.FULL_REFERENCE if entry.get("metric_mode") == "FR" else MetricKind.NO_REFERENCE,
        higher_is_better=not entry.get("lower_better", False),
        reference=f"pyiqa {version} create_metric({name!r}), exact" + (f"; {curated.paper}" if curated else ""),
        build=build,
        description=f"pyiqa's {name} ({entry['metric_opts'].get('type', name)}), range {entry.get('score_range')}",
        weights=curated.weights if curated else (),
        value_range=parse_range(entry.get("score_range")),
        label=curated.label if curated else name,
        role=curated.role if curated else "",
        package="pyiqa",
        identity=IDENTITY.get(name),
    )
    return spec


def pyiqa_specs() -> list[MetricSpec]:
    """The spec of every `pyiqa:NAME` (not registered; pyiqa is not imported); [] when pyiqa is not installed."""
    try:
        return [pyiqa_spec(n) for n in pyiqa_names()]
    except ImportError:
        return []


def weights_status(spec: MetricSpec) -> str:
    """'present', 'missing: a, b', '-' (needs none), or for pyiqa metrics outside the curated and weight-free sets
    'checked when built' (pyiqa resolves their files in its own code)."""
    missing = [n for n in spec.weights if weights.locate(n) is None]
    if missing:
        return f"missing: {', '.join(missing)}"
    if spec.weights:
        return "present"
    name = spec.name.removeprefix(PREFIX)
    if spec.backend == "pyiqa" and name not in CURATED and name not in WEIGHT_FREE:
        return "checked when built"
    return "-"


def resolve(column: str) -> MetricSpec:
    """Register `pyiqa:<name>` on first use (the registry calls this for names with the `pyiqa:` prefix)."""
    try:
        return register(pyiqa_spec(column.removeprefix(PREFIX)))
    except ImportError as exc:  # pyiqa not installed: the user's to fix
        raise BadInputError(f"{column}: {exc}") from None


add_resolver(PREFIX, resolve)
ALIASES.update({short: PREFIX + short for short in CURATED})
