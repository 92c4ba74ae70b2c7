"""The periodic resync: find drift cheaply and mark only the tenants that need a reconcile.

One sweep reads the org-wide machine listing (``GET /v1/orgs/{org}/machines``, a page per thousand
machines) and the desired state of every tenant from the database, and compares them without any
per-tenant Fly call: a tenant whose machine is listed in the desired state with the desired config
hash and image needs nothing. The others get a background mark (spread over the interval, so a big
drift does not arrive as one burst):

* its machine is not listed (deleted behind our back? the reconcile confirms with a GET first);
* the machine's ``cp_machine_hash`` or image differs from what was applied (edited by hand);
* an always-on agent that should run is stopped or failed, or a stopped tenant's machine runs;
* a change not converged yet (``desired_rev`` ahead of ``observed_rev``), a transition in progress,
  or a retention / grace deadline that has passed.

Machines carrying a tenant id we do not know are orphans: reported (log line, count), never deleted
here. A listing that came back partial (``error_regions``) never counts a machine as missing.

The slower full resync (:func:`full_resync`) marks every tenant, spread over its period: it is what
catches drift the listing cannot show (app secrets changed by hand, a lost volume).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from agents_config import Plan, PlanCatalog, UnknownPlanError
from agents_config.machine_config import META_TENANT_ID
from controlplane.db import tenants as store
from controlplane.db.models import FlyResources, Tenant
from controlplane.db.queue import ReconcileQueue, mark_many
from controlplane.db.session import Database
from controlplane.enums import BillingStatus, LifecycleState
from controlplane.fly import FlyClient, OrgMachine, OrgMachineQuery, OrgMachineScan
from workers.metrics import DRIFT_MARKS
from workers.reconciler import META_MACHINE_HASH

log = structlog.get_logger(__name__)

ALWAYS_CHECK = frozenset({LifecycleState.provisioning, LifecycleState.deprovisioning})
DOWN_STATES = frozenset({"stopped", "suspended", "failed"})


@dataclass(slots=True)
class ResyncReport:
    machines_listed: int = 0
    tenants: int = 0
    marked: Counter[str] = field(default_factory=Counter)
    orphans: list[str] = field(default_factory=list)
    partial: bool = False
    fly_pages: int = 0

    @property
    def marked_total(self) -> int:
        return sum(self.marked.values())


def drift_reason(
    row: tuple[Tenant, FlyResources | None],
    machine: OrgMachine | None,
    *,
    plan: Plan | None,
    listing_complete: bool,
    now: datetime,
) -> str | None:
    tenant, fly = row
    state = tenant.lifecycle_state
    if state in ALWAYS_CHECK:
        return "transition in progress"
    if tenant.destroy_after is not None and tenant.destroy_after <= now:
        return "retention over"
    if (
        tenant.billing_status is BillingStatus.past_due
        and (tenant.billing_grace_until is None or tenant.billing_grace_until <= now)
        and state is not LifecycleState.stopped
    ):
        return "billing grace over"
    if (
        tenant.key_grace_until is not None
        and tenant.key_grace_until <= now
        and state is LifecycleState.running
    ):
        return "key grace over"
    observed_rev = fly.observed_rev if fly is not None else 0
    if tenant.desired_rev != observed_rev:
        return "desired state not converged"
    if fly is None or fly.machine_id is None:
        return None
    if machine is None:
        return "machine not listed" if listing_complete else None
    if machine.metadata.get(META_MACHINE_HASH) != fly.config_hash:
        return "machine config differs"
    image = machine.config.image if machine.config is not None else None
    if image is not None and fly.image_ref is not None and image != fly.image_ref:
        return "machine image differs"
    guest = machine.config.guest if machine.config is not None else None
    if (
        guest is not None
        and plan is not None
        and (guest.cpu_kind, guest.cpus, guest.memory_mb)
        != (plan.machine.cpu_kind, plan.machine.cpus, plan.machine.memory_mb)
    ):
        return "machine size differs"
    sleeps = plan.sleep_when_idle if plan is not None else False
    machine_state = machine.state or ""
    if state in (LifecycleState.running, LifecycleState.sleeping):
        if machine_state == "failed" or (machine_state in DOWN_STATES and not sleeps):
            return f"machine {machine_state}, should run"
    if state is LifecycleState.stopped and machine_state in ("started", "starting"):
        return "machine runs, should be stopped"
    return None


async def resync_once(
    db: Database,
    fly: FlyClient,
    catalog: PlanCatalog,
    *,
    now: datetime,
    spread_seconds: float = 0.0,
    rng: random.Random | None = None,
) -> ResyncReport:
    """One sweep: list the org's machines, compare with desired state, mark what drifted."""
    report = ResyncReport()
    scan = OrgMachineScan(fly, OrgMachineQuery(summary=True))
    machines: dict[str, OrgMachine] = {}
    async for machine in scan:
        report.machines_listed += 1
        machines[machine.id] = machine
    report.partial = scan.partial
    report.fly_pages = scan.pages
    async with db.read() as s:
        rows = await store.live_tenants_with_fly(s)
        known = {tenant.id for tenant, _ in rows}
        marks: dict[str, str] = {}
        for tenant, fly_row in rows:
            report.tenants += 1
            try:
                plan: Plan | None = catalog.plan(tenant.plan)
            except UnknownPlanError:
                plan = None
            listed = machines.get(fly_row.machine_id) if fly_row and fly_row.machine_id else None
            reason = drift_reason(
                (tenant, fly_row), listed, plan=plan, listing_complete=not report.partial, now=now
            )
            if reason is not None:
                marks[tenant.id] = reason
    for machine in machines.values():
        owner = machine.metadata.get(META_TENANT_ID)
        if owner is not None and owner not in known and machine.state not in ("destroyed", "destroying"):
            report.orphans.append(f"{machine.app_name}/{machine.id}")
    if marks:
        by_reason: dict[str, list[str]] = {}
        for tenant_id, reason in marks.items():
            by_reason.setdefault(reason, []).append(tenant_id)
        async with db.transaction() as s:
            for reason, ids in sorted(by_reason.items()):
                await mark_many(s, ids, f"resync: {reason}", now=now, spread_seconds=spread_seconds, rng=rng)
        for reason, ids in by_reason.items():
            report.marked[reason] += len(ids)
            DRIFT_MARKS.labels(reason).inc(len(ids))
    if report.orphans:
        log.warning("resync.orphans", count=len(report.orphans), machines=report.orphans[:20])
    log.info(
        "resync.done",
        machines=report.machines_listed,
        tenants=report.tenants,
        marked=dict(report.marked),
        partial=report.partial,
        fly_pages=report.fly_pages,
    )
    return report


async def full_resync(queue: ReconcileQueue, *, spread_seconds: float) -> int:
    """Mark every tenant in the background, spread over ``spread_seconds``."""
    return await queue.mark_all("full resync", explicit=False, spread_seconds=spread_seconds)


__all__ = ["ResyncReport", "drift_reason", "full_resync", "resync_once"]
