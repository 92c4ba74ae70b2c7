"""The one-way imports of DESIGN.md: agents_config ← controlplane ← workers, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    """module file -> top-level packages it imports (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


def test_controlplane_never_imports_workers() -> None:
    offenders = {
        m: sorted(n & {"workers", "tests"})
        for m, n in _imports("controlplane").items()
        if n & {"workers", "tests"}
    }
    assert offenders == {}


def test_agents_config_imports_neither_controlplane_nor_workers() -> None:
    offenders = {
        m: sorted(n & {"controlplane", "workers", "tests"})
        for m, n in _imports("agents_config").items()
        if n & {"controlplane", "workers", "tests"}
    }
    assert offenders == {}


def test_the_checker_sees_imports() -> None:
    # The scan really finds imports (so the two tests above cannot pass vacuously).
    assert "agents_config" in _imports("controlplane")["controlplane/settings.py"]
    assert "pydantic" in _imports("agents_config")["agents_config/spec.py"]
