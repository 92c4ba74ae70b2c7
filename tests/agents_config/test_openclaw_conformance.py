"""Generated configs are valid OpenClaw 2026.9.6 configs.

* Fast: every conformance case against the exported JSON schema (defaulted ``required`` relaxed).
* Release gate (``-m validator``): all cases through the real pinned OpenClaw CLI in ONE call. If the
  validator cannot run (exit 2, e.g. no network for its first install) the test FAILS, never skips.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agents_config.openclaw_config import render_openclaw_config
from tests.support.agent_configs import VALIDATOR, catalog_of, conformance_cases, schema_errors

CASES = conformance_cases()


def test_matrix_is_wide_and_distinct() -> None:
    rendered = {name: render_openclaw_config(spec, catalog_of(name)) for name, spec in CASES}
    assert len(rendered) >= 30
    assert len({r.sha256 for r in rendered.values()}) == len(rendered), "cases must differ"
    plans = {(name.rsplit("-", 1)[0]) for name in rendered}
    assert plans == {
        "default-starter",
        "default-pro",
        "default-power",
        "platform-tiers-starter",
        "platform-tiers-premium",
        "platform-tiers-byok",
        "proxy-all-everything",
    }


@pytest.mark.parametrize(("name", "spec"), CASES, ids=[name for name, _ in CASES])
def test_matches_exported_schema(name: str, spec) -> None:
    config = render_openclaw_config(spec, catalog_of(name)).config
    assert schema_errors(config) == []


def test_schema_check_catches_a_bad_key() -> None:
    name, spec = CASES[0]
    config = render_openclaw_config(spec, catalog_of(name)).config
    config["gateway"]["reload"] = {"mode": "hot"}  # invalid since 2026.9.x
    config["tools"]["bogusKey"] = True
    errors = schema_errors(config)
    assert any("gateway/reload/mode" in e for e in errors)
    assert any("bogusKey" in e for e in errors)


@pytest.mark.validator
def test_real_openclaw_validator_accepts_every_case(tmp_path: Path) -> None:
    if not VALIDATOR.is_file():
        pytest.fail(f"OpenClaw validator not found at {VALIDATOR} (set OPENCLAW_VALIDATE)")
    files = []
    for name, spec in CASES:
        path = tmp_path / f"{name}.json"
        path.write_bytes(render_openclaw_config(spec, catalog_of(name)).content)
        files.append(path)
    proc = subprocess.run(
        [str(VALIDATOR), *map(str, files)], capture_output=True, text=True, timeout=1800, check=False
    )
    output = proc.stdout + proc.stderr
    if proc.returncode == 2:
        pytest.fail(
            "the OpenClaw validator could not run (exit 2: first use installs openclaw from npm and "
            f"needs network access; cache in ~/.cache/openclaw-validator):\n{output[-3000:]}"
        )
    verdicts = [
        line
        for line in proc.stdout.splitlines()
        if line.startswith(("ok ", "invalid ", "error ", "missing "))
    ]
    bad = [line for line in verdicts if not line.startswith("ok ")]
    assert proc.returncode == 0 and not bad, "\n".join(bad) or output[-3000:]
    assert len(verdicts) == len(files), output[-3000:]
