"""`FaceSample` and the dataset interface every cfbench dataset follows.

A dataset is an ordered list of ids with random access: ``ds.load(i)`` or ``ds.load("id")`` returns a
`FaceSample` whose ``gt`` / ``lq`` are float32 RGB (3, 512, 512) tensors in [0, 1] (or None when the dataset has no
such side). Order never changes between runs (ids are sorted), so an eval runner can batch and shard by index
(``range(rank, len(ds), world)``) and every process sees the same faces.

``content_hash()`` keys the GT-side feature cache: the sha256 over ``RESIZE_POLICY``, which side was hashed
(``gt``, or ``lq`` for datasets without GT) and, for every id in order, the id and the sha256 of that side's
encoded source bytes (the file, or the bytes stored in a Hugging Face dataset), each length-prefixed. Hashing the
encoded bytes rather than decoded pixels is much cheaper (no decoding or resizing), and together with the resize
policy it fixes the decoded tensors; re-encoding identical pixels into a different file changes the hash (a cache
miss, never a stale hit). A file with an EXIF orientation other than 1 also adds `cfbench.imageio.DECODER_VERSION`
and the orientation, so GT-side caches made when such files were decoded sideways are not reused (the hashes of
datasets without rotated files are unchanged).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cfbench.data.faces import FACE_SIZE, RESIZE_POLICY, ImageSource, load_face
from cfbench.errors import BadInputError
from cfbench.hashing import content_hash, sha256_bytes
from cfbench.imageio import DECODER_VERSION, exif_orientation

HASH_VERSION = "cfbench-dataset-v1"


@dataclass(frozen=True)
class FaceSample:
    """One face: ``gt`` and ``lq`` are float32 RGB (3, 512, 512) in [0, 1] or None; ``meta`` is JSON-able."""

    id: str
    gt: torch.Tensor | None
    lq: torch.Tensor | None
    meta: dict[str, Any] = field(default_factory=dict)


class FaceDataset:
    """The interface. Subclasses set the attributes and implement ``ids`` and ``_load``.

    ``name``: the dataset spec as given (``celeba-test``, ``folder:/abs/path``, ``hf:NAME:split``);
    ``seed_name``: the name that enters per-image degradation seeds (stable when a folder moves; the same default
    as ``cfbench degrade --dataset``); ``root``: where the files are; ``licence``: a note for the manifest.
    """

    name: str = ""
    seed_name: str = ""
    root: str | None = None
    licence: str = "not recorded (your own data)"
    description: str = ""
    has_gt: bool = False
    has_lq: bool = False

    @property
    def ids(self) -> list[str]:
        raise NotImplementedError

    def _load(self, index: int) -> FaceSample:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, key: int | str) -> int:
        """The position of an index (negative counts from the end) or of an id."""
        n = len(self)
        if isinstance(key, bool):
            raise BadInputError(f"dataset {self.name}: use an int index or a str id, not {key!r}")
        if isinstance(key, int):
            if not -n <= key < n:
                raise BadInputError(f"dataset {self.name}: index {key} is out of range (it has {n} images)")
            return key % n
        if isinstance(key, str):
            positions = self._positions()
            if key not in positions:
                raise BadInputError(f"dataset {self.name} has no image with id {key!r} (ids like {self.ids[:3]})")
            return positions[key]
        raise BadInputError(f"dataset {self.name}: use an int index or a str id, not {type(key).__name__}")

    def _positions(self) -> dict[str, int]:
        cached = self.__dict__.get("_position_map")
        if cached is None:
            cached = {k: i for i, k in enumerate(self.ids)}
            self.__dict__["_position_map"] = cached
        return cached

    def load(self, key: int | str) -> FaceSample:
        """The sample at an index or with an id (random access, independent of any earlier access)."""
        return self._load(self.index(key))

    def __getitem__(self, key: int | str) -> FaceSample:
        return self.load(key)

    def __iter__(self) -> Iterator[FaceSample]:
        for i in range(len(self)):
            yield self._load(i)

    def content_hash(self) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A JSON-able record for the run manifest."""
        return {
            "name": self.name,
            "seed_name": self.seed_name,
            "description": self.description,
            "root": self.root,
            "images": len(self),
            "has_gt": self.has_gt,
            "has_lq": self.has_lq,
            "licence": self.licence,
            "image_size": FACE_SIZE,
            "resize_policy": RESIZE_POLICY,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, images={len(self)}, gt={self.has_gt}, lq={self.has_lq})"


@dataclass(frozen=True)
class Item:
    """One face of a `SourceDataset`: its id and where its GT and LQ images come from."""

    id: str
    gt: ImageSource | None
    lq: ImageSource | None
    meta: dict[str, Any] = field(default_factory=dict)


class SourceDataset(FaceDataset):
    """A dataset made of `Item`s (folders, the released test sets, the demo faces, Hugging Face datasets).
    `exact_lq_size`: LQ images must already be 512x512 (`load_face(exact=True)`) instead of being resized."""

    exact_lq_size = False

    def __init__(
        self,
        name: str,
        items: Sequence[Item],
        *,
        seed_name: str | None = None,
        root: str | None = None,
        licence: str | None = None,
        description: str = "",
    ) -> None:
        if not items:
            raise BadInputError(f"dataset {name} has no images")
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise BadInputError(f"dataset {name}: ids {dup[:5]} occur more than once; every face needs its own id")
        self.name = name
        self.seed_name = seed_name or name
        self.root = root
        if licence is not None:
            self.licence = licence
        self.description = description
        self.items = list(items)
        self._ids = ids
        self.has_gt = all(it.gt is not None for it in self.items)
        self.has_lq = all(it.lq is not None for it in self.items)
        self._hash: str | None = None

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def _load(self, index: int) -> FaceSample:
        item = self.items[index]
        meta: dict[str, Any] = {"dataset": self.name, "index": index, **item.meta}
        images: dict[str, torch.Tensor | None] = {"gt": None, "lq": None}
        for side in ("gt", "lq"):
            source = getattr(item, side)
            if source is None:
                continue
            images[side], facts = load_face(source, exact=side == "lq" and self.exact_lq_size)
            meta[f"{side}_source"] = source.label
            meta[f"{side}_resized"] = facts["resized"]
        return FaceSample(item.id, images["gt"], images["lq"], meta)

    def sources(self, key: int | str) -> dict[str, ImageSource | None]:
        """Where the GT and LQ of one face come from (without decoding them)."""
        item = self.items[self.index(key)]
        return {"gt": item.gt, "lq": item.lq}

    def content_hash(self) -> str:
        """See the module docstring; computed once per dataset object (reads every GT, or LQ, source once)."""
        if self._hash is None:
            side = "gt" if self.has_gt else "lq"

            def chunks() -> Iterator[bytes]:
                yield HASH_VERSION.encode()
                yield RESIZE_POLICY.encode()
                yield side.encode()
                for item in self.items:
                    data = getattr(item, side).read_bytes()
                    yield item.id.encode("utf-8")
                    yield sha256_bytes(data).encode()
                    if (orientation := exif_orientation(data)) != 1:  # decoded upright since DECODER_VERSION 2
                        yield f"{DECODER_VERSION} orientation {orientation}".encode()

            self._hash = content_hash(chunks())
        return self._hash

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "content_hash_of": "gt" if self.has_gt else "lq"}
