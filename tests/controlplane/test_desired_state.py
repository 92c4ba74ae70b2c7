"""Desired-state changes: desired_rev bump + audit row + reconcile mark in one transaction; queue
semantics (dedupe, explicit vs background marks, requeue while leased); secrets store."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from controlplane import audit
from controlplane.db.models import (
    AuditLog,
    LifecycleState,
    ReconcileItem,
    Secret,
    Tenant,
)
from controlplane.db.queue import mark_for_reconcile
from controlplane.desired import desired_state_changed, transition_lifecycle
from controlplane.secrets_store import delete_secret, put_secret, read_secret
from controlplane.vault import DecryptionFailed


async def test_change_bumps_rev_audits_and_marks(db, tenant_factory) -> None:
    tenant = await tenant_factory(plan="starter")
    async with db.transaction() as s:
        t = await s.get(Tenant, tenant.id)
        t.plan = "pro"
        await desired_state_changed(
            s,
            t,
            actor="api",
            action="plan_changed",
            reason="upgrade",
            before={"plan": "starter"},
            after={"plan": "pro"},
        )
    async with db.transaction() as s:
        t = await s.get(Tenant, tenant.id)
        assert t.desired_rev == 2 and t.plan == "pro"
        row = await s.scalar(select(AuditLog).where(AuditLog.tenant_id == tenant.id))
        assert (row.actor, row.action, row.reason) == ("api", "plan_changed", "upgrade")
        assert row.before == {"plan": "starter"} and row.after == {"plan": "pro", "desired_rev": 2}
        item = await s.get(ReconcileItem, tenant.id)
        assert item is not None and item.reason == "plan_changed by api"


async def test_a_failed_transaction_leaves_nothing_half_written(db, tenant_factory) -> None:
    tenant = await tenant_factory()
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            t = await s.get(Tenant, tenant.id)
            t.plan = "power"
            await desired_state_changed(s, t, actor="api", action="plan_changed")
            raise RuntimeError("boom after the change")
    async with db.transaction() as s:
        assert (await s.get(Tenant, tenant.id)).desired_rev == 1
        assert await s.get(ReconcileItem, tenant.id) is None
        assert await s.scalar(select(func.count()).select_from(AuditLog)) == 0


async def test_lifecycle_transition_is_audited_once(db, tenant_factory) -> None:
    tenant = await tenant_factory()
    async with db.transaction() as s:
        t = await s.get(Tenant, tenant.id)
        assert transition_lifecycle(s, t, LifecycleState.provisioning, actor="worker", reason="key saved")
        assert not transition_lifecycle(s, t, LifecycleState.provisioning, actor="worker", reason="again")
    async with db.transaction() as s:
        rows = (await s.execute(select(AuditLog))).scalars().all()
    assert [(r.before, r.after) for r in rows] == [
        ({"lifecycle_state": "pending"}, {"lifecycle_state": "provisioning"})
    ]


def test_audit_refuses_unknown_actors() -> None:
    with pytest.raises(ValueError, match="actor"):
        audit.check_actor("somebody")
    assert audit.check_actor("cli:alice@example.com") == "cli:alice@example.com"


async def test_secrets_store_round_trip_replace_delete(db, vault, tenant_factory) -> None:
    a = await tenant_factory()
    b = await tenant_factory()
    async with db.transaction() as s:
        row = await put_secret(s, vault, tenant_id=a.id, name="provider:openai", plaintext="first-value-123")
        assert row.version == 1 and row.key_id == "k2"
    async with db.transaction() as s:
        row = await put_secret(s, vault, tenant_id=a.id, name="provider:openai", plaintext="second-value-456")
        assert row.version == 2
        assert await read_secret(s, vault, tenant_id=a.id, name="provider:openai") == "second-value-456"
        assert await read_secret(s, vault, tenant_id=a.id, name="provider:groq") is None
    # A ciphertext copied to another tenant's row does not decrypt there.
    async with db.transaction() as s:
        stolen = await s.scalar(select(Secret.value).where(Secret.tenant_id == a.id))
        s.add(Secret(tenant_id=b.id, name="provider:openai", key_id="k2", value=stolen))
    async with db.transaction() as s:
        with pytest.raises(DecryptionFailed):
            await read_secret(s, vault, tenant_id=b.id, name="provider:openai")
    async with db.transaction() as s:
        assert await delete_secret(s, tenant_id=a.id, name="provider:openai")
        assert not await delete_secret(s, tenant_id=a.id, name="provider:openai")
        assert await s.scalar(select(func.count()).select_from(Secret).where(Secret.tenant_id == a.id)) == 0


async def test_deleting_a_tenant_cascades(db, vault, tenant_factory) -> None:
    a = await tenant_factory()
    async with db.transaction() as s:
        await put_secret(s, vault, tenant_id=a.id, name="gateway_token", plaintext="tok-abcdefghijkl")
        await mark_for_reconcile(s, a.id, "x")
    async with db.transaction() as s:
        await s.delete(await s.get(Tenant, a.id))
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Secret)) == 0
        assert await s.scalar(select(func.count()).select_from(ReconcileItem)) == 0


async def test_ensure_secret_generates_once_then_returns_the_stored_value(db, vault, tenant_factory) -> None:
    from controlplane.secrets_store import ensure_secret

    tenant = await tenant_factory()
    made: list[str] = []

    def generate() -> str:
        made.append(f"generated-token-{len(made)}")
        return made[-1]

    async with db.transaction() as s:
        first = await ensure_secret(s, vault, tenant_id=tenant.id, name="gateway_token", generate=generate)
    async with db.transaction() as s:
        second = await ensure_secret(s, vault, tenant_id=tenant.id, name="gateway_token", generate=generate)
        assert await read_secret(s, vault, tenant_id=tenant.id, name="gateway_token") == first
    assert first == second == "generated-token-0" and made == ["generated-token-0"]
