"""End to end: `controlplane demo` on the embedded default (SQLite + the Fly emulator), twice."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from controlplane.cli import app
from controlplane.redaction import SECRET_PATTERNS

VAULT_VALUE = re.compile(r"^v1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$")


def _rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def _plaintext_hits(db: Path) -> list[str]:
    """Secret-shaped strings anywhere in the database except vault ciphertexts."""
    hits = []
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if not isinstance(value, str) or VAULT_VALUE.match(value):
                        continue
                    hits += [f"{table}: {p.pattern}" for p in SECRET_PATTERNS if p.search(value)]
    return hits


def test_demo_provisions_the_fleet_and_converges_again(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "demo complete: every tenant's agent is running." in first.output
    assert (tmp_path / ".env").read_text().count("CP_VAULT_KEYS=") == 1

    db = tmp_path / "controlplane.db"
    tenants = _rows(db, "SELECT plan, lifecycle_state FROM tenants ORDER BY external_id")
    assert [state for _, state in tenants] == ["running", "running", "running"]
    fly = _rows(db, "SELECT app_name, volume_id, machine_id, instance_id, observed_state, config_hash, "
                    "secrets_version FROM fly_resources")
    assert len(fly) == 3
    for app_name, volume_id, machine_id, instance_id, state, config_hash, version in fly:
        assert app_name.startswith("oc-") and volume_id.startswith("vol_")
        assert machine_id and instance_id and state == "started"
        assert config_hash.startswith("sha256:") and version >= 1
    keys = _rows(db, "SELECT provider, status, length(last4), length(fingerprint) FROM provider_keys")
    assert len(keys) == 6 and all(s == "usable" and l4 == 4 and fp == 64 for _, s, l4, fp in keys)
    actions = {a for (a,) in _rows(db, "SELECT DISTINCT action FROM audit_log")}
    assert {"tenant.created", "byok.key_saved", "channels.connected", "lifecycle", "plan.changed"} <= actions
    assert _plaintext_hits(db) == []

    snapshot = (tmp_path / "fly-emulator.json").read_text()
    assert [p.pattern for p in SECRET_PATTERNS if p.search(snapshot)] == []

    # Second run: same tenants, nothing recreated, the plan change applied by a machine update.
    machines_before = {m for (m,) in _rows(db, "SELECT machine_id FROM fly_resources")}
    second = runner.invoke(app, ["demo"], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "already runs config" in second.output
    assert "updated to the new config" in second.output
    assert {m for (m,) in _rows(db, "SELECT machine_id FROM fly_resources")} == machines_before
    assert len(_rows(db, "SELECT id FROM tenants")) == 3
    assert (tmp_path / ".env").read_text().count("CP_VAULT_KEYS=") == 1


def test_demo_recreates_a_machine_only_after_a_confirmed_404(tmp_path: Path) -> None:
    from controlplane.fly.emulator import EmulatorOptions, FlyEmulator

    runner = CliRunner()
    assert runner.invoke(app, ["demo"], catch_exceptions=False).exit_code == 0
    db = tmp_path / "controlplane.db"
    (app_name, machine_id), *_ = _rows(db, "SELECT app_name, machine_id FROM fly_resources ORDER BY app_name")

    # Somebody destroys one machine behind the control plane's back (in the persisted "Fly").
    emulator = FlyEmulator.load(tmp_path / "fly-emulator.json", EmulatorOptions(org="personal"))

    async def destroy() -> None:
        async with emulator.client() as http:
            r = await http.delete(f"/v1/apps/{app_name}/machines/{machine_id}", params={"force": "true"})
            assert r.status_code == 200, r.text

    asyncio.run(destroy())
    emulator.advance(3600)
    emulator.snapshot_to(tmp_path / "fly-emulator.json")

    again = runner.invoke(app, ["demo"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert f"machine {machine_id} is gone on Fly: recreating it" in again.output
    rows = _rows(db, "SELECT machine_id FROM fly_resources WHERE app_name = ?", (app_name,))
    assert rows[0][0] != machine_id
