"""The billing grace period as time passes: the periodic job :func:`run_billing_grace_once`.

A ``past_due`` subscription keeps its agent running until ``billing_grace_until`` (set by the sync
job when it first sees ``past_due``); the reconciler stops the agent when that moment passes (it
reads the deadline and looks again then). Nothing arrives from Stripe at that moment, so this job
does what a person should see and hear of it, once each:

* on the last day: the ``grace_period_ending`` banner and a ``billing_grace.ending`` notice for the
  operator's mailer;
* at the end: the banner cleared, a ``billing_grace.expired`` notice, an audit row (actor
  ``system``) and an explicit reconcile mark, so the stop happens now rather than at the next look.

"Once" is the unique ``dedupe_key`` of each notice (tenant, grace deadline, step); the tenant row is
locked while deciding. Safe to run in several processes at once. Paying again is the sync job's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select

from controlplane import audit
from controlplane.billing.banners import sync_billing_banners
from controlplane.billing.changes import lock_tenant
from controlplane.billing.entitlement import BILLING_GRACE_ENDING_NOTICE
from controlplane.billing.notices import record_notice
from controlplane.db.models import Tenant
from controlplane.db.queue import mark_for_reconcile
from controlplane.db.session import Database
from controlplane.enums import BillingStatus

log = structlog.get_logger(__name__)

ACTOR = "system"


@dataclass(slots=True)
class BillingGraceReport:
    ending: int = 0  # last-day notices recorded
    expired: int = 0  # graces that ended (the reconciler stops those agents)


async def run_billing_grace_once(db: Database, now: datetime, *, limit: int = 5000) -> BillingGraceReport:
    report = BillingGraceReport()
    async with db.read() as session:
        tenant_ids = list(
            await session.scalars(
                select(Tenant.id)
                .where(
                    Tenant.billing_status == BillingStatus.past_due,
                    Tenant.billing_grace_until.isnot(None),
                    Tenant.billing_grace_until <= now + BILLING_GRACE_ENDING_NOTICE,
                )
                .order_by(Tenant.billing_grace_until)
                .limit(limit)
            )
        )
    for tenant_id in tenant_ids:
        async with db.transaction() as session:
            tenant = await lock_tenant(session, tenant_id)
            if tenant is None or tenant.billing_status is not BillingStatus.past_due:
                continue
            until = tenant.billing_grace_until
            if until is None:
                continue
            base = f"billing_grace:{tenant.id}:{until.isoformat()}"
            payload = {
                "tenant_id": tenant.id,
                "external_id": tenant.external_id,
                "grace_until": until.isoformat(),
            }
            expired = now >= until
            step = "expired" if expired else "ending"
            if await record_notice(
                session,
                tenant_id=tenant.id,
                kind=f"billing_grace.{step}",
                dedupe_key=f"{base}:{step}",
                payload=payload,
                now=now,
            ):
                if expired:
                    reason = f"billing grace over at {until:%Y-%m-%d %H:%M} UTC: payment still failing"
                    audit.record(
                        session,
                        actor=ACTOR,
                        action="billing.grace_expired",
                        tenant_id=tenant.id,
                        reason=reason,
                        after={"billing_status": "past_due", "grace_until": until.isoformat()},
                    )
                    await mark_for_reconcile(session, tenant.id, "billing grace over")
                    report.expired += 1
                    log.info("billing.grace_expired", tenant_id=tenant.id)
                else:
                    report.ending += 1
            await sync_billing_banners(session, tenant, now, actor=ACTOR, reason=f"billing grace {step}")
    return report


__all__ = ["BillingGraceReport", "run_billing_grace_once"]
