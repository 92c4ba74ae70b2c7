"""The one way entry points change a tenant's desired state.

Webhook, API and CLI handlers change the :class:`~controlplane.db.models.Tenant` row (or its keys,
channels ...) and then call :func:`desired_state_changed` in the SAME transaction: it bumps
``desired_rev``, writes the audit row and marks the tenant to reconcile. Workers alone call Fly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from controlplane import audit
from controlplane.db.models import Tenant, utcnow
from controlplane.db.queue import mark_for_reconcile
from controlplane.enums import LifecycleState


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


__all__ = ["desired_state_changed", "transition_lifecycle"]
