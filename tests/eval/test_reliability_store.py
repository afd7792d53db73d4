"""Reliability of a run dir under faults (issue 20, part A; cases of shared/reference/reliability_probe.md):
pinned inputs (RD22, RD23), verified parts (RD10, RD11, RD13), verified caches (EV5-EV9, EV11), one writer per run
dir (RD16), and the Ctrl-C message (RD6). docs/reliability.md lists the guarantees these tests check."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from cfbench.cli import main
from cfbench.data.faces import FileSource, load_face, resize_cache_path
from cfbench.errors import BadInputError
from cfbench.eval.pins import Input, compare
from cfbench.eval.runner import FidelityWeightSweep
from cfbench.eval.store import RunDirLockedError, RunLock, RunStore, StoreError, check_unlocked
from cfbench.hashing import sha256_bytes
from cfbench.metrics.cache import FeatureCache, GtSideEntry, restore_entries, store_entries
from tests.eval.sweeps import face_folder, sweep_config

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "metrics"
TINY = Path(__file__).resolve().parents[2] / "cfbench" / "weights_bundled" / "codeformer_tiny.safetensors"


@pytest.fixture
def faces(tmp_path):
    """A folder dataset with 2 of the real GT faces."""
    return face_folder(tmp_path, 2)


def run(root, run_dir, logs=None, rehash=False, **kw):
    """A 2-face sweep at one w, one face per part, into `run_dir`; returns its results (model time dropped)."""
    log = logs.append if logs is not None else (lambda _: None)
    config = sweep_config(root, run_dir, **{"w": "0", "metrics": "psnr", "part_size": 1, **kw})
    FidelityWeightSweep(config, log=log).run(rehash=rehash)
    return pd.read_parquet(Path(run_dir) / "results.parquet").drop(columns=["model_ms_per_face"])


def replace_image(path: Path, other: Path) -> None:
    path.write_bytes(other.read_bytes())
    os.utime(path, ns=(1, 1))  # another mtime for sure, whatever the clock's resolution


# --- pinned inputs --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_after_a_dataset_image_changed_is_refused_naming_the_file(faces, tmp_path):
    run(faces, tmp_path / "run", limit=1)
    pins = json.loads((tmp_path / "run" / "manifest.json").read_text())["inputs"]
    name = sorted((faces / "gt").iterdir())[0]
    pin = pins[f"gt image {name.stem!r}"]
    assert pin["sha256"] == sha256_bytes(name.read_bytes()) and pin["path"] == str(name)
    assert pins["checkpoint 'codeformer_tiny'"]["sha256"] == sha256_bytes(TINY.read_bytes())
    replace_image(name, sorted((FIXTURES / "gt").glob("*.png"))[2])
    with pytest.raises(BadInputError, match=rf"1 input\(s\) changed .*gt image '{name.stem}' \({name}\): sha256"):
        run(faces, tmp_path / "run", limit=1)


@pytest.mark.slow
def test_a_checkpoint_overwritten_at_the_same_path_is_refused_and_rehash_recomputes_its_parts(faces, tmp_path):
    ckpt = tmp_path / "mut.safetensors"
    shutil.copy(TINY, ckpt)
    run(faces, tmp_path / "run", checkpoints=(str(ckpt),))
    weights = load_file(TINY)
    g = torch.Generator().manual_seed(0)
    noisy = {k: v + 0.05 * v.std() * torch.randn(v.shape, generator=g) if v.is_floating_point() and v.numel() > 1
             else v for k, v in weights.items()}  # fmt: skip
    from safetensors import safe_open

    with safe_open(str(TINY), "pt") as f:
        metadata = f.metadata()
    save_file(noisy, str(ckpt), metadata=metadata)
    with pytest.raises(BadInputError, match=r"checkpoint 'mut' \(.*mut.safetensors\): sha256"):
        run(faces, tmp_path / "run", checkpoints=(str(ckpt),))
    logs = []
    rehashed = run(faces, tmp_path / "run", logs, rehash=True, checkpoints=(str(ckpt),))
    assert any("recomputing 2 stored part(s)" in line for line in logs)
    pd.testing.assert_frame_equal(rehashed, run(faces, tmp_path / "fresh", checkpoints=(str(ckpt),)))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["provenance"]["checkpoints"]["mut"]["sha256"] == sha256_bytes(ckpt.read_bytes())
    assert "checkpoint 'mut'" in manifest["resumed"][-1]["rehashed"][0]


def test_pins_trust_size_and_mtime_and_rehash_trusts_nothing(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"one")
    pins, changes = compare({}, [Input("a", f)])
    assert changes == [] and pins["a"]["sha256"] == sha256_bytes(b"one")
    os.utime(f, ns=(5, 5))  # touched, same content: re-hashed, not a change, pinned with the new mtime
    touched, changes = compare(pins, [Input("a", f)])
    assert changes == [] and touched["a"]["mtime_ns"] == 5
    st = f.stat()
    f.write_bytes(b"two")  # same size, mtime put back: only --rehash sees it
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert compare(touched, [Input("a", f)])[1] == []
    (change,) = compare(touched, [Input("a", f)], rehash=True)[1]
    assert change.new["sha256"] == sha256_bytes(b"two")
    # an input added or removed is a change too
    added = compare(touched, [Input("a", f), Input("b", value="x")])[1]
    removed = compare(touched, [])[1]
    assert added[0].describe() == "b was added" and removed[0].describe() == f"a ({f}) was removed"


# --- verified parts -------------------------------------------------------------------------------------------


def _store(run_dir, logs):
    store = RunStore(run_dir, log=logs.append)
    store.open({"x": 1}, {})
    return store


def _rows(batch):
    return pd.DataFrame({"checkpoint": "c", "severity": "2", "w": [0.0, 1.0], "image_id": f"i{batch}", "psnr": 20.0})


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "flipped byte in rows": lambda rows, marker: _flip(rows, len(rows.read_bytes()) // 2),
    "rows file deleted": lambda rows, marker: rows.unlink(),
    "marker truncated": lambda rows, marker: marker.write_bytes(marker.read_bytes()[:100]),
    "marker emptied": lambda rows, marker: marker.write_bytes(b""),
    "flipped byte in marker": lambda rows, marker: _flip(marker, len(marker.read_bytes()) // 3),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_part_is_removed_with_a_notice_and_can_be_written_again(tmp_path, damage):
    logs = []
    store = _store(tmp_path / "run", logs)
    for b in range(2):
        store.write_part(("c", "2", b), _rows(b), codes={f"i{b}": np.arange(4)})
    rows = sorted((tmp_path / "run" / "parts").glob("*b000001*.parquet"))[0]
    marker = rows.with_suffix(".npz")
    DAMAGE[damage](rows, marker)
    fresh = RunStore(tmp_path / "run", log=logs.append)  # a new process: nothing verified yet
    fresh.open({"x": 1}, {})
    assert set(fresh.done_parts()) == {("c", "2", 0)}
    assert len(logs) == 1 and "damaged" in logs[0] and "recomputed" in logs[0]
    assert not marker.exists() and not rows.exists()
    fresh.write_part(("c", "2", 1), _rows(1), codes={"i1": np.arange(4)})  # no "already stored"
    fresh.finalize()
    assert len(pd.read_parquet(tmp_path / "run" / "results.parquet")) == 4


def test_a_part_damaged_during_the_run_stops_finalize_instead_of_leaving_it_out(tmp_path):
    logs = []
    store = _store(tmp_path / "run", logs)
    store.write_part(("c", "2", 0), _rows(0))
    store.write_part(("c", "2", 1), _rows(1))
    _flip(sorted((tmp_path / "run" / "parts").glob("*b000001*.parquet"))[0], 200)
    with pytest.raises(StoreError, match=r"part \('c', '2', 1\) is damaged .*run the same command again"):
        store.finalize()


@pytest.mark.slow
def test_a_flipped_byte_in_a_stored_part_is_recomputed_to_the_undisturbed_results(faces, tmp_path):
    whole = run(faces, tmp_path / "whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "hit")
    (tmp_path / "hit" / "results.parquet").unlink()
    part = sorted((tmp_path / "hit" / "parts").glob("*b000001*.parquet"))[0]
    psnr = np.float64(pd.read_parquet(part)["psnr"].iloc[0]).tobytes()
    data = bytearray(part.read_bytes())
    at = bytes(data).index(psnr) + 6  # a bit of the stored psnr: the file stays a valid parquet (probe RD13)
    data[at] ^= 0x01
    part.write_bytes(bytes(data))
    assert pd.read_parquet(part)["psnr"].iloc[0] != whole["psnr"].iloc[1]
    logs = []
    pd.testing.assert_frame_equal(run(faces, tmp_path / "hit", logs), whole)
    assert sum("damaged" in line for line in logs) == 1


# --- verified caches ------------------------------------------------------------------------------------------


CACHE_DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "emptied": lambda p: p.write_bytes(b""),
    "flipped byte": lambda p: _flip(p, len(p.read_bytes()) // 2),
    "rewritten with other values": lambda p: np.savez(p, values=np.full(3, 40.0)),
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGE))
def test_a_damaged_cache_entry_is_a_miss_and_is_rewritten(tmp_path, damage):
    cache = FeatureCache(tmp_path / "cache")
    got = {}

    def entry():
        return GtSideEntry("pose", "gt_pose", {"dataset": "d"}, 1, got.update, lambda: {"values": np.arange(3.0)})

    store_entries([entry()], cache)
    path = cache.path("gt_pose", entry().parts)
    CACHE_DAMAGE[damage](path)
    assert restore_entries([entry()], cache) != [] and got == {}  # a miss: to compute again
    store_entries([entry()], cache)
    assert restore_entries([entry()], cache) == [] and got["values"].tolist() == [0.0, 1.0, 2.0]


def test_cache_keys_carry_the_cfbench_version(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    before = cache.path("k", {"a": 1})
    monkeypatch.setattr("cfbench.metrics.cache.__version__", "999")
    assert cache.path("k", {"a": 1}) != before


def test_a_resized_face_cache_file_replaced_by_another_face_is_rebuilt(tmp_path):
    big = tmp_path / "big.png"
    face = cv2.imread(str(sorted((FIXTURES / "gt").glob("*.png"))[0]))
    cv2.imwrite(str(big), cv2.resize(face, (600, 600), interpolation=cv2.INTER_CUBIC))
    first, _ = load_face(FileSource(big))
    cached = resize_cache_path(sha256_bytes(big.read_bytes()))
    assert cached.is_file()
    shutil.copy(sorted((FIXTURES / "gt").glob("*.png"))[1], cached)  # a valid 512 face, not this one (probe EV11)
    again, _ = load_face(FileSource(big))
    assert torch.equal(again, first)
    assert torch.equal(load_face(FileSource(big))[0], first)  # rewritten: served from the cache again


# --- one writer per run dir -----------------------------------------------------------------------------------


def test_a_second_process_on_a_locked_run_dir_exits_2_naming_the_holder(faces, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code = (  # what RunLock does, without importing cfbench (fast)
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('ok', flush=True); "
        "time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run" / ".lock")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"ok"
        args = ["eval", "--dataset", f"folder:{faces}", "--checkpoint", "codeformer_tiny", "--metrics", "psnr"]
        assert main([*args, "--w", "0", "--device", "cpu", "--run-dir", str(tmp_path / "run")]) == 2
        (err,) = capsys.readouterr().err.strip().splitlines()  # refused before any setup or output
        assert err.startswith("error: ") and f"in use by process {holder.pid}" in err
        assert not (tmp_path / "run" / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    """A kill -9 leaves the lock file with its PID (test_runner's killed run resumes through this path)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text(f"{dead.pid}\n")
    logs = []
    with RunLock(tmp_path / "run", log=logs.append):
        assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
    assert logs == [
        f"note: took over the lock of {tmp_path / 'run'} from process {dead.pid}, which is no longer running"
    ]
    assert not (tmp_path / "run" / ".lock").exists()  # released


def test_the_lock_refuses_a_second_holder_and_is_free_after_release(tmp_path):
    check_unlocked(tmp_path / "run")
    assert not (tmp_path / "run").exists()  # the early check creates nothing
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunDirLockedError, match=f"in use by process {os.getpid()}"):
            RunLock(tmp_path / "run").acquire()
        with pytest.raises(RunDirLockedError, match=f"in use by process {os.getpid()}"):
            check_unlocked(tmp_path / "run")
    check_unlocked(tmp_path / "run")
    with RunLock(tmp_path / "run"):
        pass


# --- interrupting a run ---------------------------------------------------------------------------------------


def test_ctrl_c_during_eval_says_how_to_resume_and_exits_130(faces, tmp_path, capsys, monkeypatch):
    def interrupted(self, rehash=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(FidelityWeightSweep, "run", interrupted)
    args = ["eval", "--dataset", f"folder:{faces}", "--checkpoint", "codeformer_tiny", "--metrics", "psnr"]
    assert main([*args, "--device", "cpu", "--run-dir", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "interrupted" in x]
    assert "run the same command again to resume" in line and str(tmp_path / "run") in line
