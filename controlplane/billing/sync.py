"""The billing sync job: read a marked subscription from Stripe again and make its tenant follow the
subscription as it is NOW -- never an event's snapshot, so duplicated, reordered or days-late
webhooks all end in the subscription's real state.

:func:`run_billing_sync_once` is what the worker process calls in its loop: claim due subscriptions
(leased), read each from Stripe (no transaction open during the call; retried inside
:class:`~controlplane.billing.stripe_client.StripeClient`, then by the queue with backoff), then ONE
transaction per subscription: finish the claim (conditional on the lease), find or create the
tenant, set plan (from the price, through the catalog's ``stripe_price_id``), billing status and
deadlines, and record the desired-state change (actor ``webhook``: Stripe is who changed it).

Which tenant a subscription belongs to: the tenant already linked to it; else the tenant named by the
checkout (``client_reference_id``, kept on the queue row), by ``metadata.external_id`` of the
subscription or of its customer. A checkout for a tenant linked to another (ended) subscription
re-links it (a resubscription); events of any other subscription never touch it. A checkout for an
unknown external id creates the tenant on the subscription's plan: ``pending`` until the reconciler
sees a usable key on BYOK plans, provisioned at once on platform-key plans.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.catalog import PlanCatalog
from controlplane.billing import entitlement
from controlplane.billing.changes import commit_change, lock_tenant, snapshot
from controlplane.billing.entitlement import BillingPolicy, billing_fields_for, parse_status, power_after
from controlplane.billing.stripe_client import (
    Customer,
    StripeClient,
    StripeNotFound,
    StripeRejected,
    StripeUnavailable,
    Subscription,
)
from controlplane.billing.sync_queue import BillingSyncQueue, SyncClaim
from controlplane.clock import Clock, SystemClock
from controlplane.db.models import Tenant
from controlplane.db.session import Database
from controlplane.enums import BillingStatus, DesiredPower, LifecycleState

log = structlog.get_logger(__name__)

#: Metadata key (on the subscription or the customer) naming the operator's external tenant id.
EXTERNAL_ID_KEY = "external_id"
ACTOR = "webhook"


def default_owner() -> str:
    """A lease owner name unique to this process."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


@dataclass(frozen=True, slots=True)
class SyncDeps:
    """What the sync job needs; the worker process builds it once."""

    db: Database
    stripe: StripeClient
    catalog: PlanCatalog
    policy: BillingPolicy = BillingPolicy()
    queue: BillingSyncQueue = field(default_factory=BillingSyncQueue)
    clock: Clock = field(default_factory=SystemClock)
    default_region: str = "iad"

    def plan_for_price(self, price_id: str | None) -> str | None:
        for plan in self.catalog.plans.values():
            if plan.stripe_price_id == price_id:
                return plan.id
        return None


@dataclass(slots=True)
class SyncReport:
    claimed: int = 0
    synced: int = 0  # read and applied (changed or not)
    changed: int = 0  # desired state changed
    retried: int = 0  # Stripe failed: back in the queue with backoff
    dropped: int = 0  # nothing to follow (no such subscription, no tenant to attach it to)
    lost: int = 0  # lease lost to another worker before the write


async def run_billing_sync_once(
    deps: SyncDeps, *, owner: str | None = None, limit: int = 20, concurrency: int = 4
) -> SyncReport:
    """Claim up to ``limit`` due subscriptions and sync each (see the module docstring)."""
    owner = owner or default_owner()
    report = SyncReport()
    async with deps.db.transaction() as session:
        claims = await deps.queue.claim(session, owner=owner, now=deps.clock.now(), limit=limit)
    report.claimed = len(claims)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(claim: SyncClaim) -> None:
        async with gate:
            await _sync_one(deps, claim, owner, report)

    async with asyncio.TaskGroup() as tasks:
        for claim in claims:
            tasks.create_task(one(claim))
    return report


async def _sync_one(deps: SyncDeps, claim: SyncClaim, owner: str, report: SyncReport) -> None:
    try:
        sub = await deps.stripe.retrieve_subscription(claim.subscription_id)
        customer = None
        if await _needs_customer(deps, sub, claim):
            customer = await deps.stripe.retrieve_customer(sub.customer_id)
    except StripeNotFound:
        log.warning("billing.subscription_not_found", subscription_id=claim.subscription_id)
        async with deps.db.transaction() as session:
            await deps.queue.finish(session, claim.subscription_id, owner=owner, now=deps.clock.now())
        report.dropped += 1
        return
    except (StripeUnavailable, StripeRejected) as exc:
        async with deps.db.transaction() as session:
            when = await deps.queue.retry(session, claim, owner=owner, now=deps.clock.now(), error=str(exc))
        log.warning(
            "billing.sync_retry",
            subscription_id=claim.subscription_id,
            attempts=claim.attempts + 1,
            error=str(exc),
            next_at=when.isoformat() if when else None,
        )
        report.retried += 1
        return

    now = deps.clock.now()
    async with deps.db.transaction() as session:
        if not await deps.queue.finish(session, claim.subscription_id, owner=owner, now=now):
            report.lost += 1
            return
        outcome = await apply_subscription(session, deps, sub, claim, customer, now)
    if outcome is None:
        report.dropped += 1
    else:
        report.synced += 1
        report.changed += int(outcome)


async def _needs_customer(deps: SyncDeps, sub: Subscription, claim: SyncClaim) -> bool:
    """Only when nothing else names the tenant is the customer's metadata read."""
    if claim.tenant_ref or sub.metadata.get(EXTERNAL_ID_KEY) or not sub.customer_id:
        return False
    async with deps.db.read() as session:
        linked = await session.scalar(select(Tenant.id).where(Tenant.stripe_subscription_id == sub.id))
    return linked is None


async def apply_subscription(
    session: AsyncSession,
    deps: SyncDeps,
    sub: Subscription,
    claim: SyncClaim,
    customer: Customer | None,
    now: datetime,
) -> bool | None:
    """Make the tenant follow ``sub``. ``True``/``False``: desired state changed or not; ``None``:
    there is no tenant to follow it (logged)."""
    status = parse_status(sub.status)
    plan = deps.plan_for_price(sub.price_id)
    if sub.price_id and plan is None:
        log.warning("billing.unknown_price", subscription_id=sub.id, price_id=sub.price_id)
    ref = (
        claim.tenant_ref
        or sub.metadata.get(EXTERNAL_ID_KEY)
        or (customer.metadata.get(EXTERNAL_ID_KEY) if customer else None)
    )

    tenant_id = await session.scalar(select(Tenant.id).where(Tenant.stripe_subscription_id == sub.id))
    if tenant_id is None and ref is not None:
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.external_id == ref))
    tenant = await lock_tenant(session, tenant_id) if tenant_id is not None else None
    reason = f"stripe subscription {sub.id} is {sub.status}" + (f" ({claim.reason})" if claim.reason else "")

    if tenant is None:
        return await _create_tenant(session, deps, sub, ref, plan, status, now, reason)

    if tenant.stripe_subscription_id not in (None, sub.id):
        relink = claim.tenant_ref == tenant.external_id and status not in entitlement.ENDED
        if not relink:
            log.info(
                "billing.not_current_subscription",
                subscription_id=sub.id,
                tenant_id=tenant.id,
                current=tenant.stripe_subscription_id,
            )
            return None
    if tenant.stripe_subscription_id is None and status in entitlement.ENDED:
        # A subscription that ended before it was ever linked says nothing about this tenant.
        log.info("billing.ended_subscription_not_linked", subscription_id=sub.id, tenant_id=tenant.id)
        return None
    before = snapshot(tenant)
    tenant.stripe_subscription_id = sub.id
    tenant.stripe_customer_id = sub.customer_id or tenant.stripe_customer_id
    if plan is not None:
        tenant.plan = plan
    fields = billing_fields_for(status, tenant, now, deps.policy)
    tenant.desired_power = power_after(tenant.billing_status, fields.billing_status, tenant.desired_power)
    tenant.billing_status = fields.billing_status
    tenant.billing_grace_until = fields.billing_grace_until
    tenant.destroy_after = fields.destroy_after
    changed = await commit_change(
        session, tenant, before, now, actor=ACTOR, action="billing.subscription_synced", reason=reason
    )
    log.info(
        "billing.synced",
        subscription_id=sub.id,
        tenant_id=tenant.id,
        status=sub.status,
        plan=tenant.plan,
        changed=changed,
    )
    return changed


async def _create_tenant(
    session: AsyncSession,
    deps: SyncDeps,
    sub: Subscription,
    ref: str | None,
    plan: str | None,
    status: BillingStatus,
    now: datetime,
    reason: str,
) -> bool | None:
    if ref is None:
        log.info("billing.no_tenant_yet", subscription_id=sub.id, status=sub.status)
        return None
    if plan is None:
        log.error(
            "billing.cannot_create_tenant", subscription_id=sub.id, reason="price not in the plan catalog"
        )
        return None
    if status in entitlement.ENDED:
        log.info("billing.ended_subscription_of_unknown_tenant", subscription_id=sub.id, status=sub.status)
        return None
    tenant = Tenant(
        external_id=ref,
        plan=plan,
        region=deps.default_region,
        stripe_customer_id=sub.customer_id or None,
        stripe_subscription_id=sub.id,
        billing_status=BillingStatus.none,
        lifecycle_state=LifecycleState.pending,  # the reconciler provisions once it can
        desired_power=DesiredPower.running,
        desired_rev=1,
        created_at=now,
        updated_at=now,
    )
    fields = billing_fields_for(status, tenant, now, deps.policy)
    tenant.billing_status = fields.billing_status
    tenant.billing_grace_until = fields.billing_grace_until
    tenant.destroy_after = fields.destroy_after
    session.add(tenant)
    await session.flush()
    await commit_change(
        session, tenant, None, now, actor=ACTOR, action="billing.tenant_created", reason=reason
    )
    log.info(
        "billing.tenant_created", subscription_id=sub.id, tenant_id=tenant.id, plan=plan, status=sub.status
    )
    return True


__all__ = [
    "ACTOR",
    "EXTERNAL_ID_KEY",
    "SyncDeps",
    "SyncReport",
    "apply_subscription",
    "default_owner",
    "run_billing_sync_once",
]
