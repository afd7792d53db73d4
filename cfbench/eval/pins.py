"""Pinned inputs: the manifest records the content hash of every input a run's numbers depend on, and a resume
checks them before any work, so that a run never mixes parts computed from different files.

Pinned (manifest key ``inputs``, one record per input: path, size, mtime_ns, sha256): every dataset image the run
uses (the GT side; the LQ side too for severity ``none``), every checkpoint file, every metric weights file, a
reference-statistics file (``--fid-ref FILE``), and the protocol's version. A resume compares cheaply: a file whose
size and mtime are unchanged keeps its pin; otherwise it is hashed again, and only a changed hash counts. Images
from a Hugging Face dataset have no file of their own and are always hashed again.

A changed input refuses the resume (BadInputError, exit 2) naming the inputs with their old and new hashes.
``--rehash`` hashes every input again (trusting no size or mtime), accepts the changes, re-pins them, and drops the
stored parts that used a changed input (a checkpoint's parts, the parts holding a changed image, all parts for
changed metric weights or when images were added or removed), so that they are recomputed from the new files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfbench import weights
from cfbench.errors import BadInputError
from cfbench.eval.provenance import checkpoint_label
from cfbench.eval.requirements import metric_options
from cfbench.eval.store import PartKey, RunStore
from cfbench.eval.store.manifest import write_manifest
from cfbench.eval.store.schema import INPUTS
from cfbench.hashing import sha256_bytes, sha256_path
from cfbench.restoration import resolve_checkpoint

Record = dict[str, Any]  # {"path": str | None, "size": int | None, "mtime_ns": int | None, "sha256": str}


def _all(_key: PartKey) -> bool:
    return True


def _none(_key: PartKey) -> bool:
    return False


@dataclass(frozen=True)
class Input:
    """One input of a run. `name` keys its pin and names it in messages; it is a file (`path`), bytes without a
    file (`read`), or a `value` pinned as is. `affects(part)`: whether that stored part used it."""

    name: str
    path: Path | None = None
    read: Callable[[], bytes] | None = None
    value: str | None = None
    affects: Callable[[PartKey], bool] = _all


@dataclass(frozen=True)
class Change:
    """An input whose pin differs: `old` or `new` is None when it was added or removed."""

    name: str
    old: Record | None
    new: Record | None

    def describe(self) -> str:
        if self.old is None:
            return f"{self.name} was added"
        where = f" ({self.old['path']})" if self.old.get("path") else ""
        if self.new is None:
            return f"{self.name}{where} was removed"
        return f"{self.name}{where}: sha256 {self.old['sha256'][:12]}... -> {self.new['sha256'][:12]}..."


def _file_record(path: Path, rehash: bool) -> Record:
    """The pin of a file; hashed once per process while its size and mtime stay (provenance hashes checkpoints
    and weights too), or read again with `rehash`."""
    st = os.stat(path)
    sha = sha256_path(path) if rehash else weights.sha256_file(path)
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}


def _record(inp: Input, old: Record | None, rehash: bool) -> Record:
    """The pin of `inp` now: `old` when its file has the same path, size and mtime (unless `rehash`)."""
    if inp.path is not None:
        if old is not None and not rehash and old.get("path") == str(inp.path):
            st = os.stat(inp.path)
            if (old.get("size"), old.get("mtime_ns")) == (st.st_size, st.st_mtime_ns):
                return old
        return _file_record(inp.path, rehash)
    digest = sha256_bytes(inp.read()) if inp.read is not None else str(inp.value)
    return {"path": None, "size": None, "mtime_ns": None, "sha256": digest}


def compare(stored: Mapping[str, Record], inputs: Sequence[Input], rehash: bool = False) -> tuple[dict, list]:
    """(the pins of `inputs` now, the `Change`s against `stored`); see the module docstring."""
    pins: dict[str, Record] = {}
    changes: list[Change] = []
    for inp in inputs:
        old = stored.get(inp.name)
        new = pins[inp.name] = _record(inp, old, rehash)
        if old is None and stored:
            changes.append(Change(inp.name, None, new))
        elif old is not None and old["sha256"] != new["sha256"]:
            changes.append(Change(inp.name, old, new))
    changes += [Change(name, old, None) for name, old in stored.items() if name not in pins]
    return pins, changes


def stale_parts(done: Iterable[PartKey], changes: Sequence[Change], inputs: Sequence[Input]) -> set[PartKey]:
    """The stored parts that used a changed input (all of them when an input was added or removed)."""
    by_name = {inp.name: inp for inp in inputs}
    tests = [_all if c.old is None or c.new is None else by_name[c.name].affects for c in changes]
    return {key for key in done if any(test(key) for test in tests)}


def verify_inputs(store: RunStore, inputs: Sequence[Input], rehash: bool, log: Callable[[str], None]) -> None:
    """Compare the pins of the opened run in `store` with `inputs` now and record them in its manifest.

    A changed input raises BadInputError naming each change, unless `rehash`: then the changes are accepted,
    recorded in the resume entry, and the stored parts that used them are dropped (recomputed by the run)."""
    manifest = store.manifest
    if manifest is None:
        raise RuntimeError("verify_inputs: open the store first")
    stored = manifest.get(INPUTS) or {}
    pins, changes = compare(stored, inputs, rehash)
    done = store.done_parts()
    if not stored and done:
        log(f"note: {store.run_dir} predates input pinning: its inputs are pinned now, not checked against its parts")
    if changes and not rehash:
        shown = "; ".join(c.describe() for c in changes[:3])
        more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
        raise BadInputError(
            f"--run-dir {store.run_dir}: {len(changes)} input(s) changed since the run started ({shown}{more}); "
            "restore the original files, use another --run-dir, or pass --rehash to accept the new files (the "
            "stored parts that used them are recomputed)"
        )
    if changes:
        stale = stale_parts(done, changes, inputs)
        store.drop_parts(stale)
        log(
            f"--rehash: accepted {len(changes)} changed input(s) ({'; '.join(c.describe() for c in changes[:3])}"
            f"{' ...' if len(changes) > 3 else ''}); recomputing {len(stale)} stored part(s) that used them"
        )
        resumed = manifest.get("resumed") or []
        if resumed:
            resumed[-1]["rehashed"] = [c.describe() for c in changes]
            manifest["provenance"] = resumed[-1].get("provenance", manifest.get("provenance"))
    if pins != stored:
        manifest[INPUTS] = pins
        write_manifest(store.run_dir, manifest)


def image_inputs(dataset: Any, indices: Sequence[int], part_size: int, sides: Sequence[str]) -> list[Input]:
    """The image files (or bytes) of the faces `indices` of a `SourceDataset`, side by side ('gt', 'lq'); each
    affects the part (batch index) that holds it. A dataset without `sources` is pinned by its content hash."""
    sources = getattr(dataset, "sources", None)
    if sources is None:
        return [Input(f"dataset {dataset.name}", value=dataset.content_hash())]
    out = []
    for j, i in enumerate(indices):
        batch = j // part_size

        def affects(key: PartKey, batch: int = batch) -> bool:
            return key.batch == batch

        image_id = dataset.ids[i]
        for side, src in sources(i).items():
            if side in sides and src is not None:
                path = getattr(src, "path", None)
                read = None if path is not None else src.read_bytes
                out.append(Input(f"{side} image {image_id!r}", path, read, affects=affects))
    return out


def sweep_inputs(sweep: Any) -> list[Input]:
    """Every input of a `FidelityWeightSweep`: its faces (GT; LQ too for severity 'none'), checkpoints, metric
    weights files, reference-statistics files and protocol version."""
    sides = ["gt"] if sweep.has_gt else []
    if "none" in sweep.severities:
        sides.append("lq")
    out = image_inputs(sweep.dataset, sweep.indices, sweep.config.part_size, sides)
    for spec in sweep.checkpoints:
        label = checkpoint_label(spec)
        path = resolve_checkpoint(spec)[0]
        out.append(Input(f"checkpoint {label!r}", path, affects=lambda k, c=label: k.checkpoint == c))
    options = metric_options(sweep.config)
    names = dict.fromkeys(n for m in sweep.metrics for n in m.spec.required_weights(options))
    out += [Input(f"weights {n!r}", weights.require(n)) for n in names]
    for m in sweep.metrics:
        ref = getattr(m.metric, "reference_path", None)
        if ref is not None:  # finalize reads it again: no stored part used it
            out.append(Input(f"reference statistics of {m.column}", Path(ref), affects=_none))
    if sweep.protocol is not None:
        out.append(Input(f"protocol {sweep.protocol.name!r}", value=sweep.protocol.version, affects=_none))
    return out
