"""End to end, on SQLite and PostgreSQL: the real worker process converges tenants on the Fly
emulator and keeps them converged (issue 9's acceptance points)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from controlplane.db.models import AuditLog, FlyResources, ReconcileItem, Secret, Tenant, utcnow
from controlplane.desired import change_plan, request_deletion
from controlplane.enums import LifecycleState
from tests.support.fleet import add_key, emulator, running_fleet, seed_tenant


async def state_of(db, tenant_id: str) -> tuple[Tenant, FlyResources | None]:
    async with db.read() as s:
        tenant = await s.get(Tenant, tenant_id)
        fly = await s.get(FlyResources, tenant_id)
        assert tenant is not None
        s.expunge(tenant)
        if fly is not None:
            s.expunge(fly)
        return tenant, fly


async def test_fifty_tenants_converge_and_a_second_pass_changes_nothing(db, empty_database, vault) -> None:
    plans = ("starter", "pro", "power")
    ids = [
        await seed_tenant(
            db,
            vault,
            f"u{n}@example.com",
            plan=plans[n % 3],
            region=("iad", "ams", "fra")[n % 3],
            providers=(("anthropic",), ("openai", "google"))[n % 2],
            channels=(("telegram", (str(1000 + n),)),),
        )
        for n in range(50)
    ]
    async with running_fleet(db, empty_database["url"], concurrency=16) as fleet:
        handled = await fleet.converge()
        assert {h.action for h in handled} <= {"finish", "requeue"}, [h.error for h in handled if h.error]
        for tenant_id in ids:
            tenant, fly = await state_of(db, tenant_id)
            assert tenant.lifecycle_state is LifecycleState.running
            assert fly is not None and fly.observed_rev == tenant.desired_rev
            machine = fleet.emu.machines[fly.machine_id]
            assert machine.state == "started" and machine.region == tenant.region
        assert len([m for m in fleet.emu.machines.values() if m.state != "destroyed"]) == 50
        calls_new = fleet.fly_calls()
        assert calls_new <= 10 * 50, f"{calls_new} Fly calls for 50 new tenants"

        # An explicit full pass over a converged fleet reads, and writes nothing.
        await fleet.process.queue.mark_all("check", explicit=True)
        await fleet.converge()
        assert fleet.calls("/machines/{machine}", method="POST") == 0  # no update, start or stop
        assert fleet.calls("/secrets", method="POST") == 50  # only the first pushes
        assert fleet.calls("POST /v1/apps/{app}/machines") == 50  # creates (and nothing more)


async def test_a_plan_change_updates_only_that_machine_and_grows_its_volume(
    db, empty_database, vault
) -> None:
    ids = [await seed_tenant(db, vault, f"p{n}@x", plan="pro") for n in range(6)]
    async with running_fleet(db, empty_database["url"]) as fleet:
        await fleet.converge()
        _, before = await state_of(db, ids[0])
        assert before is not None and before.volume_size_gb == 3
        async with db.transaction() as s:
            tenant = await s.get(Tenant, ids[0])
            await change_plan(s, fleet.process.catalog, tenant, "power", actor="cli:test", reason="upgrade")
        updates_before = fleet.calls("POST /v1/apps/{app}/machines/{machine}")
        await fleet.converge()
        tenant, after = await state_of(db, ids[0])
        assert after is not None and after.observed_rev == tenant.desired_rev
        assert fleet.calls("POST /v1/apps/{app}/machines/{machine}") - updates_before == 1  # one update
        machine = fleet.emu.machines[after.machine_id]
        assert machine.config["guest"]["memory_mb"] == 4096 and machine.state == "started"
        assert after.volume_size_gb == 10 and fleet.emu.state.volumes[after.volume_id].size_gb == 10
        assert after.machine_id == before.machine_id  # updated in place, not recreated


async def test_a_new_key_reaches_the_machine_through_a_new_secrets_version(db, empty_database, vault) -> None:
    tenant_id = await seed_tenant(db, vault, "k@x", plan="pro", providers=("anthropic",))
    async with running_fleet(db, empty_database["url"]) as fleet:
        await fleet.converge()
        _, fly = await state_of(db, tenant_id)
        assert fly is not None
        first_version = fly.secrets_version
        assert fleet.emu.machines[fly.machine_id].secrets_version == first_version
        await add_key(db, vault, tenant_id, "openai")
        await fleet.converge()
        _, fly = await state_of(db, tenant_id)
        assert fly is not None and fly.secrets_version is not None and fly.secrets_version > first_version
        machine = fleet.emu.machines[fly.machine_id]
        assert machine.secrets_version == fly.secrets_version  # updated with min_secrets_version
        app = fleet.emu.apps[fly.app_name]
        assert "OPENAI_API_KEY" in app.secrets_at(app.secrets_version)
        assert "OPENAI_API_KEY" in sorted(fly.secret_digests)


async def test_a_tenant_without_a_key_stays_pending_until_one_arrives(db, empty_database, vault) -> None:
    tenant_id = await seed_tenant(db, vault, "nokey@x", plan="pro", providers=())
    async with running_fleet(db, empty_database["url"]) as fleet:
        await fleet.converge()
        tenant, fly = await state_of(db, tenant_id)
        assert tenant.lifecycle_state is LifecycleState.pending
        assert fly is None or fly.machine_id is None
        assert fleet.fly_calls() == 0 and fleet.emu.apps == {}
        await add_key(db, vault, tenant_id, "anthropic")
        await fleet.converge()
        tenant, fly = await state_of(db, tenant_id)
        assert tenant.lifecycle_state is LifecycleState.running and fly is not None and fly.machine_id


async def test_cancel_stops_with_autostart_off_then_destroys_everything_after_retention(
    db, empty_database, vault
) -> None:
    tenant_id = await seed_tenant(
        db, vault, "bye@x", plan="starter", providers=("openai",), channels=(("telegram", ("42",)),)
    )
    async with running_fleet(db, empty_database["url"]) as fleet:
        await fleet.converge()
        _, fly = await state_of(db, tenant_id)
        assert fly is not None
        app, machine_id, volume_id = fly.app_name, fly.machine_id, fly.volume_id
        async with db.transaction() as s:
            tenant = await s.get(Tenant, tenant_id)
            await request_deletion(
                s,
                tenant,
                retention=timedelta(hours=1),
                now=utcnow(),
                actor="webhook",
                reason="subscription canceled",
            )
        await fleet.converge()
        tenant, fly = await state_of(db, tenant_id)
        assert tenant.lifecycle_state is LifecycleState.stopped
        machine = fleet.emu.machines[machine_id]
        assert machine.state == "stopped"
        assert all(s["autostart"] is False for s in machine.config["services"])  # nothing can wake it
        # A request through Fly's proxy (a chat webhook, a browser) does not start it.
        async with fleet.emu.client() as http:
            await http.get(f"/gateway/{app}/readyz")
        assert fleet.emu.machines[machine_id].state == "stopped"

        async with db.transaction() as s:  # the retention period ends
            tenant = await s.get(Tenant, tenant_id)
            tenant.destroy_after = utcnow() - timedelta(seconds=1)
            from controlplane.db.queue import mark_for_reconcile

            await mark_for_reconcile(s, tenant_id, "retention over")
        await fleet.converge(idle_horizon=5)
        tenant, fly = await state_of(db, tenant_id)
        assert tenant.lifecycle_state is LifecycleState.gone
        assert app not in fleet.emu.apps
        assert (
            fleet.emu.machines_in(app) == []
            and volume_id not in fleet.emu.state.volumes
            or (fleet.emu.state.volumes[volume_id].state == "destroyed")
        )
        assert (
            fly is not None
            and fly.machine_id is None
            and fly.volume_id is None
            and fly.pending_destroy is None
        )
        async with db.read() as s:
            assert (
                await s.scalar(select(func.count()).select_from(Secret).where(Secret.tenant_id == tenant_id))
                == 0
            )
            actions = list(
                (await s.execute(select(AuditLog.action).where(AuditLog.tenant_id == tenant_id))).scalars()
            )
        for action in (
            "machine.autostart_off",
            "machine.stopped",
            "machine.destroyed",
            "volume.destroyed",
            "app.destroyed",
        ):
            assert action in actions


async def test_a_machine_deleted_by_hand_is_recreated_and_one_edited_by_hand_is_put_back(
    db, empty_database, vault
) -> None:
    deleted = await seed_tenant(db, vault, "del@x", plan="pro")
    edited = await seed_tenant(db, vault, "edit@x", plan="pro")
    untouched = await seed_tenant(db, vault, "same@x", plan="pro")
    async with running_fleet(db, empty_database["url"]) as fleet:
        await fleet.converge()
        _, lost = await state_of(db, deleted)
        _, hand = await state_of(db, edited)
        _, same = await state_of(db, untouched)
        assert lost and hand and same
        async with fleet.emu.client() as http:
            r = await http.delete(
                f"/v1/apps/{lost.app_name}/machines/{lost.machine_id}", params={"force": "true"}
            )
            assert r.status_code == 200
            current = (await http.get(f"/v1/apps/{hand.app_name}/machines/{hand.machine_id}")).json()
            config = current["config"]
            config["guest"]["memory_mb"] = 4096  # someone "helped" by hand, keeping our metadata
            r = await http.post(
                f"/v1/apps/{hand.app_name}/machines/{hand.machine_id}", json={"config": config}
            )
            assert r.status_code == 200, r.text
        fleet.emu.advance(60)  # the deletion is past Fly's destroyed-retention; lists caught up
        report = await fleet.process.scheduler.jobs[0].run(utcnow())
        assert report is None
        marked = fleet.process.last_resync
        assert marked is not None and set(marked.marked) == {"machine not listed", "machine size differs"}
        await fleet.converge()
        _, again = await state_of(db, deleted)
        assert again is not None and again.machine_id not in (None, lost.machine_id)
        assert fleet.emu.machines[again.machine_id].state == "started"
        assert fleet.emu.machines[hand.machine_id].config["guest"]["memory_mb"] == 2048
        _, still = await state_of(db, untouched)
        assert still is not None and still.machine_id == same.machine_id
        async with db.read() as s:
            actions = list(
                (
                    await s.execute(
                        select(AuditLog.action, AuditLog.reason).where(AuditLog.tenant_id == edited)
                    )
                ).all()
            )
        assert any(a == "machine.updated" and "put back" in (r or "") for a, r in actions)
        live = [m for m in fleet.emu.machines.values() if m.state not in ("destroyed",)]
        assert len(live) == 3


async def test_a_region_without_capacity_sends_a_new_tenant_to_the_next_region(
    db, empty_database, vault
) -> None:
    emu = emulator()
    emu.inject("create_volume", "capacity", region="iad", times=None)
    moved = await seed_tenant(db, vault, "cap@x", plan="pro", region="iad")
    async with running_fleet(db, empty_database["url"], emu, fly_fallback_regions="iad,ord,ewr") as fleet:
        await fleet.converge()
        tenant, fly = await state_of(db, moved)
        assert tenant.region == "ord" and tenant.lifecycle_state is LifecycleState.running
        assert fly is not None and fleet.emu.machines[fly.machine_id].region == "ord"
        async with db.read() as s:
            row = (
                await s.execute(
                    select(AuditLog.before, AuditLog.after).where(
                        AuditLog.tenant_id == moved, AuditLog.action == "region.moved"
                    )
                )
            ).one()
        assert row.before == {"region": "iad"} and row.after == {"region": "ord"}


async def test_a_tenant_is_parked_when_no_region_has_capacity_and_an_explicit_mark_retries(
    db, empty_database, vault
) -> None:
    emu = emulator()
    injection = emu.inject("create_volume", "capacity", times=None)
    stuck = await seed_tenant(db, vault, "full@x", plan="pro", region="iad")
    async with running_fleet(db, empty_database["url"], emu, fly_fallback_regions="ord") as fleet:
        await fleet.converge()
        async with db.read() as s:
            item = await s.get(ReconcileItem, stuck)
            assert item is not None and item.parked_reason and "no capacity" in item.parked_reason
        del injection
        emu.clear_faults()
        await fleet.process.queue.mark(stuck, "operator: capacity is back")
        await fleet.converge()
        tenant, _ = await state_of(db, stuck)
        assert tenant.lifecycle_state is LifecycleState.running and tenant.region == "ord"


async def test_a_stopped_always_on_machine_is_started_and_a_sleeping_one_is_left_asleep(
    db, empty_database, vault
) -> None:
    always_on = await seed_tenant(db, vault, "pro@x", plan="pro")
    sleeper = await seed_tenant(db, vault, "starter@x", plan="starter", providers=("openai",))
    async with running_fleet(db, empty_database["url"]) as fleet:
        await fleet.converge()
        machines = {}
        for tenant_id in (always_on, sleeper):
            _, fly = await state_of(db, tenant_id)
            assert fly is not None
            machines[tenant_id] = (fly.app_name, fly.machine_id)
        async with fleet.emu.client() as http:  # Fly's proxy autostops both (or someone stops them)
            for app, machine_id in machines.values():
                assert (
                    await http.post(f"/v1/apps/{app}/machines/{machine_id}/stop", json={})
                ).status_code == 200
        fleet.emu.advance(30)
        await fleet.process.scheduler.jobs[0].run(utcnow())
        assert fleet.process.last_resync is not None
        assert dict(fleet.process.last_resync.marked) == {"machine stopped, should run": 1}
        await fleet.converge()
        assert fleet.emu.machines[machines[always_on][1]].state == "started"
        assert fleet.emu.machines[machines[sleeper][1]].state == "stopped"  # asleep: never woken
        sleeper_state, _ = await state_of(db, sleeper)
        assert sleeper_state.lifecycle_state is LifecycleState.running  # nothing marked it: untouched


async def test_a_deleted_key_leaves_the_agent_at_the_next_reconcile(db, empty_database, vault) -> None:
    from controlplane.byok.service import KeyService
    from controlplane.byok.validate import KeyValidator

    tenant_id = await seed_tenant(db, vault, "two@x", plan="pro", providers=("anthropic", "openai"))
    async with running_fleet(db, empty_database["url"]) as fleet:
        await fleet.converge()
        _, fly = await state_of(db, tenant_id)
        assert fly is not None and {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"} <= set(fly.secret_digests)
        assert await KeyService(db, vault, KeyValidator()).delete(tenant_id, "openai", actor="api")
        await fleet.converge()
        _, fly = await state_of(db, tenant_id)
        assert fly is not None and "OPENAI_API_KEY" not in fly.secret_digests
        app = fleet.emu.apps[fly.app_name]
        assert "OPENAI_API_KEY" not in app.secrets_at(app.secrets_version)
        assert fleet.emu.machines[fly.machine_id].secrets_version == fly.secrets_version
        config = fleet.emu.machines[fly.machine_id].config
        import base64

        openclaw = base64.b64decode(config["files"][0]["raw_value"]).decode()
        assert "openai/" not in openclaw and "anthropic/" in openclaw
