"""`cfbench report` trusts a run dir only as `cfbench eval` left it (reliability probe RP5 and its notes): outputs
changed after the run finished, and metric directions that are not booleans, are refused with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cfbench.errors import BadInputError
from cfbench.eval.store.finalize import file_digest
from reports.load import load_run

RUN = Path(__file__).resolve().parents[1] / "data" / "run_small" / "run"


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """The committed small run, with the output hashes `finalize` now records."""
    out = tmp_path / "run"
    shutil.copytree(RUN, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("results", "groups"):
        record = manifest["outputs"][name]
        record["sha256"] = file_digest(out / record["file"])
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_a_finished_run_loads(run_dir):
    assert len(load_run(run_dir).results) == len(pd.read_parquet(RUN / "results.parquet"))


def test_results_cut_after_the_run_are_refused(run_dir):
    """RP5: keeping the first 4 rows of results.parquet gave an inconsistent report with exit 0."""
    path = run_dir / "results.parquet"
    pd.read_parquet(path).head(4).to_parquet(path, index=False)
    with pytest.raises(BadInputError, match=r"results\.parquet was changed after `cfbench eval` finished") as err:
        load_run(run_dir)
    assert "\n" not in str(err.value)


def test_directions_that_are_not_booleans_are_refused(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    column = next(iter(manifest["directions"]))
    manifest["directions"][column] = "yes"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match="directions must be true or false"):
        load_run(run_dir)
