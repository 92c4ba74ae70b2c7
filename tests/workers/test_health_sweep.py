"""The health sweep against the Fly emulator (issue 10's acceptance points), on every database
backend: the real worker process converges the tenants, then the test drives sweeps one by one and
changes what the emulated agent reports (its keys, channels, gateway) in between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog.testing
from prometheus_client import generate_latest
from sqlalchemy import select

from controlplane.byok.service import KeyService
from controlplane.byok.validate import KeyValidator
from controlplane.db.models import AgentUsageDaily, AuditLog, Banner, FlyResources, ProviderKey, ReconcileItem
from controlplane.db.session import Database
from controlplane.enums import KeyStatus
from tests.support.fleet import Fleet, add_key, fake_key, running_fleet, seed_tenant
from workers.health import HealthSweeper, SweepReport
from workers.metrics import REGISTRY

EVERY_SWEEP = {"health_sweep_interval_seconds": 1, "health_introspect_interval_seconds": 1}


@dataclass
class Provider:
    """The LLM providers' key-check endpoints, faked: keys in ``refused`` get Anthropic's 401."""

    refused: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            key = request.headers.get("x-api-key") or request.headers.get("authorization", "")
            self.calls.append(str(request.url))
            if any(k in key for k in self.refused):
                return httpx.Response(
                    401,
                    json={
                        "type": "error",
                        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                    },
                )
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m"}], "has_more": False})

        return httpx.MockTransport(answer)


@asynccontextmanager
async def fleet_of(
    db: Database, url: str, provider: Provider | None = None, **settings: Any
) -> AsyncIterator[Fleet]:
    provider = provider or Provider()
    async with running_fleet(
        db, url, provider_transport=provider.transport(), **{**EVERY_SWEEP, **settings}
    ) as fleet:
        yield fleet


def sweeper(fleet: Fleet) -> HealthSweeper:
    assert fleet.process.housekeeping is not None
    return fleet.process.housekeeping.sweeper


async def machine_of(db: Database, tenant_id: str) -> str:
    async with db.read() as s:
        fly = await s.get(FlyResources, tenant_id)
        assert fly is not None and fly.machine_id is not None
        return fly.machine_id


async def banners_of(db: Database, tenant_id: str) -> dict[tuple[str, str], tuple[bool, int, str]]:
    async with db.read() as s:
        rows = await s.scalars(select(Banner).where(Banner.tenant_id == tenant_id))
        return {(r.kind.value, r.subject): (r.active, r.consecutive_bad, r.message) for r in rows}


def active(banners: dict[tuple[str, str], tuple[bool, int, str]]) -> set[tuple[str, str]]:
    return {key for key, (up, _, _) in banners.items() if up}


async def banner_audit(db: Database, tenant_id: str) -> list[tuple[str, Any]]:
    async with db.read() as s:
        rows = await s.scalars(
            select(AuditLog)
            .where(AuditLog.tenant_id == tenant_id, AuditLog.action.in_(["banner.raised", "banner.cleared"]))
            .order_by(AuditLog.id)
        )
        return [
            (r.action, (r.after or {}).get("banner"), (r.after or {}).get("subject"), r.actor) for r in rows
        ]


async def sweeps(fleet: Fleet, n: int) -> list[SweepReport]:
    return [await sweeper(fleet).sweep() for _ in range(n)]


async def test_credit_running_out_raises_key_no_credit_after_the_threshold_without_calling_the_provider(
    db, empty_database, vault
) -> None:
    provider = Provider()
    tenant = await seed_tenant(db, vault, "credit@x", plan="pro", providers=("anthropic",))
    async with fleet_of(db, empty_database["url"], provider) as fleet:
        await fleet.converge()
        machine = await machine_of(db, tenant)
        await sweeps(fleet, 1)
        assert active(await banners_of(db, tenant)) == set()

        fleet.emu.fail_credential(machine, "anthropic", "billing")
        with structlog.testing.capture_logs() as logged:
            await sweeps(fleet, 2)  # threshold 3: two bad observations raise nothing
        state = await banners_of(db, tenant)
        assert active(state) == set() and state[("key_no_credit", "anthropic")][1] == 2
        [third] = await sweeps(fleet, 1)
        state = await banners_of(db, tenant)
        assert active(state) == {("key_no_credit", "anthropic")}
        assert "Anthropic" in state[("key_no_credit", "anthropic")][2]  # a sentence naming the provider
        assert third.banners_raised == 1
        assert provider.calls == []  # the agent's word is taken: no provider was called

        fleet.emu.restore_credential(machine, "anthropic")  # topped up
        await sweeps(fleet, 1)
        assert active(await banners_of(db, tenant)) == set()
        assert await banner_audit(db, tenant) == [
            ("banner.raised", "key_no_credit", "anthropic", "poller"),
            ("banner.cleared", "key_no_credit", "anthropic", "poller"),
        ]
        # The CLI's output (the real one prints 16 characters of each key) is parsed, never logged.
        assert any(e["event"] == "health.sweep" for e in logged)
        assert "inline-api-key" not in repr(logged) and "unusableProfiles" not in repr(logged)


async def test_a_revoked_key_raises_key_invalid_after_the_policys_refusals_and_replacing_it_clears_it(
    db, empty_database, vault
) -> None:
    provider = Provider()
    tenant = await seed_tenant(db, vault, "revoked@x", plan="pro", providers=())
    old_key = await add_key(db, vault, tenant, "anthropic")
    async with fleet_of(db, empty_database["url"], provider) as fleet:
        await fleet.converge()
        machine = await machine_of(db, tenant)
        provider.refused.add(old_key)  # revoked at the provider ...
        fleet.emu.fail_credential(machine, "anthropic", "auth_permanent")  # ... and the agent sees it

        await sweeps(fleet, 2)  # two refusals: the key service does not call it broken yet
        assert len(provider.calls) == 2
        assert active(await banners_of(db, tenant)) == set()
        async with db.read() as s:
            key = await s.scalar(select(ProviderKey).where(ProviderKey.tenant_id == tenant))
            assert key is not None and key.status is KeyStatus.usable and key.consecutive_failures == 2
        await sweeps(fleet, 1)
        assert active(await banners_of(db, tenant)) == {("key_invalid", "anthropic")}

        # The user saves a new key: the banner clears at once, and stays cleared.
        keys = KeyService(db, vault, KeyValidator(transport=provider.transport()))
        await keys.save(tenant, "anthropic", fake_key("anthropic"), actor="api")
        assert active(await banners_of(db, tenant)) == set()
        fleet.emu.restore_credential(machine, "anthropic")  # the new key works at the provider
        await fleet.converge()
        await sweeps(fleet, 3)
        assert active(await banners_of(db, tenant)) == set()
        audit = await banner_audit(db, tenant)
        assert audit == [
            ("banner.raised", "key_invalid", "anthropic", "poller"),
            ("banner.cleared", "key_invalid", "anthropic", "api"),
        ]


async def test_a_crash_looping_machine_raises_agent_crashlooping_and_not_agent_down(
    db, empty_database, vault
) -> None:
    tenant = await seed_tenant(db, vault, "crash@x", plan="pro")
    async with fleet_of(db, empty_database["url"]) as fleet:
        await fleet.converge()
        machine = await machine_of(db, tenant)
        fleet.emu.crash_loop(machine, restarts=4)
        [first] = await sweeps(fleet, 1)
        assert first.fly_event_calls == 1 and active(await banners_of(db, tenant)) == set()
        await sweeps(fleet, 1)  # threshold 2
        assert active(await banners_of(db, tenant)) == {("agent_crashlooping", "")}
        fleet.emu.restore_gateway(machine)
        await sweeps(fleet, 1)
        assert active(await banners_of(db, tenant)) == set()
        assert [a[:2] for a in await banner_audit(db, tenant)] == [
            ("banner.raised", "agent_crashlooping"),
            ("banner.cleared", "agent_crashlooping"),
        ]


async def test_a_failing_channel_raises_channel_down_for_that_channel(db, empty_database, vault) -> None:
    tenant = await seed_tenant(db, vault, "chan@x", plan="pro", channels=(("telegram", ("1001",)),))
    async with fleet_of(db, empty_database["url"]) as fleet:
        await fleet.converge()
        machine = await machine_of(db, tenant)
        fleet.emu.fail_channel(machine, "telegram")
        await sweeps(fleet, 2)
        assert active(await banners_of(db, tenant)) == set()
        await sweeps(fleet, 1)
        state = await banners_of(db, tenant)
        assert active(state) == {("channel_down", "telegram")}  # the agent itself is up: no agent_down
        assert "Telegram" in state[("channel_down", "telegram")][2]
        fleet.emu.restore_channel(machine)
        await sweeps(fleet, 1)
        assert active(await banners_of(db, tenant)) == set()
        assert [a[:3] for a in await banner_audit(db, tenant)] == [
            ("banner.raised", "channel_down", "telegram"),
            ("banner.cleared", "channel_down", "telegram"),
        ]


async def test_a_flapping_probe_raises_nothing(db, empty_database, vault) -> None:
    tenant = await seed_tenant(db, vault, "flap@x", plan="pro")
    async with fleet_of(db, empty_database["url"]) as fleet:
        await fleet.converge()
        machine = await machine_of(db, tenant)
        failed = 0
        for bad in (True, False, True, True, False, True, False, True, True):
            if bad:
                fleet.emu.crash_loop(machine, restarts=0)  # the gateway stops answering
            else:
                fleet.emu.restore_gateway(machine)
            [report] = await sweeps(fleet, 1)
            failed += report.probes_failed
        assert failed == 6
        assert active(await banners_of(db, tenant)) == set()
        assert await banner_audit(db, tenant) == []


async def test_a_sleeping_agent_is_not_woken_and_drift_is_marked_without_changing_fly(
    db, empty_database, vault
) -> None:
    sleeper = await seed_tenant(db, vault, "sleep@x", plan="starter")
    always_on = await seed_tenant(db, vault, "on@x", plan="pro")
    async with fleet_of(db, empty_database["url"]) as fleet:
        await fleet.converge()
        for tenant in (sleeper, always_on):  # Fly's proxy autostops the idle one; the other stops
            machine = await machine_of(db, tenant)
            app = fleet.emu.machine(machine).app
            await fleet.process.fly.stop_machine(app, machine)
        machines = [await machine_of(db, t) for t in (sleeper, always_on)]
        for _ in range(200):
            if all(fleet.emu.machine(m).state == "stopped" for m in machines):
                break
            await asyncio.sleep(0.05)
        async with db.transaction() as s:  # nothing due: only the sweep can mark
            for row in await s.scalars(select(ReconcileItem)):
                row.due_at = None
        writes_before = {
            k: v for k, v in fleet.process.fly_calls.snapshot().items() if not k[0].startswith("GET ")
        }
        reports = await sweeps(fleet, 4)
        writes_after = {
            k: v for k, v in fleet.process.fly_calls.snapshot().items() if not k[0].startswith("GET ")
        }
        assert writes_after == writes_before  # no start, stop, update, exec: the sweep changed nothing
        assert sum(r.probes_sent for r in reports) == 0
        assert fleet.emu.machine(await machine_of(db, sleeper)).state == "stopped"  # still asleep
        async with db.read() as s:
            due = {r.tenant_id: r.reason for r in await s.scalars(select(ReconcileItem)) if r.due_at}
        assert set(due) == {always_on} and "should run" in (due[always_on] or "")
        assert active(await banners_of(db, sleeper)) == set()
        assert active(await banners_of(db, always_on)) == {("agent_down", "")}


async def test_usage_as_the_agent_counts_it_is_stored_per_day_provider_and_model(
    db, empty_database, vault
) -> None:
    tenant = await seed_tenant(db, vault, "usage@x", plan="pro")
    async with fleet_of(db, empty_database["url"]) as fleet:
        await fleet.converge()
        machine = await machine_of(db, tenant)
        fleet.emu.add_agent_usage(
            machine,
            "anthropic",
            "claude-sonnet-4-6",
            input_tokens=1200,
            output_tokens=42,
            input_cost_usd=0.0036,
            output_cost_usd=0.00063,
        )
        [report] = await sweeps(fleet, 1)
        assert report.usage_rows >= 1
        await sweeps(fleet, 1)  # the same report again changes nothing
        async with db.read() as s:
            rows = (await s.scalars(select(AgentUsageDaily).where(AgentUsageDaily.tenant_id == tenant))).all()
            got = [(r.provider, r.model, r.input_tokens, r.output_tokens, r.cost_microusd) for r in rows]
        assert got == [("anthropic", "claude-sonnet-4-6", 1200, 42, 4230)]


async def test_a_sweep_lists_the_fleet_in_pages_then_asks_only_for_changes(db, empty_database, vault) -> None:
    for n in range(3):
        await seed_tenant(db, vault, f"page{n}@x", plan="pro")
    async with fleet_of(db, empty_database["url"], health_introspect_interval_seconds=3600) as fleet:
        await fleet.converge()
        first, second = await sweeps(fleet, 2)
        assert first.full_listing and not second.full_listing
        assert first.fly_list_calls == 1 and second.fly_list_calls == 1
        assert first.machines_known == second.machines_known == 3
        assert first.probes_sent == second.probes_sent == 3
        metrics = generate_latest(REGISTRY).decode()
        assert "cp_health_sweep_seconds_count" in metrics and 'cp_health_calls_total{kind="probe"}' in metrics

        # A machine deleted behind our back shows up as deleted in the next "changes only" listing.
        ids = await fleet_tenants(db)
        machine = await machine_of(db, ids[0])
        await fleet.process.fly.destroy_machine(fleet.emu.machine(machine).app, machine, force=True)
        async with db.transaction() as s:
            for row in await s.scalars(select(ReconcileItem)):
                row.due_at = None
        for _ in range(100):  # the listing is eventually consistent: the sweep's overlap covers that
            [third] = await sweeps(fleet, 1)
            if third.drift_marked:
                break
            await asyncio.sleep(0.05)
        assert not third.full_listing and third.machines_known == 2 and third.drift_marked == 1
        async with db.read() as s:
            due = {r.tenant_id: r.reason for r in await s.scalars(select(ReconcileItem)) if r.due_at}
        assert due == {ids[0]: "health sweep: machine not listed"}


async def fleet_tenants(db: Database) -> list[str]:
    async with db.read() as s:
        return sorted((await s.scalars(select(FlyResources.tenant_id))).all())


async def test_trouble_is_inspected_first_and_a_sweep_never_inspects_more_than_its_cap(
    db, empty_database, vault
) -> None:
    ids = [await seed_tenant(db, vault, f"cap{n}@x", plan="pro") for n in range(3)]
    async with fleet_of(db, empty_database["url"], health_max_inspect_per_sweep=1) as fleet:
        await fleet.converge()
        broken = await machine_of(db, ids[2])
        fleet.emu.crash_loop(broken, restarts=0)
        [report] = await sweeps(fleet, 1)
        assert (report.introspected, report.inspect_deferred) == (1, 2)
        assert report.fly_event_calls == 1  # the agent in trouble was the one looked at
        assert (await banners_of(db, ids[2]))[("agent_down", "")][1] == 1
