"""nox sessions: tests (the README's test line), lint, bench, gpu (the prepared GPU check)."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Install with every extra and run the whole suite (slow end-to-end tests included)."""
    session.install("-e", ".[all,dev]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "cfbench", "degradations", "reports", "tests", "benchmarks", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (not tests): ratios against a baseline measured in the same run."""
    session.install("-e", ".[metrics,dev]")  # bench_metrics' references: lpips, scikit-image (pytorch-fid: dev)
    for script in (
        "benchmarks/bench_model.py",
        "benchmarks/bench_degradations.py",
        "benchmarks/bench_metrics.py",
        "benchmarks/bench_eval.py",
        "benchmarks/bench_train.py",
    ):
        session.run("python", script, *session.posargs)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """The prepared GPU check (benchmarks/gpu_check.py) in the current environment: a GPU machine may have no
    package registry, so nothing is installed. `nox -s gpu -- --dry-run --out /tmp/check.json` rehearses on a CPU."""
    session.run("python", "benchmarks/gpu_check.py", *(session.posargs or ["--out", "gpu_check.json"]))
