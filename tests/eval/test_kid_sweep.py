"""`kid` inside a sweep: each group's value equals `kid` computed directly on the saved restored faces' features and
the GT set's features, and a run interrupted after its first part resumes to the same values.

The Inception weights are the seeded stand-in of tests/metrics/test_fid.py (no download); features are computed in
the sweep's batch arrangement (one face x both w per part, the GT faces in one batch), so they agree bit for bit.
`fid[gt]` is left out: its 2048-d matrix square root per group costs seconds, and its path is unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from cfbench.data import get_dataset, with_severity
from cfbench.eval.runner import FidelityWeightSweep
from cfbench.eval.store import RunStore
from cfbench.eval.store.schema import GROUPS, restored_image_path
from cfbench.imageio import read_image
from cfbench.metrics.fid import FID
from cfbench.metrics.inception import seeded_inception_state
from cfbench.metrics.kid import KID, kid
from tests.eval.test_runner import sweep_config, three_faces  # noqa: F401 (a fixture)

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
WS = (0.0, 1.0)


class Interrupted(Exception):
    pass


def _seed_inception() -> None:
    checkpoints = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(seeded_inception_state(), checkpoints / INCEPTION_FILE)


def _interrupt_after_first_part(monkeypatch) -> None:
    write = RunStore.write_part

    def write_once(self, *args, **kwargs):
        if self.done_parts():
            raise Interrupted
        write(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "write_part", write_once)


def _direct(cfg, run_dir: Path) -> dict[float, float]:
    """kid per w from the saved restored faces and the dataset's GT faces, in the run's face order."""
    metric = KID("cpu")
    data = with_severity(get_dataset(cfg.dataset), "2", seed=cfg.seed)
    samples = [data.load(i) for i in range(cfg.limit)]
    gt = metric.features(torch.stack([s.gt for s in samples])).double().numpy()
    pred: dict[float, list[torch.Tensor]] = {w: [] for w in WS}
    for s in samples:  # a part: one face at both w, one feature batch
        faces = torch.stack([read_image(restored_image_path(run_dir, "codeformer_tiny", "2", w, s.id)) for w in WS])
        for w, f in zip(WS, metric.features(faces).double(), strict=True):
            pred[w].append(f)
    return {w: kid(torch.stack(f).numpy(), gt)[0] for w, f in pred.items()}


@pytest.mark.slow
def test_kid_in_a_sweep_equals_kid_on_the_faces_and_survives_a_resume(three_faces, tmp_path, monkeypatch):  # noqa: F811
    _seed_inception()
    config = dict(metrics="kid", part_size=1, save_images=True, limit=2)
    whole = sweep_config(three_faces, tmp_path / "whole", **config)
    FidelityWeightSweep(whole, log=lambda _: None).run()
    groups = pd.read_parquet(tmp_path / "whole" / GROUPS).set_index("w")
    direct = _direct(whole, tmp_path / "whole")
    for w, want in direct.items():
        assert groups.loc[w, "n_images"] == 2
        assert abs(groups.loc[w, "kid"] - want) < 1e-9, (w, groups.loc[w, "kid"], want)
    assert abs(direct[0.0] - direct[1.0]) > 1e-6  # the groups differ, so a mix-up of groups would show

    resumed = sweep_config(three_faces, tmp_path / "resumed", **config)
    with monkeypatch.context() as m:
        _interrupt_after_first_part(m)
        with pytest.raises(Interrupted):
            FidelityWeightSweep(resumed, log=lambda _: None).run()
    assert len(RunStore(tmp_path / "resumed").done_parts()) == 1
    FidelityWeightSweep(resumed, log=lambda _: None).run()  # the GT feature set now comes from the cache
    again = pd.read_parquet(tmp_path / "resumed" / GROUPS).set_index("w")
    pd.testing.assert_frame_equal(again[["n_images", "kid"]], groups[["n_images", "kid"]])


@pytest.mark.slow
def test_fid_and_kid_in_one_sweep_share_one_feature_extraction(three_faces, tmp_path, monkeypatch):  # noqa: F811
    """fid[gt] and kid use the same Inception features: a sweep with both extracts them once per batch (GT side
    included) and gives kid the values of a kid-only sweep."""
    _seed_inception()
    calls: list[int] = []
    features = FID.features  # KID inherits it

    def counted(self, images):
        calls.append(images.shape[0])
        return features(self, images)

    monkeypatch.setattr(FID, "features", counted)
    runs = {}
    for name, metrics in (("kid", "kid"), ("both", "fid,kid")):
        monkeypatch.setenv("CFBENCH_HOME", str(tmp_path / f"home_{name}"))  # no GT features from the other run
        calls.clear()
        cfg = sweep_config(three_faces, tmp_path / name, metrics=metrics, part_size=1, limit=2)
        FidelityWeightSweep(cfg, log=lambda _: None).run()
        runs[name] = (list(calls), pd.read_parquet(tmp_path / name / GROUPS).set_index("w"))
    assert runs["both"][0] == runs["kid"][0] and sum(runs["kid"][0]) == 2 + 2 * len(WS)  # GT once, then each part
    pd.testing.assert_series_equal(runs["both"][1]["kid"], runs["kid"][1]["kid"])
    assert runs["both"][1]["fid[gt]"].notna().all()
