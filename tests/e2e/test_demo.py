"""End to end: `controlplane demo` on SQLite (the embedded default) and on PostgreSQL, with the Fly
emulator: provisions the fleet, converges again without recreating anything, and recreates a machine
only after Fly confirms it is gone."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from controlplane.cli import app
from controlplane.db.models import Base
from controlplane.db.session import create_engine
from controlplane.redaction import SECRET_PATTERNS

VAULT_VALUE = re.compile(r"^v1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$")


def _rows(url: str, sql: str, **params: Any) -> list[tuple]:
    async def go() -> list[tuple]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _execute(url: str, sql: str, **params: Any) -> int:
    async def go() -> int:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                return (await conn.execute(text(sql), params)).rowcount
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _plaintext_hits(url: str) -> list[str]:
    """Secret-shaped strings anywhere in the database, except vault ciphertexts."""

    async def go() -> list[str]:
        hits: list[str] = []
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                for table in Base.metadata.sorted_tables:
                    for row in (await conn.execute(select(table))).all():
                        for value in row:
                            value = str(value) if isinstance(value, (dict, list)) else value
                            if not isinstance(value, str) or VAULT_VALUE.match(value):
                                continue
                            hits += [f"{table.name}: {p.pattern}" for p in SECRET_PATTERNS if p.search(value)]
        finally:
            await engine.dispose()
        return hits

    return asyncio.run(go())


@pytest.fixture
def demo_db(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CP_DATABASE_URL", fresh_database_url)
    return fresh_database_url


def test_demo_provisions_the_fleet_and_converges_again(demo_db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "demo complete: every tenant's agent is running." in first.output
    assert (tmp_path / ".env").read_text().count("CP_VAULT_KEYS=") == 1

    states = _rows(demo_db, "SELECT lifecycle_state FROM tenants")
    assert sorted(s for (s,) in states) == ["running", "running", "running"]
    fly = _rows(
        demo_db,
        "SELECT app_name, volume_id, machine_id, instance_id, observed_state, "
        "config_hash, secrets_version FROM fly_resources",
    )
    assert len(fly) == 3
    for app_name, volume_id, machine_id, instance_id, state, config_hash, version in fly:
        assert app_name.startswith("oc-") and volume_id.startswith("vol_")
        assert machine_id and instance_id and state == "started"
        assert config_hash.startswith("sha256:") and len(config_hash) == 71 and version >= 1
    keys = _rows(demo_db, "SELECT status, last4, fingerprint FROM provider_keys")
    assert len(keys) == 6 and all(s == "usable" and len(l4) == 4 and len(fp) == 64 for s, l4, fp in keys)
    actions = {a for (a,) in _rows(demo_db, "SELECT DISTINCT action FROM audit_log")}
    assert {"tenant.created", "byok.key_saved", "channels.connected", "lifecycle", "plan.changed"} <= actions
    assert _plaintext_hits(demo_db) == []
    snapshot = (tmp_path / "fly-emulator.json").read_text()
    assert [p.pattern for p in SECRET_PATTERNS if p.search(snapshot)] == []

    # Second run: same tenants, nothing recreated, the plan change applied by a machine update.
    machines_before = set(_rows(demo_db, "SELECT machine_id FROM fly_resources"))
    second = runner.invoke(app, ["demo"], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "already runs config" in second.output
    assert "updated to the new config" in second.output
    assert set(_rows(demo_db, "SELECT machine_id FROM fly_resources")) == machines_before
    assert len(_rows(demo_db, "SELECT id FROM tenants")) == 3
    assert (tmp_path / ".env").read_text().count("CP_VAULT_KEYS=") == 1


def test_demo_recreates_a_machine_only_after_a_confirmed_404(demo_db: str, tmp_path: Path) -> None:
    from controlplane.fly.emulator import EmulatorOptions, FlyEmulator

    runner = CliRunner()
    assert runner.invoke(app, ["demo"], catch_exceptions=False).exit_code == 0
    (app_name, machine_id), *_ = _rows(
        demo_db, "SELECT app_name, machine_id FROM fly_resources ORDER BY app_name"
    )

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
    ((new_id,),) = _rows(demo_db, "SELECT machine_id FROM fly_resources WHERE app_name = :a", a=app_name)
    assert new_id != machine_id


def test_demo_starts_machines_found_stopped_even_after_an_update(demo_db: str, tmp_path: Path) -> None:
    """Fly leaves a stopped machine stopped after an update; the converge must start it once the
    new version settled (412 while replacing), and start the untouched stopped ones too."""
    from controlplane.fly.emulator import EmulatorOptions, FlyEmulator

    runner = CliRunner()
    assert runner.invoke(app, ["demo"], catch_exceptions=False).exit_code == 0
    machines = _rows(demo_db, "SELECT app_name, machine_id FROM fly_resources")
    emulator = FlyEmulator.load(tmp_path / "fly-emulator.json", EmulatorOptions(org="personal"))

    async def stop_all() -> None:
        async with emulator.client() as http:
            for app_name, machine_id in machines:
                r = await http.post(f"/v1/apps/{app_name}/machines/{machine_id}/stop", json={})
                assert r.status_code == 200, r.text

    asyncio.run(stop_all())
    emulator.advance(60)
    assert {emulator.machine(m).state for _, m in machines} == {"stopped"}
    emulator.snapshot_to(tmp_path / "fly-emulator.json")
    # Carol's desired state changes while her machine is stopped: her first converge must update a
    # STOPPED machine (Fly keeps it stopped), wait for the new version to settle, then start it.
    assert (
        _execute(
            demo_db,
            "UPDATE tenants SET plan = 'pro', desired_rev = desired_rev + 1 "
            "WHERE external_id = 'carol@example.com'",
        )
        == 1
    )

    again = runner.invoke(app, ["demo"], catch_exceptions=False)  # also changes one tenant's plan
    assert again.exit_code == 0, again.output
    carol = [line for line in again.output.splitlines() if "carol@example.com" in line]
    updated = next(i for i, line in enumerate(carol) if "updated to the new config" in line)
    assert "was stopped: started" in carol[updated + 1]
    assert again.output.count("was stopped: started") == 3
    assert "demo complete: every tenant's agent is running." in again.output
    states = _rows(demo_db, "SELECT observed_state FROM fly_resources")
    assert sorted(s for (s,) in states) == ["started", "started", "started"]
