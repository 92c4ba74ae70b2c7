"""End to end: keys saved and deleted through the API reach the agent's machine through the real
worker (against the Fly emulator): a deleted key is gone from the secrets the next machine runs
with, and the channel tokens connected through the API are pushed under the agent's variables.
On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane.db.models import FlyResources, Tenant
from controlplane.db.session import Database
from tests.support.api import BASE, api_harness, telegram_token
from tests.support.fleet import running_fleet


def _machine_secrets(fleet: Any, app: str, machine_id: str) -> set[str]:
    """The app secrets the machine runs with: its app's secrets at the machine's secrets version."""
    machine = fleet.emu.machine(machine_id)
    return set(fleet.emu.apps[app].secrets_at(machine.secrets_version))


async def test_a_deleted_key_is_gone_from_the_next_machines_secrets(
    db: Database, empty_database: dict[str, Any]
) -> None:
    async with api_harness(db) as api:
        tenant = await api.tenant("e2e", plan="pro")
        for provider in ("openai", "anthropic"):
            saved = await api.client.put(f"{BASE}/e2e/keys/{provider}", json={"key": api.key(provider)})
            assert saved.status_code == 200, saved.text
        tg = await api.client.put(
            f"{BASE}/e2e/channels/telegram",
            json={"bot_token": api.secret(telegram_token(50)), "allow_from": ["123456789"]},
        )
        assert tg.status_code == 201

        async with running_fleet(db, empty_database["url"]) as fleet:
            await fleet.converge()
            async with db.transaction() as s:
                fly = await s.scalar(select(FlyResources).where(FlyResources.tenant_id == tenant.id))
                assert fly is not None and fly.app_name and fly.machine_id
                app, machine_id = fly.app_name, fly.machine_id
            before = _machine_secrets(fleet, app, machine_id)
            assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TELEGRAM_BOT_TOKEN"} <= before

            gone = await api.client.delete(f"{BASE}/e2e/keys/openai")
            assert gone.json() == {"deleted": True}
            await fleet.converge()
            async with db.transaction() as s:
                fly = await s.scalar(select(FlyResources).where(FlyResources.tenant_id == tenant.id))
                t = await s.get(Tenant, tenant.id)
                assert fly is not None and t is not None
                assert fly.observed_rev == t.desired_rev  # the change was applied
                machine_id = fly.machine_id or machine_id
            after = _machine_secrets(fleet, app, machine_id)
            assert "OPENAI_API_KEY" not in after
            assert {"ANTHROPIC_API_KEY", "TELEGRAM_BOT_TOKEN"} <= after
            assert "OPENAI_API_KEY" not in set(
                fleet.emu.apps[app].secrets_at(fleet.emu.apps[app].secrets_version)
            )
            status = (await api.client.get(f"{BASE}/e2e/status")).json()
            assert status["drift"] is False and status["machine"]["state"] == "started"
        await api.assert_nothing_leaked()
