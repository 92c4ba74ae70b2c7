"""``controlplane agent-config render`` and ``plans``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlplane.cli import app
from controlplane.settings import reset_settings_cache

EXAMPLES = Path(__file__).resolve().parents[2] / "agents_config" / "examples"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CP_PLAN_CATALOG", raising=False)
    reset_settings_cache()
    yield
    reset_settings_cache()


def render(*args: str):
    return runner.invoke(app, ["agent-config", "render", *args])


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_examples_render(example: str) -> None:
    result = render("--spec", str(EXAMPLES / example))
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    assert config["gateway"]["port"] == 3000
    machine = render("--spec", str(EXAMPLES / example), "--machine")
    assert machine.exit_code == 0, machine.output
    decoded = json.loads(base64.b64decode(json.loads(machine.stdout)["files"][0]["raw_value"]))
    assert decoded == config


def test_compact_output_is_the_hashed_bytes() -> None:
    import hashlib

    result = render("--spec", str(EXAMPLES / "starter-telegram.json"), "--compact")
    assert result.exit_code == 0
    body = result.stdout.rstrip("\n").encode()
    assert f"sha256:{hashlib.sha256(body).hexdigest()}" in result.stderr


def test_bad_spec_names_the_field(tmp_path: Path) -> None:
    spec = json.loads((EXAMPLES / "starter-telegram.json").read_text())
    spec["channels"] = [{"kind": "telegram", "dm_policy": "allowlist"}]
    spec["region"] = "Frankfurt"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    result = render("--spec", str(path))
    assert result.exit_code == 2
    assert "field 'region'" in result.stderr and "field 'channels.0'" in result.stderr


def test_unknown_plan_and_bad_json(tmp_path: Path) -> None:
    spec = json.loads((EXAMPLES / "starter-telegram.json").read_text())
    spec["plan"] = "gold"
    (tmp_path / "a.json").write_text(json.dumps(spec))
    result = render("--spec", str(tmp_path / "a.json"))
    assert result.exit_code == 2 and "field 'plan'" in result.stderr
    (tmp_path / "b.json").write_text("{")
    result = render("--spec", str(tmp_path / "b.json"))
    assert result.exit_code == 2 and "invalid JSON at line 1" in result.stderr


def test_no_usable_model_exits_3(tmp_path: Path) -> None:
    spec = json.loads((EXAMPLES / "starter-telegram.json").read_text())
    spec["byok_providers"] = []
    (tmp_path / "s.json").write_text(json.dumps(spec))
    result = render("--spec", str(tmp_path / "s.json"))
    assert result.exit_code == 3 and "no usable model" in result.stderr


def test_catalog_from_cp_plan_catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    catalog = EXAMPLES.parent / "catalogs" / "platform-tiers.toml"
    monkeypatch.setenv("CP_PLAN_CATALOG", str(catalog))
    reset_settings_cache()
    spec = json.loads((EXAMPLES / "starter-telegram.json").read_text())
    spec["plan"] = "premium"
    spec["platform_keys"] = ["anthropic"]
    (tmp_path / "s.json").write_text(json.dumps(spec))
    result = render("--spec", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    assert (
        json.loads(result.stdout)["agents"]["defaults"]["model"]["primary"] == "anthropic/claude-sonnet-4-6"
    )
    listing = runner.invoke(app, ["agent-config", "plans"])
    assert listing.exit_code == 0 and "platform-tiers" in listing.stdout


def test_bad_catalog_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[plans.x\n")
    result = render("--spec", str(EXAMPLES / "starter-telegram.json"), "--catalog", str(bad))
    assert result.exit_code == 2 and "invalid TOML" in result.stderr and "line 1" in result.stderr


def test_dropped_channels_are_reported_with_their_reason(tmp_path: Path) -> None:
    spec = {
        "tenant_id": "t1",
        "app_name": "oc-t1",
        "plan": "starter",
        "byok_providers": ["openai"],
        "channels": [
            {"kind": "discord", "allow_from": ["112233445566"]},
            {"kind": "telegram", "allow_from": ["222222222"]},
        ],
        "region": "iad",
        "image": "ghcr.io/openclaw/openclaw:2026.9.6",
        "desired_rev": 1,
    }
    path = tmp_path / "sleepy.json"
    path.write_text(json.dumps(spec))
    result = render("--spec", str(path))
    assert result.exit_code == 0, result.output
    assert "note: channel discord: needs an always-on machine" in result.stderr
    assert list(json.loads(result.stdout)["channels"]) == ["telegram"]
