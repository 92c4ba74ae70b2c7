"""Import structure of the project, read from the source with ``ast`` (nothing is imported).

* DESIGN.md's one-way imports: agents_config <- controlplane <- workers, never the reverse.
* No import cycle anywhere inside the project, counting imports inside functions and under
  ``if TYPE_CHECKING:`` (a cycle hidden in a function body is still two modules that cannot be
  understood, tested or moved one without the other).
* Pure policy modules never reach the ORM, not even through another module.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("agents_config", "controlplane", "workers")

#: Modules holding pure policy: they import neither SQLAlchemy nor controlplane.db, directly or not.
PURE_POLICY = (
    "controlplane.enums",
    "controlplane.byok.verdicts",
    "controlplane.byok.classifiers",  # the package and every module in it
    "controlplane.byok.formats",
    "controlplane.retry",
    "controlplane.clock",
)
ORM = ("sqlalchemy", "controlplane.db")


@dataclass
class ImportGraph:
    """Project modules (dotted names), the project modules each imports, and every dotted name each
    imports (project or not, resolved)."""

    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    names: dict[str, set[str]] = field(default_factory=dict)

    def closure(self, start: str, *, with_parents: bool = True) -> set[str]:
        """Project modules that importing ``start`` may load: its imports, theirs, and so on; with
        ``with_parents`` also each module's parent packages (importing ``a.b.c`` runs ``a/__init__``
        and ``a/b/__init__`` first)."""
        seen: set[str] = set()
        todo = [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            todo.extend(self.edges.get(module, ()))
            if with_parents:
                todo.extend(p for p in _parents(module) if p in self.modules)
        return seen


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(module: str, is_package: bool, tree: ast.AST) -> list[tuple[str, str | None]]:
    """Every import of the module, anywhere in it, as ``(module, name)`` with relative imports
    resolved: ``import a.b`` -> ``("a.b", None)``, ``from a import b`` -> ``("a", "b")``."""
    found: list[tuple[str, str | None]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.extend((base, None if alias.name == "*" else alias.name) for alias in node.names)
    return found


def build_graph(root: Path, packages: Iterable[str] = PACKAGES) -> ImportGraph:
    graph = ImportGraph()
    parsed: dict[str, tuple[Path, ast.AST]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = _module_name(root, path)
            graph.modules[name] = path
            parsed[name] = (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    for name, (path, tree) in parsed.items():
        imports = _imports(name, path.name == "__init__.py", tree)
        graph.names[name] = {base for base, _ in imports} | {f"{b}.{m}" for b, m in imports if m}
        graph.edges[name] = set()
        for base, member in imports:
            # ``from pkg import module`` depends on pkg.module; ``from pkg import function`` on pkg.
            submodule = f"{base}.{member}" if member else None
            target = submodule if submodule in graph.modules else _longest_module(graph.modules, base)
            if target is not None and target != name:
                graph.edges[name].add(target)
    return graph


def _longest_module(modules: Mapping[str, Path], dotted: str) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(cycles)


def _describe(cycles: list[list[str]], graph: ImportGraph) -> str:
    lines = []
    for cycle in cycles:
        members = set(cycle)
        lines.append(" <-> ".join(cycle))
        lines.extend(f"    {m} imports {sorted(graph.edges[m] & members)}" for m in cycle)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph(REPO)


def _tops(graph: ImportGraph, package: str) -> dict[str, set[str]]:
    return {
        m: {n.split(".")[0] for n in names}
        for m, names in graph.names.items()
        if m == package or m.startswith(package + ".")
    }


def test_no_import_cycle_in_the_project(graph: ImportGraph) -> None:
    cycles = find_cycles(graph.edges)
    assert cycles == [], "import cycles:\n" + _describe(cycles, graph)


def test_controlplane_never_imports_workers(graph: ImportGraph) -> None:
    offenders = {m: sorted(n & {"workers", "tests"}) for m, n in _tops(graph, "controlplane").items()}
    assert {m: n for m, n in offenders.items() if n} == {}


def test_agents_config_imports_neither_controlplane_nor_workers(graph: ImportGraph) -> None:
    forbidden = {"controlplane", "workers", "tests"}
    offenders = {m: sorted(n & forbidden) for m, n in _tops(graph, "agents_config").items()}
    assert {m: n for m, n in offenders.items() if n} == {}


def orm_reached(graph: ImportGraph, start: str, orm: tuple[str, ...] = ORM) -> dict[str, list[str]]:
    """The modules importing ``start`` may load that are, or import, the ORM: module -> ORM names."""

    def is_orm(dotted: str) -> bool:
        return any(dotted == o or dotted.startswith(o + ".") for o in orm)

    found = {}
    for module in sorted(graph.closure(start)):
        names = sorted(n for n in graph.names[module] if is_orm(n)) + ([module] if is_orm(module) else [])
        if names:
            found[module] = names
    return found


@pytest.mark.parametrize("policy", PURE_POLICY)
def test_pure_policy_never_reaches_the_orm(graph: ImportGraph, policy: str) -> None:
    starts = [m for m in graph.modules if m == policy or m.startswith(policy + ".")]
    assert starts, f"{policy} is not a module of the project"
    assert {start: orm_reached(graph, start) for start in starts} == {start: {} for start in starts}


# --- the checker itself ---------------------------------------------------------------------------
def _write(root: Path, tree: str) -> None:
    """Write the files of ``tree``: each starts at a ``# path/to/file.py`` line."""
    path: Path | None = None
    for line in textwrap.dedent(tree).splitlines():
        if line.startswith("# ") and line.endswith(".py"):
            path = root / line[2:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif path is not None:
            with path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")


CYCLE_IN_A_FUNCTION_AND_UNDER_TYPE_CHECKING = """
    # pkg/__init__.py
    # pkg/a.py
    def f():
        from pkg.b import g
        return g
    # pkg/b.py
    from typing import TYPE_CHECKING
    if TYPE_CHECKING:
        from . import a
    def g(): ...
"""
CYCLE_THROUGH_A_PACKAGE_INIT = """
    # pkg/__init__.py
    from pkg.sub import helper
    # pkg/sub/__init__.py
    # pkg/sub/helper.py
    from .. import sub, VERSION
"""
ONE_WAY = """
    # pkg/__init__.py
    # pkg/low.py
    X = 1
    # pkg/high.py
    from .low import X
    # pkg/other.py
    from pkg import high
    def f():
        from pkg.high import X
"""


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (CYCLE_IN_A_FUNCTION_AND_UNDER_TYPE_CHECKING, [["pkg.a", "pkg.b"]]),
        (CYCLE_THROUGH_A_PACKAGE_INIT, [["pkg", "pkg.sub.helper"]]),
        (ONE_WAY, []),
    ],
)
def test_the_checker_finds_a_deliberate_cycle(tmp_path: Path, tree: str, expected: list[list[str]]) -> None:
    _write(tmp_path, tree)
    assert find_cycles(build_graph(tmp_path, ["pkg"]).edges) == expected


def test_the_checker_sees_the_orm_through_other_modules(tmp_path: Path) -> None:
    _write(
        tmp_path,
        """
        # pkg/__init__.py
        # pkg/policy.py
        def f():
            from pkg import helpers
        # pkg/helpers.py
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import sqlalchemy.orm
        # pkg/clean/__init__.py
        from pkg.db import models
        # pkg/clean/policy.py
        X = 1  # its package's __init__ runs first, and loads pkg.db
        # pkg/db/__init__.py
        # pkg/db/models.py
        """,
    )
    graph = build_graph(tmp_path, ["pkg"])
    assert orm_reached(graph, "pkg.policy") == {"pkg.helpers": ["sqlalchemy.orm"]}
    assert orm_reached(graph, "pkg.clean.policy", orm=("sqlalchemy", "pkg.db")) == {
        "pkg.clean": ["pkg.db", "pkg.db.models"],
        "pkg.db": ["pkg.db"],
        "pkg.db.models": ["pkg.db.models"],
    }


def test_the_checker_sees_imports(graph: ImportGraph) -> None:
    # The scan really finds imports (so the tests above cannot pass vacuously).
    assert "agents_config" in _tops(graph, "controlplane.settings")["controlplane.settings"]
    assert "pydantic" in _tops(graph, "agents_config.spec")["agents_config.spec"]
    assert "controlplane.fly.errors" in graph.edges["controlplane.fly.client"]
    assert "sqlalchemy" in _tops(graph, "controlplane.db.models")["controlplane.db.models"]
