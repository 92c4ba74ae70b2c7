"""How billing changes a tenant: take a :func:`snapshot`, change the billing-owned fields (by the
rules of :mod:`.entitlement`), then :func:`commit_change` records -- if anything changed -- ONE
desired-state change (rev bump + audit row with before/after + reconcile mark) and brings the
billing banners in line. Callers hold the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.billing.banners import sync_billing_banners
from controlplane.db.models import Tenant
from controlplane.desired import desired_state_changed

FIELDS = (
    "plan",
    "billing_status",
    "desired_power",
    "billing_grace_until",
    "key_grace_until",
    "destroy_after",
    "stripe_customer_id",
    "stripe_subscription_id",
)


def snapshot(tenant: Tenant) -> dict[str, Any]:
    """The billing-relevant fields of ``tenant`` as audit-friendly values."""
    view: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(tenant, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif hasattr(value, "value"):
            value = value.value
        view[name] = value
    return view


async def commit_change(
    session: AsyncSession,
    tenant: Tenant,
    before: dict[str, Any] | None,
    now: datetime,
    *,
    actor: str,
    action: str,
    reason: str,
) -> bool:
    """Finish a billing change of ``tenant`` (see the module docstring). ``True`` if desired state
    changed. ``before`` is None for a tenant created in this transaction."""
    after = snapshot(tenant)
    changed = before != after
    if changed:
        await desired_state_changed(
            session,
            tenant,
            actor=actor,
            action=action,
            reason=reason,
            before={k: v for k, v in (before or {}).items() if after.get(k) != v} if before else None,
            after={k: v for k, v in after.items() if before is None or before.get(k) != v},
        )
    await sync_billing_banners(session, tenant, now, actor=actor, reason=reason)
    return changed


async def lock_tenant(session: AsyncSession, tenant_id: str) -> Tenant | None:
    """The tenant row, locked for this transaction on PostgreSQL (SQLite writers are serialised)."""
    stmt = select(Tenant).where(Tenant.id == tenant_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


__all__ = ["FIELDS", "commit_change", "lock_tenant", "snapshot"]
