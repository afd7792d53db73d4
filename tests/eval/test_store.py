"""The results store: new/resume/conflict, atomic parts, resume after a crash, finalize (merge, idempotence,
group means, codes), and FID accumulators merged across parts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cfbench.errors import BadInputError
from cfbench.eval.store import CODES, GROUPS, MANIFEST, RESULTS, GroupKey, PartKey, RunStore, StoreError
from cfbench.eval.store.finalize import file_digest
from cfbench.eval.store.schema import (
    CODES_ARRAYS,
    DIRECTIONS,
    GROUP_COLUMNS,
    ID_COLUMNS,
    MANIFEST_KEYS,
    N_IMAGES,
    NON_METRIC_COLUMNS,
    OUTPUTS,
    SCHEMA_VERSION,
    SKIPPED_METRICS,
    TABLES,
)
from cfbench.metrics.base import FeatureSet, FeatureStatistics

WS = (0.0, 0.5, 1.0)
CONFIG = {"dataset": "demo", "w": list(WS), "severity": ["0", "2"], "seed": 0, "batch_size": 2, "device": "cpu"}
PROV = {"cfbench": "0.1.0", "device": "cpu", "git": None}
IGNORE = ("batch_size", "device", "run_dir")
DIM = 6
RUN_SMALL = Path(__file__).parents[1] / "data" / "run_small" / "run"


def make_rows(key: PartKey, ids: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng([seed, key.batch, len(key.severity)])
    records = []
    for image_id in ids:
        for w in WS:
            records.append(
                {
                    "image_id": image_id,
                    "checkpoint": key.checkpoint,
                    "severity": key.severity,
                    "w": w,
                    "psnr[y]": float(rng.normal(25, 2)),
                    "lpips[vgg]": float(rng.uniform(0.1, 0.5)),
                    "degradation": json.dumps({"blur": {"sigma": float(rng.uniform(0, 3))}}),
                    "yaw": float(rng.normal(0, 20)),
                    "frontal": bool(rng.random() > 0.5),
                }
            )
    return pd.DataFrame(records)


def make_codes(ids: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: rng.integers(0, 1024, 256).astype(np.int16) for i in ids}


def make_features(n: int, seed: int) -> dict[float, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {w: {"fid[toy]": rng.normal(size=(n, DIM)).astype(np.float32)} for w in WS}


def open_store(path, config=CONFIG) -> RunStore:
    store = RunStore(path)
    store.open(config, PROV, ignore_keys=IGNORE)
    return store


PLAN = [  # (key, image ids)
    (PartKey("official", "0", 0), ["a", "b"]),
    (PartKey("official", "0", 1), ["c"]),
    (PartKey("official", "2", 0), ["a", "b"]),
    (PartKey("official", "2", 1), ["c"]),
]


def write_plan(store: RunStore, plan=PLAN, skip=()) -> None:
    for i, (key, ids) in enumerate(plan):
        if key in skip:
            continue
        store.write_part(key, make_rows(key, ids), make_codes(ids, i), make_features(len(ids), i))


def list_files(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------ open / resume


def test_new_run_writes_manifest(tmp_path):
    run = tmp_path / "run"
    open_store(run)
    manifest = json.loads((run / MANIFEST).read_text())
    assert manifest["status"] == "running" and manifest["started"] and manifest["finished"] is None
    assert manifest["config"] == CONFIG and manifest["provenance"] == PROV
    assert list_files(run) == [MANIFEST]  # no temp file left


def test_empty_existing_dir_is_a_new_run(tmp_path):
    open_store(tmp_path)
    assert (tmp_path / MANIFEST).is_file()


def test_resume_with_same_config_and_ignored_keys(tmp_path):
    open_store(tmp_path)
    store = open_store(tmp_path, {**CONFIG, "batch_size": 8, "device": "cuda", "run_dir": "/elsewhere"})
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["config"] == CONFIG  # the config that made the results stays
    assert len(manifest["resumed"]) == 1 and manifest["resumed"][0]["config"]["batch_size"] == 8
    assert store.manifest["status"] == "running"


def test_resume_tuple_and_list_configs_compare_equal(tmp_path):
    open_store(tmp_path)
    open_store(tmp_path, {**CONFIG, "w": tuple(WS)})


def test_conflicting_config_names_the_keys(tmp_path):
    open_store(tmp_path)
    with pytest.raises(BadInputError) as info:
        open_store(tmp_path, {**CONFIG, "w": [0.0, 1.0], "seed": 1})
    msg = str(info.value)
    assert "w: [0.0, 0.5, 1.0] -> [0.0, 1.0]" in msg and "seed: 0 -> 1" in msg
    assert "another --run-dir" in msg and "\n" not in msg
    assert json.loads((tmp_path / MANIFEST).read_text())["config"] == CONFIG  # untouched


def test_conflict_on_nested_and_missing_keys(tmp_path):
    config = {**CONFIG, "metrics": {"lpips": {"net": "vgg"}}}
    open_store(tmp_path, config)
    with pytest.raises(BadInputError, match=r"metrics\.lpips\.net: \"vgg\" -> \"alex\""):
        open_store(tmp_path, {**CONFIG, "metrics": {"lpips": {"net": "alex"}}})
    with pytest.raises(BadInputError, match=r"limit: \(absent\) -> 5"):
        open_store(tmp_path, {**config, "limit": 5})


def test_non_run_dir_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not a cfbench run directory"):
        open_store(tmp_path)
    assert list_files(tmp_path) == ["notes.txt"]


def test_foreign_or_broken_manifest_is_refused(tmp_path):
    (tmp_path / MANIFEST).write_text('{"name": "something else"}')
    with pytest.raises(BadInputError, match="not a cfbench eval manifest"):
        open_store(tmp_path)
    (tmp_path / MANIFEST).write_text("{broken")
    with pytest.raises(BadInputError, match="unreadable"):
        open_store(tmp_path)


def test_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInputError, match="is a file"):
        open_store(tmp_path / "f")


def test_secondary_open_does_not_write(tmp_path):
    with pytest.raises(Exception, match="rank 0"):
        RunStore(tmp_path).open(CONFIG, PROV, primary=False)
    open_store(tmp_path)
    before = (tmp_path / MANIFEST).read_bytes()
    RunStore(tmp_path).open(CONFIG, PROV, IGNORE, primary=False)
    assert (tmp_path / MANIFEST).read_bytes() == before


def test_committed_run_dir_resumes_with_the_sweep_ignore_keys(tmp_path):
    """A run dir written before (the committed fixture) still opens for resume; the store's default ignore keys
    are the sweep's NON_RESULT_KEYS, so another batch size or device resumes it."""
    run = tmp_path / "run"
    shutil.copytree(RUN_SMALL, run, ignore=shutil.ignore_patterns("images"))
    config = json.loads((run / MANIFEST).read_text())["config"]
    store = RunStore(run)
    assert config["batch_size"] != 7
    store.open({**config, "batch_size": 7, "device": "meta"}, PROV)
    assert store.manifest["status"] == "running" and store.manifest["resumed"][-1]["config"]["device"] == "meta"
    with pytest.raises(BadInputError, match="another config"):
        RunStore(run).open({**config, "seed": config["seed"] + 1}, PROV)


def test_committed_run_dir_follows_the_schema():
    """The schema module describes what the runner wrote into the committed fixture: files, columns, arrays,
    manifest keys."""
    manifest = json.loads((RUN_SMALL / MANIFEST).read_text())
    assert set(MANIFEST_KEYS) | {OUTPUTS, DIRECTIONS, SKIPPED_METRICS} <= set(manifest)
    assert manifest["kind"] == "cfbench-eval-run" and manifest["schema_version"] == SCHEMA_VERSION
    results = pd.read_parquet(RUN_SMALL / RESULTS)
    assert tuple(results.columns[: len(ID_COLUMNS)]) == ID_COLUMNS
    assert set(results.columns) == {*NON_METRIC_COLUMNS, *manifest[OUTPUTS]["metric_columns"]}
    groups = pd.read_parquet(RUN_SMALL / GROUPS)
    assert tuple(groups.columns[: len(GROUP_COLUMNS) + 1]) == (*GROUP_COLUMNS, N_IMAGES)
    with np.load(RUN_SMALL / CODES) as z:
        assert set(CODES_ARRAYS) <= set(z.files)
    assert all((RUN_SMALL / name).is_file() for name in TABLES.values())


def test_other_schema_version_is_refused(tmp_path):
    open_store(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps({**manifest, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(BadInputError, match=f"schema version {SCHEMA_VERSION + 1}, this cfbench writes"):
        open_store(tmp_path)


# -------------------------------------------------------------------------------------------------- parts


def test_parts_and_done_parts_after_reopen(tmp_path):
    store = open_store(tmp_path)
    assert store.done_parts() == set()
    write_plan(store, PLAN[:3])
    assert store.done_parts() == {k for k, _ in PLAN[:3]}
    again = open_store(tmp_path)
    assert again.done_parts() == {k for k, _ in PLAN[:3]}
    assert again.done_image_ids() == {("official", "0"): {"a", "b", "c"}, ("official", "2"): {"a", "b"}}
    assert not [f for f in list_files(tmp_path) if f.endswith(".tmp")]


def test_part_names_are_safe_and_distinct(tmp_path):
    store = open_store(tmp_path)
    keys = [PartKey("/ckpt/a b.pth", "0", 0), PartKey("_ckpt_a_b.pth", "0", 0), PartKey("../x", "0.5", 3)]
    for key in keys:
        store.write_part(key, make_rows(key, ["x"]))
    assert store.done_parts() == set(keys)
    assert all(p.parent.name == "parts" for p in (tmp_path / "parts").iterdir())


def test_crash_inside_a_write_leaves_nothing(tmp_path, monkeypatch):
    store = open_store(tmp_path)
    key, ids = PLAN[0]

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-write")

    # crash while the rows are written
    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(RuntimeError):
        store.write_part(key, make_rows(key, ids), make_codes(ids))
    monkeypatch.undo()
    assert store.done_parts() == set() and list_files(tmp_path) == [MANIFEST]

    # crash while the commit marker is written (after the rows landed): half the bytes, then the process dies
    import pathlib

    real = pathlib.Path.write_bytes

    def half_written(self, data):
        real(self, data[: len(data) // 2])
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_written)
    with pytest.raises(RuntimeError):
        store.write_part(key, make_rows(key, ids), make_codes(ids))
    monkeypatch.undo()
    assert store.done_parts() == set() and list_files(tmp_path) == [MANIFEST]

    # and the part can then be written
    store.write_part(key, make_rows(key, ids), make_codes(ids))
    assert store.done_parts() == {key}


def test_a_rows_file_without_marker_is_not_done(tmp_path):
    store = open_store(tmp_path)
    key, ids = PLAN[0]
    store.write_part(key, make_rows(key, ids))
    next((tmp_path / "parts").glob("*.npz")).unlink()  # as if killed between the two renames
    assert open_store(tmp_path).done_parts() == set()


def test_write_part_checks(tmp_path):
    store = open_store(tmp_path)
    key, ids = PLAN[0]
    rows = make_rows(key, ids)
    with pytest.raises(ValueError, match="severity '0', not '2'"):
        store.write_part(PartKey("official", "2", 0), rows)
    with pytest.raises(ValueError, match="lack the columns"):
        store.write_part(key, rows.drop(columns="w"))
    with pytest.raises(ValueError, match="repeat"):
        store.write_part(key, pd.concat([rows, rows]))
    with pytest.raises(ValueError, match="no rows in the part"):
        store.write_part(key, rows, {"zzz": np.zeros(256, np.int16)})
    with pytest.raises(ValueError, match="do not fit int16"):
        store.write_part(key, rows, {"a": np.full(256, 40000)})
    with pytest.raises(TypeError, match="batch index"):
        store.write_part(("official", "0", -1), rows)
    assert store.done_parts() == set()
    store.write_part(key, rows)
    with pytest.raises(ValueError, match="already stored"):
        store.write_part(key, rows)
    store.write_part(key, rows, overwrite=True)


def test_write_before_open_is_an_error(tmp_path):
    key, ids = PLAN[0]
    with pytest.raises(RuntimeError, match="open"):
        RunStore(tmp_path).write_part(key, make_rows(key, ids))


# ----------------------------------------------------------------------------------------------- finalize


def finalize_all(path) -> RunStore:
    store = open_store(path)
    write_plan(store)
    store.finalize(
        [{"checkpoint": "official", "severity": s, "w": w, "fid[toy]": 10 * w + int(s)} for s in "02" for w in WS]
    )
    return store


def test_finalize_merges_sorted_without_duplicates(tmp_path):
    finalize_all(tmp_path)
    results = pd.read_parquet(tmp_path / RESULTS)
    expected = pd.concat([make_rows(k, ids) for k, ids in PLAN], ignore_index=True)
    assert len(results) == len(expected) == 2 * 3 * len(WS)
    keys = ["checkpoint", "severity", "w", "image_id"]
    assert not results.duplicated(keys).any()
    assert results[keys].equals(results[keys].sort_values(keys).reset_index(drop=True))
    merged = expected.sort_values(keys).reset_index(drop=True)[results.columns]
    pd.testing.assert_frame_equal(results, merged, check_dtype=False)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["status"] == "complete" and manifest["finished"]
    assert manifest["outputs"]["results"]["rows"] == len(results)
    assert manifest["outputs"]["results"]["sha256"] == file_digest(tmp_path / RESULTS)
    assert manifest["outputs"]["distribution_columns"] == ["fid[toy]"]


def test_finalize_is_idempotent(tmp_path):
    store = finalize_all(tmp_path)
    files = {f: (tmp_path / f).read_bytes() for f in list_files(tmp_path)}
    store.finalize(
        [{"checkpoint": "official", "severity": s, "w": w, "fid[toy]": 10 * w + int(s)} for s in "02" for w in WS]
    )
    assert {f: (tmp_path / f).read_bytes() for f in list_files(tmp_path)} == files


def test_group_means_equal_pandas(tmp_path):
    finalize_all(tmp_path)
    results = pd.read_parquet(tmp_path / RESULTS)
    groups = pd.read_parquet(tmp_path / GROUPS)
    direct = results.groupby(["checkpoint", "severity", "w"])[["psnr[y]", "lpips[vgg]", "yaw"]].mean().reset_index()
    assert list(groups.columns[:4]) == ["checkpoint", "severity", "w", "n_images"]
    assert (groups["n_images"] == 3).all() and "frontal" not in groups.columns
    pd.testing.assert_frame_equal(groups[direct.columns], direct, check_exact=False, rtol=1e-12)
    assert groups.loc[(groups.severity == "2") & (groups.w == 0.5), "fid[toy]"].item() == 7.0


def test_finalize_metric_columns_and_bad_distribution_rows(tmp_path):
    store = open_store(tmp_path)
    write_plan(store)
    store.finalize(metric_columns=["psnr[y]"])
    assert list(pd.read_parquet(tmp_path / GROUPS).columns) == ["checkpoint", "severity", "w", "n_images", "psnr[y]"]
    with pytest.raises(ValueError, match="matches no results"):
        store.finalize([{"checkpoint": "official", "severity": "3", "w": 0.5, "fid[toy]": 1.0}])
    with pytest.raises(ValueError, match="repeat the columns"):
        store.finalize([{"checkpoint": "official", "severity": "0", "w": 0.5, "psnr[y]": 1.0}])


def test_finalize_refuses_overlapping_parts(tmp_path):
    store = open_store(tmp_path)
    write_plan(store)
    key = PartKey("official", "0", 7)  # e.g. a resume with another batch size that re-cut the images
    store.write_part(key, make_rows(key, ["c"]))
    with pytest.raises(StoreError, match="repeat"):
        store.finalize()
    assert not (tmp_path / RESULTS).exists()


def test_codes(tmp_path):
    finalize_all(tmp_path)
    with np.load(tmp_path / CODES) as z:
        assert z["codes"].dtype == np.int16 and z["codes"].shape == (6, 256)
        assert list(zip(z["severity"], z["image_id"], strict=True)) == [(s, i) for s in "02" for i in "abc"]
        assert (z["n_tokens"] == 256).all()
        expected = make_codes(["a", "b"], 2)["b"]  # part 2 is severity 2, images a and b
        np.testing.assert_array_equal(z["codes"][4], expected)


def test_code_sets_are_merged_by_name_and_padded_where_a_part_has_none(tmp_path):
    store = open_store(tmp_path)
    for i, (key, ids) in enumerate(PLAN):
        codes = make_codes(ids, i)
        sets = {"nn_codes": {k: (v + 1) % 1024 for k, v in codes.items()}} if key.severity == "2" else None
        store.write_part(key, make_rows(key, ids), codes, code_sets=sets)
    store.finalize()
    with np.load(tmp_path / CODES) as z:
        assert z["nn_codes"].dtype == np.int16 and z["nn_codes"].shape == (6, 256)
        assert (z["nn_codes"][:3] == -1).all()  # severity 0 stored none
        np.testing.assert_array_equal(z["nn_codes"][3:], (z["codes"][3:] + 1) % 1024)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["outputs"]["codes"]["code_sets"] == ["nn_codes"]


def test_bad_code_sets_are_refused(tmp_path):
    store = open_store(tmp_path)
    key, ids = PLAN[0]
    codes = make_codes(ids)
    with pytest.raises(ValueError, match="same images"):
        store.write_part(key, make_rows(key, ids), codes, code_sets={"nn_codes": {"a": codes["a"]}})
    with pytest.raises(ValueError, match="must be lower_case"):
        store.write_part(key, make_rows(key, ids), codes, code_sets={"image_id": codes})
    with pytest.raises(ValueError, match="another length"):
        short = {k: v[:10] for k, v in codes.items()}
        store.write_part(key, make_rows(key, ids), codes, code_sets={"nn_codes": short})
    assert not store.done_parts()


def test_resume_after_crash_gives_the_uninterrupted_result(tmp_path):
    full = tmp_path / "full"
    finalize_all(full)
    resumed = tmp_path / "resumed"
    first = open_store(resumed)
    write_plan(first, skip={PLAN[1][0], PLAN[3][0]})  # "killed" before these parts
    second = open_store(resumed)
    todo = [(k, ids) for k, ids in PLAN if k not in second.done_parts()]
    assert [k for k, _ in todo] == [PLAN[1][0], PLAN[3][0]]
    write_plan(second, skip=second.done_parts())
    second.finalize(
        [{"checkpoint": "official", "severity": s, "w": w, "fid[toy]": 10 * w + int(s)} for s in "02" for w in WS]
    )
    for name in (RESULTS, GROUPS, CODES):
        assert (resumed / name).read_bytes() == (full / name).read_bytes()


# ----------------------------------------------------------------------------------------------- features


def test_merged_features_equal_one_accumulator(tmp_path):
    store = open_store(tmp_path)
    write_plan(store)
    merged = store.merged_features()
    assert set(merged) == {GroupKey("official", s, w) for s in "02" for w in WS}
    for severity in "02":
        parts = [(i, ids) for i, (k, ids) in enumerate(PLAN) if k.severity == severity]
        for w in WS:
            one = FeatureStatistics(DIM)
            one.add(np.concatenate([make_features(len(ids), i)[w]["fid[toy]"] for i, ids in parts]))
            got = merged[GroupKey("official", severity, w)]["fid[toy]"]
            assert got.n == one.n == 3
            np.testing.assert_allclose(got.sum, one.sum, rtol=1e-12)
            np.testing.assert_allclose(got.outer, one.outer, rtol=1e-12)
            np.testing.assert_allclose(got.cov, one.cov, rtol=1e-10, atol=1e-12)


def test_merged_feature_sets_keep_the_features_in_part_order_and_sums_stay_the_same(tmp_path):
    store = open_store(tmp_path)
    write_plan(store)
    sums = store.merged_features()
    sets = store.merged_features({"fid[toy]": FeatureSet})
    for severity in "02":
        parts = [(i, ids) for i, (k, ids) in enumerate(PLAN) if k.severity == severity]
        for w in WS:
            group = GroupKey("official", severity, w)
            got = sets[group]["fid[toy]"]
            assert isinstance(got, FeatureSet) and not isinstance(sums[group]["fid[toy]"], FeatureSet)
            want = np.concatenate([make_features(len(ids), i)[w]["fid[toy]"] for i, ids in parts])
            assert np.array_equal(got.features, want)  # sorted part keys, rows in stored order
            for k, v in sums[group]["fid[toy]"].to_arrays().items():
                assert np.array_equal(got.to_arrays()[k], v)  # the sums FID reads are unchanged, bit for bit


def test_a_feature_set_cannot_be_merged_from_stored_sums(tmp_path):
    store = open_store(tmp_path)
    key, ids = PLAN[0]
    stats = FeatureStatistics(DIM)
    stats.add(np.ones((len(ids), DIM)))
    store.write_part(key, make_rows(key, ids), features={w: {"kid": stats} for w in WS})
    assert store.merged_features()[GroupKey(*key[:2], WS[0])]["kid"].n == len(ids)
    with pytest.raises(StoreError, match="stored as sums; FeatureSet needs the feature vectors"):
        store.merged_features({"kid": FeatureSet})


def test_feature_statistics_form_and_reopen(tmp_path):
    store = open_store(tmp_path)
    rng = np.random.default_rng(3)
    all_feats = rng.normal(size=(5, DIM))
    one = FeatureStatistics(DIM)
    one.add(all_feats)
    for batch, sl in enumerate([slice(0, 2), slice(2, 5)]):
        key = PartKey("official", "0", batch)
        ids = [f"img{i}" for i in range(sl.start, sl.stop)]
        stats = FeatureStatistics(DIM)
        stats.add(all_feats[sl])
        feats = {w: {"fid[toy]": stats} for w in WS}
        store.write_part(key, make_rows(key, ids), features=feats)
    merged = open_store(tmp_path).merged_features()[GroupKey("official", "0", 0.5)]["fid[toy]"]
    assert merged.n == 5
    np.testing.assert_allclose(merged.mean, one.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.cov, one.cov, rtol=1e-10)


def test_features_must_match_rows(tmp_path):
    store = open_store(tmp_path)
    key, ids = PLAN[0]
    with pytest.raises(ValueError, match="no rows in the part"):
        store.write_part(key, make_rows(key, ids), features={0.25: {"fid[toy]": np.zeros((2, DIM))}})
    with pytest.raises(ValueError, match="float"):
        store.write_part(key, make_rows(key, ids), features={0.5: {"fid[toy]": np.zeros(DIM)}})
