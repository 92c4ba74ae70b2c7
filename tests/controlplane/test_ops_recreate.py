"""`tenant recreate` as a desired-state change, in process on every backend: what is refused (exit 3,
nothing written), and what one accepted request writes in one transaction (the request in
pending_destroy, the revision, the audit row, an explicit mark that un-parks)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from controlplane.db.models import AuditLog, FlyResources, ReconcileItem, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.enums import DesiredPower, LifecycleState
from controlplane.errors import Refused
from controlplane.ops.recreate import request_recreate


async def recreate(db: Database, tenant_id: str, *, fresh_volume: bool = False) -> dict[str, object]:
    async with db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        assert tenant is not None
        return await request_recreate(s, tenant, fresh_volume=fresh_volume, actor="cli:ops", reason="wedged")


async def with_machine(db: Database, tenant_id: str, *, pending: dict[str, object] | None = None) -> None:
    async with db.transaction() as s:
        s.add(
            FlyResources(
                tenant_id=tenant_id,
                app_name=f"oc-{tenant_id}",
                machine_id="m1",
                volume_id="v1",
                pending_destroy=pending,
            )
        )


@pytest.mark.parametrize(
    ("fields", "machine", "pending", "says"),
    [
        ({}, False, None, "no machine"),
        ({"desired_power": DesiredPower.stopped}, True, None, "stopped"),
        ({"lifecycle_state": LifecycleState.deprovisioning}, True, None, "deprovisioning"),
        ({}, True, {"app": "oc-x"}, "destroy is under way"),
    ],
)
async def test_refused_and_nothing_written(
    db: Database,
    tenant_factory: Callable[..., Awaitable[Tenant]],
    fields: dict[str, object],
    machine: bool,
    pending: dict[str, object] | None,
    says: str,
) -> None:
    tenant = await tenant_factory(**{"lifecycle_state": LifecycleState.running, **fields})
    if machine:
        await with_machine(db, tenant.id, pending=pending)
    with pytest.raises(Refused) as caught:
        await recreate(db, tenant.id)
    assert caught.value.exit_code == 3 and says in str(caught.value)
    async with db.read() as s:
        assert (await s.get(Tenant, tenant.id)).desired_rev == tenant.desired_rev  # type: ignore[union-attr]
        assert await s.scalar(select(AuditLog.id).where(AuditLog.tenant_id == tenant.id)) is None
        fly = await s.get(FlyResources, tenant.id)
        assert fly is None or fly.pending_destroy == pending


async def test_one_transaction_request_revision_audit_and_an_explicit_mark(
    db: Database, tenant_factory: Callable[..., Awaitable[Tenant]]
) -> None:
    tenant = await tenant_factory(lifecycle_state=LifecycleState.running)
    await with_machine(db, tenant.id)
    async with db.transaction() as s:  # parked, as terminal failures leave a tenant
        s.add(ReconcileItem(tenant_id=tenant.id, due_at=None, parked_reason="terminal", attempts=7))
    assert await recreate(db, tenant.id) == {"machine": "m1", "volume": None}
    assert await recreate(db, tenant.id, fresh_volume=True) == {"machine": "m1", "volume": "v1"}
    async with db.read() as s:
        fly = await s.get(FlyResources, tenant.id)
        assert fly is not None and fly.pending_destroy == {"recreate": {"machine": "m1", "volume": "v1"}}
        assert (await s.get(Tenant, tenant.id)).desired_rev == tenant.desired_rev + 2  # type: ignore[union-attr]
        rows = (await s.scalars(select(AuditLog).where(AuditLog.tenant_id == tenant.id))).all()
        assert [(r.actor, r.action, r.reason) for r in rows] == [("cli:ops", "tenant.recreate", "wedged")] * 2
        item = await s.get(ReconcileItem, tenant.id)
        assert item is not None and item.parked_reason is None and item.due_at is not None
        assert item.due_at <= utcnow()
