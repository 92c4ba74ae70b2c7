"""End to end: `controlplane demo` (the real worker process on the Fly emulator) on SQLite, the
embedded default, and on PostgreSQL: the fleet converges, the scenarios happen, nothing secret is
left in the database or the emulated Fly, and a second run adopts the fleet without creating
anything in its convergence."""

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
FAST = ["demo", "--speed", "25"]


def _rows(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]
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


# The embedded default (SQLite) and the production database; libSQL runs every database test but
# not this two-minute walk-through (the suite's time budget).
@pytest.mark.parametrize("fresh_database_url", ["sqlite", "postgresql"], indirect=True)
def test_demo_converges_the_fleet_then_adopts_it(demo_db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, FAST, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    out = first.output
    assert "demo complete: 31 agents running" in out and "30 users: 30 checked out now" in out
    assert "machine updates: 1 (the other machines untouched)" in out
    assert "invoice.payment_failed → banner" in out and "'payment_failed'" in out
    assert "Fly autostart [False]" in out and "invoice.paid → running again, banners now []" in out
    assert "gone from Fly" in out and "the resync noticed" in out
    assert "banner after 3 observations in a row: ['key_no_credit']" in out
    assert "the user saves a new key (dashboard API): banners now []" in out and "stays cleared" in out
    assert (tmp_path / ".env").read_text().count("CP_VAULT_KEYS=") == 1

    states = sorted(s for (s,) in _rows(demo_db, "SELECT lifecycle_state FROM tenants"))
    assert states == ["gone"] + ["running"] * 31
    live = _rows(
        demo_db,
        "SELECT f.app_name, f.volume_id, f.machine_id, f.observed_state, f.config_hash, f.secrets_version, "
        "t.desired_rev, f.observed_rev FROM fly_resources f JOIN tenants t ON t.id = f.tenant_id "
        "WHERE t.lifecycle_state = 'running'",
    )
    assert len(live) == 31
    for app_name, volume_id, machine_id, state, config_hash, version, desired, observed in live:
        assert (
            app_name.startswith("oc-") and volume_id.startswith("vol_") and machine_id and state == "started"
        )
        assert config_hash.startswith("sha256:") and version >= 1 and desired == observed
    keys = _rows(demo_db, "SELECT status, last4, fingerprint FROM provider_keys")
    assert len(keys) >= 31 and all(s == "usable" and len(l4) == 4 and len(fp) == 64 for s, l4, fp in keys)
    actions = {a for (a,) in _rows(demo_db, "SELECT DISTINCT action FROM audit_log")}
    expected = {
        "billing.event_received",
        "billing.tenant_created",
        "byok.key_saved",
        "channel.connected",
        "lifecycle",
        "plan.changed",
        "machine.created",
        "machine.updated",
        "machine.lost",
        "machine.autostart_off",
        "banner.raised",
        "banner.cleared",
        "app.destroyed",
    }
    assert expected <= actions, expected - actions
    assert _plaintext_hits(demo_db) == []
    snapshot = (tmp_path / "fly-emulator.json").read_text()
    assert [p.pattern for p in SECRET_PATTERNS if p.search(snapshot)] == []

    if not demo_db.startswith("sqlite"):
        return  # the second run (adoption) is the embedded default's story
    query = "SELECT machine_id FROM fly_resources WHERE machine_id IS NOT NULL"
    machines_before = {m for (m,) in _rows(demo_db, query)}
    second = runner.invoke(app, FAST, catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "30 users: 0 checked out now" in second.output
    assert "machines created in this convergence: 0" in second.output
    machines_after = {m for (m,) in _rows(demo_db, query)}
    assert len(machines_before - machines_after) == 1  # only the machine the drift scenario deleted
    running = _rows(demo_db, "SELECT id FROM tenants WHERE lifecycle_state = 'running'")
    assert len(running) == 32  # the second run's late payer subscribed anew
    assert (tmp_path / ".env").read_text().count("CP_VAULT_KEYS=") == 1
