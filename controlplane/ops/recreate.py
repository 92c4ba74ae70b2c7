"""``tenant recreate``: an operator asks for the tenant's machine to be destroyed and created again
from desired state.

Decided semantics (README, runbook): the machine is recreated; the VOLUME IS KEPT (the agent's state
survives) unless ``fresh_volume`` is asked for, which destroys the volume too (its data is lost; the
CLI asks for a typed confirmation). Like every entry point this only changes desired state in one
transaction: the request goes into ``fly_resources.pending_destroy`` (phase one of invariant 3's
two-phase destroy), the revision is bumped, an audit row is written and the tenant is marked with an
explicit mark (due now, un-parked, no backoff: invariant 6). The reconciler does the Fly calls.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import Tenant
from controlplane.db.tenants import record_recreate_request
from controlplane.desired import desired_state_changed
from controlplane.enums import DesiredPower, LifecycleState
from controlplane.errors import Refused


async def request_recreate(
    session: AsyncSession, tenant: Tenant, *, fresh_volume: bool, actor: str, reason: str
) -> dict[str, Any]:
    """Record the recreate request; returns what will be destroyed (``machine``, ``volume``)."""
    if tenant.lifecycle_state in (LifecycleState.gone, LifecycleState.deprovisioning):
        raise Refused("EXTERNAL_ID", f"the tenant is {tenant.lifecycle_state.value}: nothing to recreate")
    if tenant.desired_power is not DesiredPower.running:
        raise Refused("EXTERNAL_ID", f"the tenant is {tenant.desired_power.value}: `tenant start` it first")
    request = await record_recreate_request(session, tenant.id, fresh_volume=fresh_volume)
    await desired_state_changed(
        session,
        tenant,
        actor=actor,
        action="tenant.recreate",
        reason=reason,
        before={"machine_id": request["machine"]},
        after={"recreate_machine": request["machine"], "destroy_volume": request["volume"]},
    )
    return request


__all__ = ["request_recreate"]
