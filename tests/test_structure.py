"""The import structure of cfbench/, degradations/ and reports/, read from the source with `ast` (module-level and
function-level imports alike): no import cycle between modules, no underscore name taken from another package,
and the layering of docs/architecture.md (which part must not import which)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cfbench", "degradations", "reports")

# `cfbench.restore` is imported lazily by cfbench/__init__.py so that `import cfbench` does not import torch;
# cfbench.restoration imports (through models) `cfbench.__version__` back. The one cycle allowed.
ALLOWED_EDGES = {("cfbench", "cfbench.restoration")}

# part -> the parts it must not import (a part: cfbench.<subpackage or module>, degradations, reports).
BELOW_RUNS = {"cfbench.eval", "cfbench.regress", "cfbench.train", "cfbench.cli", "reports"}
MUST_NOT_IMPORT = {
    "degradations": {"cfbench", "reports"},
    "cfbench.models": BELOW_RUNS | {"cfbench.data", "cfbench.face", "cfbench.metrics", "cfbench.restoration"},
    # metrics and face analysis know nothing of the model: weights files are read through cfbench.state_dict
    "cfbench.face": BELOW_RUNS | {"cfbench.data", "cfbench.metrics", "cfbench.models"},
    "cfbench.metrics": BELOW_RUNS | {"cfbench.data", "cfbench.restoration", "cfbench.models"},
    "cfbench.state_dict": BELOW_RUNS | {"cfbench.models", "cfbench.metrics", "cfbench.face", "cfbench.data"},
    "cfbench.data": BELOW_RUNS | {"cfbench.models", "cfbench.face", "cfbench.metrics", "cfbench.restoration"},
    "cfbench.weights": BELOW_RUNS | {"cfbench.models", "cfbench.face", "cfbench.metrics", "cfbench.data"},
    "cfbench.weights_table": BELOW_RUNS | {"cfbench.models", "cfbench.face", "cfbench.metrics", "cfbench.data"},
    "cfbench.export": BELOW_RUNS,
    "cfbench.eval": {"cfbench.regress", "cfbench.train", "cfbench.cli", "reports"},
    "cfbench.regress": {"cfbench.train", "cfbench.cli", "reports", "cfbench.models", "cfbench.face"},
    "cfbench.train": {"cfbench.eval", "cfbench.regress", "cfbench.cli", "reports", "cfbench.face"},
    "reports": {"cfbench.cli", "cfbench.models", "cfbench.train", "cfbench.face", "cfbench.metrics", "cfbench.data"},
}


@dataclass
class ImportGraph:
    """`edges[a]`: the modules that module `a` imports; `private[a]`: (module, name) of underscore names it takes."""

    modules: dict[str, Path]
    edges: dict[str, set[str]] = field(default_factory=dict)
    private: dict[str, set[tuple[str, str]]] = field(default_factory=dict)


def module_name(path: Path, root: Path) -> str:
    """cfbench/eval/tables.py -> cfbench.eval.tables; cfbench/eval/__init__.py -> cfbench.eval."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str, modules: dict[str, Path]) -> str:
    """The package a module belongs to: itself for a package's __init__, else its parent."""
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def part_of(module: str) -> str:
    """The part of docs/architecture.md: cfbench.<first level>, or the top package."""
    top, _, rest = module.partition(".")
    return f"{top}.{rest.partition('.')[0]}" if top == "cfbench" and rest else top


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def build_graph(root: Path, packages: Iterable[str]) -> ImportGraph:
    """Every import statement of every module of `packages` under `root`, wherever it stands in the module."""
    modules = {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph = ImportGraph(modules)

    def known(name: str) -> str | None:  # the module a dotted name lands in (a name inside a module: that module)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for mod, path in modules.items():
        edges, private, aliases = graph.edges.setdefault(mod, set()), graph.private.setdefault(mod, set()), {}
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if target := known(alias.name):
                        edges.add(target)
                        aliases[alias.asname or alias.name.partition(".")[0]] = alias.asname and alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}".rstrip(".")
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in modules else known(base)
                    if target is None:
                        continue
                    edges.add(target)
                    if full in modules:
                        aliases[alias.asname or alias.name] = full
                    elif _private(alias.name):
                        private.add((target, alias.name))
        for node in ast.walk(tree):  # `module._name` through an imported module
            if isinstance(node, ast.Attribute) and _private(node.attr):
                dotted = _dotted(node.value)
                if dotted is not None:
                    head, _, tail = dotted.partition(".")
                    if head in aliases:
                        target = f"{aliases[head] or head}.{tail}".rstrip(".")
                        if target in modules:
                            private.add((target, node.attr))
    return graph


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def successors(v: str) -> Iterator[str]:
        yield from sorted(edges.get(v, ()))

    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, successors(start))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, successors(w)))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def cross_package_private(graph: ImportGraph) -> list[str]:
    """'importer: module._name' for each underscore name a module takes from a module of another package."""
    return sorted(
        f"{mod}: {target}.{name}"
        for mod, names in graph.private.items()
        for target, name in names
        if package_of(target, graph.modules) != package_of(mod, graph.modules)
    )


def layering_violations(graph: ImportGraph) -> list[str]:
    """'importer -> imported' for each import that MUST_NOT_IMPORT forbids."""
    return sorted(
        f"{mod} -> {target}"
        for mod, targets in graph.edges.items()
        for target in targets
        if part_of(target) in MUST_NOT_IMPORT.get(part_of(mod), ())
        or target.partition(".")[0] in MUST_NOT_IMPORT.get(part_of(mod), ())
    )


GRAPH = build_graph(ROOT, PACKAGES)


def test_no_import_cycle_between_modules():
    edges = {m: {t for t in ts if (m, t) not in ALLOWED_EDGES} for m, ts in GRAPH.edges.items()}
    assert cycles(edges) == []


def test_the_allowed_lazy_import_is_still_there():
    for importer, target in ALLOWED_EDGES:
        assert target in GRAPH.edges[importer], f"{importer} no longer imports {target}: drop it from ALLOWED_EDGES"


def test_no_underscore_name_is_imported_from_another_package():
    assert cross_package_private(GRAPH) == []


def test_the_parts_keep_their_layering():
    assert set(MUST_NOT_IMPORT) <= {part_of(m) for m in GRAPH.modules}
    assert layering_violations(GRAPH) == []


def test_only_the_console_entry_imports_the_cli():
    outside = {m for m, ts in GRAPH.edges.items() for t in ts if part_of(t) == "cfbench.cli" != part_of(m)}
    assert outside <= {"cfbench.__main__"}


def test_the_checks_see_function_level_imports_cycles_and_private_names(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "def f():\n    from pkg import a\n    return a\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from pkg.a import _hidden\nfrom pkg import b as mod\nx = mod._secret\n",
        "pkg/sub/d.py": "from . import c\nfrom .c import _fine\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = build_graph(tmp_path, ["pkg"])
    assert graph.edges["pkg.b"] == {"pkg.a"} and graph.edges["pkg.sub.d"] == {"pkg.sub.c"}
    assert cycles(graph.edges) == [["pkg.a", "pkg.b"]]
    assert cross_package_private(graph) == ["pkg.sub.c: pkg.a._hidden", "pkg.sub.c: pkg.b._secret"]
