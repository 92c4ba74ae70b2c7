"""Is my agent up, and why not: one tenant's status.

Desired state comes from ``tenants``, what was last seen on Fly from ``fly_resources`` (one query,
joined on the tenant's unique external id), the reconciler's progress from the queue's own view
(:func:`controlplane.db.queue.reconcile_status`), in the same read transaction. Drift =
``desired_rev`` differs from the ``observed_rev`` last applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import bindparam, select

from controlplane.db.models import FlyResources, Tenant
from controlplane.db.queue import reconcile_status
from controlplane.db.reads import autocommit_read
from controlplane.db.session import Database
from controlplane.db.tenants import image_of
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
    Tenant.id,
    Tenant.external_id,
    Tenant.plan,
    Tenant.lifecycle_state,
    Tenant.desired_power,
    Tenant.billing_status,
    Tenant.region,
    Tenant.image_pin,
    Tenant.desired_image,
    Tenant.desired_rev,
    FlyResources.app_name,
    FlyResources.machine_id,
    FlyResources.observed_state,
    FlyResources.observed_at,
    FlyResources.observed_rev,
    FlyResources.config_hash,
    FlyResources.image_ref,
)
# Built once: the hot path only binds the id (building a statement costs more than running it).
_STATUS = (
    select(*_COLUMNS)
    .select_from(Tenant)
    .outerjoin(FlyResources, FlyResources.tenant_id == Tenant.id)
    .where(Tenant.external_id == bindparam("external_id"))
)
_OUTCOMES: frozenset[str] = frozenset({"done", "requeue", "retry", "park"})


async def tenant_status(db: Database, external_id: str, *, default_image: str, now: datetime) -> TenantStatus:
    async with autocommit_read(db) as conn:  # two statements, no snapshot needed between them
        row = (await conn.execute(_STATUS, {"external_id": external_id})).first()
        if row is None:
            raise NotFound("external_id", "no tenant with this external id")
        queue = await reconcile_status(conn, row.id, now=now)
    outcome = queue.last_outcome if queue is not None and queue.last_outcome in _OUTCOMES else None
    reconcile = ReconcileView(
        due_at=queue.due_at if queue is not None else None,
        leased=queue.leased if queue is not None else False,
        attempts=queue.attempts if queue is not None else 0,
        parked_reason=queue.parked_reason if queue is not None else None,
        last_error=queue.last_error if queue is not None else None,
        last_outcome=cast(ReconcileOutcome | None, outcome),
        last_run_at=queue.last_run_at if queue is not None else None,
    )
    observed = row.observed_rev or 0
    return TenantStatus(
        external_id=row.external_id,
        plan=row.plan,
        lifecycle_state=row.lifecycle_state,
        desired_power=row.desired_power,
        billing_status=row.billing_status,
        region=row.region,
        image=image_of(row.image_pin, row.desired_image, default_image),
        desired_rev=row.desired_rev,
        observed_rev=observed,
        drift=row.desired_rev != observed,
        config_hash=row.config_hash,
        parked_reason=reconcile.parked_reason,
        machine=MachineView(row.app_name, row.machine_id, row.observed_state, row.observed_at, row.image_ref),
        reconcile=reconcile,
    )


__all__ = ["MachineView", "ReconcileOutcome", "ReconcileView", "TenantStatus", "tenant_status"]
