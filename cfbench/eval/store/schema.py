"""The run-directory schema of `cfbench eval`, declared once: file names, folder layout, columns, manifest keys.

Layout of a run dir::

    .lock                 held by the process writing the run (`lock.RunLock`; holds its PID), absent otherwise
    manifest.json         MANIFEST_KEYS: kind, schema version, status (running/complete), started/finished, the
                          resolved config, provenance (cfbench version, metric backends and library versions,
                          weights hashes, seeds, device, git revision), resumes, and after finalize `outputs` and
                          the caller's entries (metric directions, skipped metrics, timings)
    parts/<stem>.parquet  the rows of one part: one row per image x w
    parts/<stem>.npz      the part's key, its code indices and its FID accumulators; written last, so it is the
                          commit marker: a part is done exactly when its .npz exists (and its .parquet beside it)
    results.parquet       all rows, sorted by ID_COLUMNS (checkpoint, severity, w, image_id)
    groups.parquet        per GROUP_COLUMNS: n_images, the mean of every metric column, and the distribution
                          metrics (FID)
    codes.npz             CODES_ARRAYS per (checkpoint, severity, image_id): the predicted code indices (they do
                          not depend on w), and any further code sets (``nn_codes``...), -1 where a part had none
    table.md/.csv/.tex    the fidelity-vs-quality table (`cfbench.eval.tables`)
    images/               the faces, when the run saved them: `restored_image_path`, `input_image_path`

Every reader and writer of a run dir (the store, tables, reports, regress) takes these names from here. A change
that old run dirs cannot be read with bumps SCHEMA_VERSION; the store then refuses them with a clear message.
"""

from __future__ import annotations

from pathlib import Path

RUN_KIND = "cfbench-eval-run"
SCHEMA_VERSION = 1

# files and folders of a run dir
MANIFEST = "manifest.json"
LOCK = ".lock"  # the one-writer lock file (cfbench.eval.store.lock)
RESULTS = "results.parquet"
GROUPS = "groups.parquet"
CODES = "codes.npz"
PARTS = "parts"
PART_ROWS_SUFFIX = ".parquet"
PART_MARKER_SUFFIX = ".npz"  # written last: a part is done when its marker exists
TABLES = {"md": "table.md", "csv": "table.csv", "tex": "table.tex"}
IMAGES = "images"

# columns of results.parquet and groups.parquet
ID_COLUMNS = ("checkpoint", "severity", "w", "image_id")  # unique per row of results.parquet
GROUP_COLUMNS = ("checkpoint", "severity", "w")  # unique per row of groups.parquet
N_IMAGES = "n_images"
POSE_COLUMNS = ("gt_yaw", "gt_pitch", "gt_roll")  # head pose of the GT face, degrees (NaN where none was found)
DEGRADATION = "degradation"  # the degradation parameters of the LQ face, a JSON string (None for given LQ)
MODEL_MS = "model_ms_per_face"  # model time per face over all w
NON_METRIC_COLUMNS = (*ID_COLUMNS, DEGRADATION, MODEL_MS, *POSE_COLUMNS)  # what the runner stores beside metrics

# arrays of codes.npz
CODES_KEY_ARRAYS = ("checkpoint", "severity", "image_id")  # one entry per stored image
CODES_ARRAYS = (*CODES_KEY_ARRAYS, "codes", "n_tokens")  # codes.npz always holds these
CODE_SET_PREFIX = "codeset_"  # a part marker's array of a further code set (write_part's code_sets)

# manifest.json
MANIFEST_KEYS = ("kind", "schema_version", "status", "started", "finished", "config", "provenance", "resumed")
OUTPUTS = "outputs"  # what finalize wrote
INPUTS = "inputs"  # input name -> its pin {path, size, mtime_ns, sha256} (cfbench.eval.pins)
RUNNING, COMPLETE = "running", "complete"  # the values of "status"
DIRECTIONS = "directions"  # metric column -> higher is better, recorded by the runner at finalize
SKIPPED_METRICS = "skipped_metrics"  # metric name -> why it did not run, recorded by the runner at finalize
TIMINGS = "timings"  # seconds per stage, rate, peak memory of the last process's work (cfbench.eval.timing)


def restored_image_path(run_dir: Path, checkpoint: str, severity: str, w: float, image_id: str) -> Path:
    """Where a saved restored face lies: ``images/<checkpoint>/severity_<severity>/w<w>/<image_id>.png``."""
    return run_dir / IMAGES / checkpoint / f"severity_{severity}" / f"w{w:g}" / f"{image_id}.png"


def input_image_path(run_dir: Path, kind: str, checkpoint: str, severity: str, image_id: str) -> Path:
    """Where a saved input face lies: `kind` ``lq`` under ``images/<checkpoint>/severity_<severity>/lq/``, ``gt``
    under ``images/gt/`` (shared by all checkpoints and severities)."""
    if kind == "gt":
        return run_dir / IMAGES / "gt" / f"{image_id}.png"
    return run_dir / IMAGES / checkpoint / f"severity_{severity}" / "lq" / f"{image_id}.png"
