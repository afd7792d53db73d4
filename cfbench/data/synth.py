"""Synthesized LQ: `DegradedDataset` makes each face's LQ from its GT with the `degradations` package.

Severity: a level 0..4 or a fraction in [0, 1] (preset ``severity-scale``), ``celeba-test`` (preset ``celeba-test``
with its own random ranges: the standard protocol), or ``none`` (the dataset's own LQ images, nothing synthesized).
Each face's params are drawn with ``derive_seed(seed, base.seed_name, id, severity)`` and applied with the CPU
backend (OpenCV/libjpeg, bit-exact), so an LQ face depends only on (seed, dataset, id, severity, preset): not on
the access order, the batch or the worker count. ``cfbench degrade GT_DIR --dataset SEED_NAME --severity S --seed
SEED`` writes the same LQ files. The params record goes into ``meta['degradation']`` (JSON-able).
"""

from __future__ import annotations

from typing import Any

from cfbench.data.base import FaceDataset, FaceSample
from cfbench.errors import BadInputError
from degradations import BACKENDS, Pipeline, derive_seed, load_preset, parse_severity, severity_label
from degradations.severity import Severity

LEVELED_PRESET = "severity-scale"
STANDARD = "celeba-test"  # the severity that means "the celeba-test preset's own ranges"


def parse_dataset_severity(value: Severity | None) -> Severity | None:
    """'2' -> 2, '0.5' -> 0.5, 'none' -> 'none', 'celeba-test' -> None (the preset's ranges); ints/floats checked."""
    if value is None or value == STANDARD:
        return None
    try:
        if isinstance(value, str):
            parsed = parse_severity(value)
            if len(parsed) != 1:
                raise ValueError(f"expected one severity, got {value!r}")
            return parsed[0]
        return parse_severity(severity_label(value))[0]
    except ValueError as exc:
        raise BadInputError(f"{exc} (or '{STANDARD}' for the standard protocol's random ranges)") from None


class DegradedDataset(FaceDataset):
    """``base`` with LQ synthesized from its GT at one severity (or its own LQ for ``none``).

    ``preset`` defaults to ``severity-scale`` for levels and fractions and ``celeba-test`` for the severity
    ``celeba-test``; a preset name or YAML file may be given. ``backend`` is ``cpu`` (bit-exact, the default) or
    ``torch`` (per image here; batch with ``pipeline.apply`` yourself on a GPU).
    """

    def __init__(
        self,
        base: FaceDataset,
        severity: Severity,
        seed: int = 0,
        preset: str | None = None,
        backend: str = "cpu",
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise BadInputError(f"seed must be an int >= 0, got {seed!r}")
        if backend not in BACKENDS:
            raise BadInputError(f"unknown degradation backend {backend!r}; use one of {', '.join(BACKENDS)}")
        self.base = base
        self.seed = seed
        self.backend = backend
        self.severity: Severity | None = parse_dataset_severity(severity)
        self.name = base.name
        self.seed_name = base.seed_name
        self.root = base.root
        self.licence = base.licence
        self.has_gt = base.has_gt
        self.pipeline: Pipeline | None
        if self.severity == "none":
            if not base.has_lq:
                raise BadInputError(
                    f"dataset {base.name} has no LQ images, so severity 'none' (use the dataset's own LQ) cannot "
                    f"work; give a level 0..4, a fraction such as 0.5, or '{STANDARD}'"
                )
            self.pipeline, self.preset, self.has_lq = None, None, True
            self.description = f"{base.description}; its own LQ"
            return
        if not base.has_gt:
            raise BadInputError(
                f"dataset {base.name} has no GT images to synthesize LQ from; use severity 'none' for its own LQ"
            )
        self.preset = preset or (STANDARD if self.severity is None else LEVELED_PRESET)
        try:
            self.pipeline = load_preset(self.preset, self.severity)
        except (ValueError, FileNotFoundError) as exc:
            raise BadInputError(f"degradation preset {self.preset!r}: {exc}") from None
        self.has_lq = True
        self.description = f"{base.description}; LQ synthesized ({self.preset}, severity {self.severity_label})"

    def __getstate__(self) -> dict[str, Any]:
        # Pipelines hold local functions (not picklable): rebuild from the preset in the receiving process, so
        # the dataset can go to spawned DataLoader workers.
        state = dict(self.__dict__)
        state["pipeline"] = None
        state["_rebuild"] = self.pipeline is not None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        rebuild = state.pop("_rebuild", False)
        self.__dict__.update(state)
        if rebuild:
            self.pipeline = load_preset(self.preset, self.severity)

    @property
    def severity_label(self) -> str:
        return STANDARD if self.severity is None else severity_label(self.severity)

    @property
    def ids(self) -> list[str]:
        return self.base.ids

    def __len__(self) -> int:
        return len(self.base)

    def index(self, key: int | str) -> int:
        return self.base.index(key)

    def image_seed(self, image_id: str) -> int:
        """The per-image seed (the same as ``cfbench degrade`` uses for this dataset, id, severity and seed)."""
        assert self.pipeline is not None
        return derive_seed(self.seed, self.seed_name, image_id, self.pipeline.severity)

    def params(self, key: int | str) -> dict[str, Any] | None:
        """The degradation params record of one face (None for severity 'none'), without loading any image."""
        if self.pipeline is None:
            return None
        image_id = self.ids[self.index(key)]
        return self.pipeline.sample(self.image_seed(image_id))

    def _load(self, index: int) -> FaceSample:
        return self.degrade(self.base.load(index))

    def degrade(self, sample: FaceSample) -> FaceSample:
        """`sample` of the base dataset with this dataset's LQ face and meta (a pure function of the sample)."""
        meta = dict(sample.meta)
        meta["severity"] = self.severity_label
        if self.pipeline is None:
            meta["degradation"] = meta.get("degradation")  # a record shipped with the data, if any
            return FaceSample(sample.id, sample.gt, sample.lq, meta)
        record = self.pipeline.sample(self.image_seed(sample.id))
        lq = self.pipeline.apply(sample.gt[None], record, backend=self.backend)[0]
        meta["degradation"] = {"dataset": self.seed_name, "base_seed": self.seed, "backend": self.backend, **record}
        meta.pop("lq_source", None)
        meta.pop("lq_resized", None)
        return FaceSample(sample.id, sample.gt, lq, meta)

    def content_hash(self) -> str:
        """The base dataset's hash: the GT (what the GT-side cache keys) does not change with the severity."""
        return self.base.content_hash()

    def describe(self) -> dict[str, Any]:
        out = self.base.describe()
        out.update(
            description=self.description,
            has_lq=self.has_lq,
            lq="own" if self.pipeline is None else "synthesized",
            severity=self.severity_label,
            preset=self.preset,
            seed=self.seed,
            degradation_backend=None if self.pipeline is None else self.backend,
        )
        return out


def with_severity(
    base: FaceDataset, severity: Severity | None, seed: int = 0, preset: str | None = None
) -> FaceDataset:
    """``base`` itself when severity is None, else a `DegradedDataset` (see its docstring)."""
    return base if severity is None else DegradedDataset(base, severity, seed=seed, preset=preset)
