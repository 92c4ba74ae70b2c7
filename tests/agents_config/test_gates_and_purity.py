"""Feature gates come from the plan only, in one place; agents_config stays pure."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from agents_config.gates import FeatureGates
from tests.support.agent_configs import REPO, default_catalog, platform_catalog


def test_default_gates_match_the_product_table() -> None:
    g = {p: FeatureGates.for_plan(default_catalog().plan(p)) for p in ("starter", "pro", "power")}
    assert [g[p].phone for p in g] == [False, True, True]
    assert [g[p].cron for p in g] == [False, True, True]
    assert [g[p].custom_skills for p in g] == [False, True, True]
    assert [g[p].file_browser for p in g] == [False, True, True]
    assert [g[p].api_access for p in g] == [False, False, True]
    assert [g[p].sleep_when_idle for p in g] == [True, False, False]
    assert [g[p].max_channels for p in g] == [1, 3, None]
    assert g["power"].allows_channels(50) and not g["starter"].allows_channels(2)
    assert g["pro"].channel_slots(5) == 3


def test_platform_gates() -> None:
    c = platform_catalog()
    assert FeatureGates.for_plan(c.plan("starter")).platform_key
    assert FeatureGates.for_plan(c.plan("byok")).platform_fallback
    assert not FeatureGates.for_plan(c.plan("premium")).platform_fallback


def _py_files(*folders: str) -> list[Path]:
    return [p for f in folders for p in (REPO / f).rglob("*.py") if ".venv" not in p.parts]


def test_no_plan_id_comparisons_outside_the_catalog() -> None:
    pattern = re.compile(
        r"""plan(_id)?(\.id)?\s*(==|!=|in)\s*[\(\[{]?\s*["'](starter|pro|power|premium|byok|basic|plus)["']"""
    )
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in _py_files("agents_config", "controlplane", "workers")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], "ask FeatureGates instead of comparing plan ids"


def test_agents_config_imports_only_stdlib_and_pydantic() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "agents_config", "__future__"}
    for path in _py_files("agents_config"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_only_the_catalog_loader_reads_files() -> None:
    io = re.compile(
        r"\b(open\(|read_text|read_bytes|write_text|write_bytes|import subprocess|import socket|urllib)"
    )
    for path in _py_files("agents_config"):
        hits = [line for line in path.read_text(encoding="utf-8").splitlines() if io.search(line)]
        if path.name == "catalog.py":
            assert len(hits) == 1, hits  # the packaged default
        elif path.name == "inputs.py":
            assert len(hits) == 1, hits  # the bounded reader of the operator's files
        else:
            assert hits == [], f"{path.name}: {hits}"
