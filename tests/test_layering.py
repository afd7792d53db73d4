"""Layering: metrics and face analysis know nothing of the model package, and reading weights sits below them all.

Every import statement is read with `ast`, including those inside functions, so a lazy import cannot hide one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cfbench"


def imported_modules(source: str, package: list[str]) -> set[str]:
    """The absolute names of every module that an import statement of `source` names, and of every name it imports
    from one (`from a import b` gives `a` and `a.b`); `package` resolves relative imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _forbidden(source: str, package: list[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(
        name
        for name in imported_modules(source, package)
        if any(name == p or name.startswith(p + ".") for p in packages)
    )


def _file_imports(path: Path, packages: tuple[str, ...]) -> list[str]:
    package = list(path.relative_to(PACKAGE.parent).parent.parts)
    return _forbidden(path.read_text(encoding="utf-8"), package, packages)


@pytest.mark.parametrize("folder", ["metrics", "face"])
def test_metrics_and_face_do_not_import_the_models(folder):
    found = {
        str(p.relative_to(PACKAGE.parent)): bad
        for p in sorted((PACKAGE / folder).rglob("*.py"))
        if (bad := _file_imports(p, ("cfbench.models",)))
    }
    assert not found, f"cfbench/{folder} imports the model package: {found}"


def test_state_dict_sits_below_models_metrics_face_train_and_eval():
    upper = tuple(f"cfbench.{p}" for p in ("models", "metrics", "face", "train", "eval"))
    assert not _file_imports(PACKAGE / "state_dict.py", upper)


def test_the_check_sees_imports_inside_functions_and_relative_ones():
    probe = "def load():\n    from ..models import checkpoint\n    import cfbench.models.vqgan as v\n"
    assert _forbidden(probe, ["cfbench", "metrics"], ("cfbench.models",)) == [
        "cfbench.models",
        "cfbench.models.checkpoint",
        "cfbench.models.vqgan",
    ]
    assert not _forbidden("from cfbench.modelsx import y\n", ["cfbench", "metrics"], ("cfbench.models",))
