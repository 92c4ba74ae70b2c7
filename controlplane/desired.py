"""The one way entry points change a tenant's desired state.

Webhook, API and CLI handlers change the :class:`~controlplane.db.models.Tenant` row (or its keys,
channels ...) and then call :func:`desired_state_changed` in the SAME transaction: it bumps
``desired_rev``, writes the audit row and marks the tenant to reconcile. Workers alone call Fly.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config import PlanCatalog, UnknownPlanError
from controlplane import audit
from controlplane.db.models import Tenant, utcnow
from controlplane.db.queue import mark_for_reconcile
from controlplane.enums import DesiredPower, LifecycleState
from controlplane.errors import BadInput, NotFound, Refused
from controlplane.redaction import redact_text

#: The operator's external id of a tenant: URL-safe, so it can address the tenant in API paths.
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}$")
REGION = re.compile(r"^[a-z]{3}$")


async def desired_state_changed(
    session: AsyncSession,
    tenant: Tenant,
    *,
    actor: str,
    action: str,
    reason: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Record a desired-state change of ``tenant`` and ask for it to be reconciled."""
    tenant.desired_rev = (tenant.desired_rev or 0) + 1
    tenant.updated_at = utcnow()
    audit.record(
        session,
        actor=actor,
        action=action,
        tenant_id=tenant.id,
        reason=reason,
        before=before,
        after={**(after or {}), "desired_rev": tenant.desired_rev},
    )
    await session.flush()
    await mark_for_reconcile(session, tenant.id, f"{action} by {actor}")


def transition_lifecycle(
    session: AsyncSession,
    tenant: Tenant,
    new_state: LifecycleState,
    *,
    actor: str,
    reason: str,
) -> bool:
    """Move ``tenant`` to ``new_state`` with an audit row; ``False`` (and no row) if already there."""
    old = tenant.lifecycle_state
    if old == new_state:
        return False
    tenant.lifecycle_state = new_state
    tenant.updated_at = utcnow()
    audit.record(
        session,
        actor=actor,
        action="lifecycle",
        tenant_id=tenant.id,
        reason=reason,
        before={"lifecycle_state": old.value if old else None},
        after={"lifecycle_state": new_state.value},
    )
    return True


def check_external_id(value: str, field: str = "EXTERNAL_ID") -> str:
    """The id itself when it is well-formed; never echoed back when it is not (it could be a key)."""
    if not EXTERNAL_ID.match(value) or redact_text(value) != value:
        raise BadInput(
            field,
            f"not a tenant id (1-255 letters, digits and . _ @ + -, starting with a letter or digit, "
            f"and not shaped like a key or token; got {len(value)} characters)",
        )
    return value


def check_plan(catalog: PlanCatalog, plan: str, field: str = "--plan") -> str:
    try:
        catalog.plan(plan)
    except UnknownPlanError:
        known = ", ".join(catalog.plans)
        raise NotFound(field, f"no such plan in the catalog; plans: {known}") from None
    return plan


def check_region(region: str, field: str = "--region") -> str:
    if not REGION.match(region):
        raise BadInput(field, "not a Fly region code (three lower-case letters, e.g. iad)")
    return region


async def find_tenant(session: AsyncSession, external_id: str, *, for_update: bool = False) -> Tenant:
    """The tenant with this external id (row-locked on PostgreSQL when ``for_update``)."""
    check_external_id(external_id)
    stmt = select(Tenant).where(Tenant.external_id == external_id)
    if for_update:
        stmt = stmt.with_for_update()
    tenant = await session.scalar(stmt)
    if tenant is None:
        raise NotFound("EXTERNAL_ID", "no tenant with this id")
    return tenant


async def create_tenant(
    session: AsyncSession,
    catalog: PlanCatalog,
    *,
    external_id: str,
    plan: str,
    region: str,
    actor: str,
    reason: str | None = None,
) -> Tenant:
    """A new tenant (``pending`` until it has a usable model credential), audited and marked."""
    check_external_id(external_id)
    check_plan(catalog, plan)
    check_region(region)
    if await session.scalar(select(Tenant.id).where(Tenant.external_id == external_id)) is not None:
        raise Refused("EXTERNAL_ID", "a tenant with this id exists already")
    tenant = Tenant(external_id=external_id, plan=plan, region=region, desired_power=DesiredPower.running)
    session.add(tenant)
    await session.flush()
    await desired_state_changed(
        session,
        tenant,
        actor=actor,
        action="tenant.created",
        reason=reason,
        after={"plan": plan, "region": region},
    )
    return tenant


async def change_plan(
    session: AsyncSession, catalog: PlanCatalog, tenant: Tenant, plan: str, *, actor: str, reason: str | None
) -> bool:
    """Move ``tenant`` to ``plan``; ``False`` (nothing written) when it is on it already."""
    check_plan(catalog, plan, "PLAN")
    if tenant.plan == plan:
        return False
    old = tenant.plan
    tenant.plan = plan
    await desired_state_changed(
        session,
        tenant,
        actor=actor,
        action="plan.changed",
        reason=reason,
        before={"plan": old},
        after={"plan": plan},
    )
    return True


async def set_power(
    session: AsyncSession, tenant: Tenant, power: DesiredPower, *, actor: str, reason: str
) -> bool:
    """Ask for the agent to run or to be stopped (autostart off). Starting also cancels a pending
    deletion. ``False`` when nothing changes (still marked: an operator's start is never blocked)."""
    if tenant.lifecycle_state is LifecycleState.gone:
        raise Refused("EXTERNAL_ID", "the tenant is gone; its resources were destroyed")
    before = {"desired_power": tenant.desired_power.value, "destroy_after": _iso(tenant.destroy_after)}
    changed = tenant.desired_power is not power or (power is DesiredPower.running and tenant.destroy_after)
    tenant.desired_power = power
    if power is DesiredPower.running:
        tenant.destroy_after = None
    if changed:
        await desired_state_changed(
            session,
            tenant,
            actor=actor,
            action=f"tenant.{'start' if power is DesiredPower.running else 'stop'}",
            reason=reason,
            before=before,
            after={"desired_power": power.value},
        )
    else:
        await mark_for_reconcile(session, tenant.id, f"{power.value} requested by {actor}")
    return bool(changed)


async def request_deletion(
    session: AsyncSession,
    tenant: Tenant,
    *,
    retention: timedelta,
    now: datetime,
    actor: str,
    reason: str,
) -> datetime:
    """Stop the agent now (autostart off) and destroy its resources once ``retention`` has passed
    (``timedelta(0)``: at once). Returns when they will be destroyed."""
    if tenant.lifecycle_state is LifecycleState.gone:
        raise Refused("EXTERNAL_ID", "the tenant is gone already")
    when = now + retention
    before = {"desired_power": tenant.desired_power.value, "destroy_after": _iso(tenant.destroy_after)}
    tenant.desired_power = DesiredPower.gone
    tenant.destroy_after = min(when, tenant.destroy_after) if tenant.destroy_after else when
    await desired_state_changed(
        session,
        tenant,
        actor=actor,
        action="tenant.delete",
        reason=reason,
        before=before,
        after={"desired_power": "gone", "destroy_after": _iso(tenant.destroy_after)},
    )
    return tenant.destroy_after


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


__all__ = [
    "EXTERNAL_ID",
    "change_plan",
    "check_external_id",
    "check_plan",
    "check_region",
    "create_tenant",
    "desired_state_changed",
    "find_tenant",
    "request_deletion",
    "set_power",
    "transition_lifecycle",
]
