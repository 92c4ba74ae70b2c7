"""Smoke: a few tenants converge through the real worker against the emulator."""

from __future__ import annotations

from controlplane.db.models import FlyResources, Tenant
from controlplane.enums import LifecycleState
from tests.support.fleet import running_fleet, seed_tenant


async def test_three_tenants_converge(db, empty_database, vault) -> None:
    ids = [
        await seed_tenant(
            db, vault, "a@x", plan="starter", providers=("openai",), channels=(("telegram", ("111",)),)
        ),
        await seed_tenant(db, vault, "b@x", plan="pro", providers=("anthropic", "google")),
        await seed_tenant(db, vault, "c@x", plan="power", providers=("anthropic", "groq")),
    ]
    async with running_fleet(db, empty_database["url"]) as fleet:
        handled = await fleet.converge()
        print([(h.tenant_id[:6], h.action, h.note, h.error) for h in handled])
        async with db.read() as s:
            for tenant_id in ids:
                tenant = await s.get(Tenant, tenant_id)
                fly = await s.get(FlyResources, tenant_id)
                assert tenant.lifecycle_state is LifecycleState.running, (tenant.lifecycle_state, handled)
                assert fly.machine_id and fly.volume_id and fly.observed_rev == tenant.desired_rev
        print("calls", fleet.fly_calls(), fleet.process.fly_calls.snapshot())
