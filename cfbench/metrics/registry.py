"""The metric registry: every metric of cfbench, by the name that appears in result columns."""

from __future__ import annotations

from collections.abc import Callable

from cfbench.errors import BadInputError
from cfbench.metrics.base import MetricSpec
from cfbench.registry import Registry

METRICS: Registry[MetricSpec] = Registry("metric")

# name prefix -> function that registers and returns the spec of a name with that prefix on first use (`pyiqa:`):
# families too large to register up front
RESOLVERS: dict[str, Callable[[str], MetricSpec]] = {}

# The metrics of a run that names none (`cfbench eval` without a protocol's list, `cfbench metrics`): the first
# variant of every family whose weights can ship with cfbench or on PyPI; the others are asked for by name.
DEFAULT_METRICS = ("psnr", "ssim", "lpips[vgg]", "niqe", "fid", "identity_cos[dlib]", "lmd[dlib]")

# Short names users type, mapped to the variant they mean; results always carry the full name.
ALIASES: dict[str, str] = {"lpips": "lpips[vgg]"}


def register(spec: MetricSpec) -> MetricSpec:
    """Add `spec` under `spec.name`."""
    return METRICS.add(spec.name, spec)


def add_resolver(prefix: str, resolve: Callable[[str], MetricSpec]) -> None:
    """Names starting with `prefix` are registered by `resolve(name)` when first asked for."""
    RESOLVERS[prefix] = resolve


def get_metric(name: str) -> MetricSpec:
    """The spec of `name` or of its alias; an unknown name raises with close-match suggestions."""
    name = ALIASES.get(name, name)
    if name not in METRICS:
        resolve = next((r for p, r in RESOLVERS.items() if name.startswith(p)), None)
        if resolve is not None:
            return resolve(name)
    return METRICS.get(name)


def parse_metric_list(text: str) -> list[MetricSpec]:
    """'fid,lpips,psnr' -> specs, in order, without duplicates; an unknown name raises with suggestions, and a
    text naming no metric (``--metrics ''``) raises BadInputError instead of meaning the default set."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadInputError(
            f"--metrics {text!r} names no metric; give names from `cfbench metrics list`, or leave it out"
        )
    specs: dict[str, MetricSpec] = {}
    for n in names:
        spec = get_metric(n)
        specs.setdefault(spec.name, spec)
    return list(specs.values())
