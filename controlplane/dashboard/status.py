"""Is my agent up, and why not: one tenant's status in one read.

Desired state comes from ``tenants``, what was last seen on Fly from ``fly_resources``, the
reconciler's progress from ``reconcile_queue``; all three in one query (a join on the tenant's unique
external id and two primary keys). Drift = ``desired_rev`` differs from the ``observed_rev`` last
applied.

The reconcile part reads the queue's own columns: ``due_at`` is when the tenant is due (``None``:
nothing queued, or parked), ``leased`` whether a worker holds it now. The queue does not record the
outcome or time of the last run, so ``last_outcome``/``last_run_at`` stay ``None`` until it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from controlplane.db.models import FlyResources, ReconcileItem, Tenant
from controlplane.db.session import Database
from controlplane.enums import BillingStatus, DesiredPower, LifecycleState
from controlplane.errors import NotFound

ReconcileOutcome = Literal["done", "requeue", "retry", "park"]


@dataclass(frozen=True, slots=True)
class ReconcileView:
    due_at: datetime | None
    leased: bool
    attempts: int
    parked_reason: str | None
    last_error: str | None
    last_outcome: ReconcileOutcome | None
    last_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class MachineView:
    app_name: str | None
    machine_id: str | None
    state: str | None  # Fly's machine state as last observed (started, stopped, suspended ...)
    observed_at: datetime | None
    image: str | None  # the image the machine runs, as last observed


@dataclass(frozen=True, slots=True)
class TenantStatus:
    external_id: str
    plan: str
    lifecycle_state: LifecycleState
    desired_power: DesiredPower
    billing_status: BillingStatus
    region: str
    image: str  # the image the tenant should run (its pin, or the operator's default)
    desired_rev: int
    observed_rev: int
    drift: bool
    config_hash: str | None
    parked_reason: str | None
    machine: MachineView
    reconcile: ReconcileView


_COLUMNS = (
    Tenant.external_id,
    Tenant.plan,
    Tenant.lifecycle_state,
    Tenant.desired_power,
    Tenant.billing_status,
    Tenant.region,
    Tenant.image_pin,
    Tenant.desired_rev,
    Tenant.parked_reason,
    FlyResources.app_name,
    FlyResources.machine_id,
    FlyResources.observed_state,
    FlyResources.observed_at,
    FlyResources.observed_rev,
    FlyResources.config_hash,
    FlyResources.image_ref,
    FlyResources.last_error,
    ReconcileItem.tenant_id,
    ReconcileItem.run_after,
    ReconcileItem.attempts,
    ReconcileItem.lease_owner,
    ReconcileItem.lease_expires_at,
    ReconcileItem.last_error,
    ReconcileItem.parked_reason,
)


async def tenant_status(db: Database, external_id: str, *, default_image: str, now: datetime) -> TenantStatus:
    stmt = (
        select(*_COLUMNS)
        .select_from(Tenant)
        .outerjoin(FlyResources, FlyResources.tenant_id == Tenant.id)
        .outerjoin(ReconcileItem, ReconcileItem.tenant_id == Tenant.id)
        .where(Tenant.external_id == external_id)
    )
    async with db.read() as session:
        row = (await session.execute(stmt)).first()
    if row is None:
        raise NotFound("external_id", "no tenant with this external id")
    (
        ext_id,
        plan,
        lifecycle,
        power,
        billing,
        region,
        image_pin,
        desired_rev,
        tenant_parked,
        app_name,
        machine_id,
        machine_state,
        observed_at,
        observed_rev,
        config_hash,
        image_ref,
        fly_error,
        queued,
        run_after,
        attempts,
        lease_owner,
        lease_expires_at,
        queue_error,
        queue_parked,
    ) = row
    parked = queue_parked or tenant_parked
    reconcile = ReconcileView(
        due_at=run_after if queued is not None and queue_parked is None else None,
        leased=lease_owner is not None and lease_expires_at is not None and lease_expires_at > now,
        attempts=attempts or 0,
        parked_reason=parked,
        last_error=queue_error or fly_error,
        last_outcome=None,
        last_run_at=None,
    )
    observed = observed_rev or 0
    return TenantStatus(
        external_id=ext_id,
        plan=plan,
        lifecycle_state=lifecycle,
        desired_power=power,
        billing_status=billing,
        region=region,
        image=image_pin or default_image,
        desired_rev=desired_rev,
        observed_rev=observed,
        drift=desired_rev != observed,
        config_hash=config_hash,
        parked_reason=parked,
        machine=MachineView(app_name, machine_id, machine_state, observed_at, image_ref),
        reconcile=reconcile,
    )


__all__ = ["MachineView", "ReconcileOutcome", "ReconcileView", "TenantStatus", "tenant_status"]
