"""The billing grace period as time passes: the periodic job :func:`run_billing_grace_once`.

A ``past_due`` subscription keeps its agent running until ``billing_grace_until`` (set by the sync
job when it first sees ``past_due``); nothing arrives from Stripe when that moment passes, so this
job looks: one day before the end the ``grace_period_ending`` banner goes up, at the end the agent is
stopped (desired power ``stopped``, actor ``system``). Paying again is the sync job's business.

Idempotent and safe to run in several processes at once: each tenant is re-read under a row lock
(PostgreSQL; SQLite serialises writers) and changed only if the rules (:mod:`.entitlement`) say
something different from what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select

from controlplane.billing.changes import commit_change, lock_tenant, snapshot
from controlplane.billing.entitlement import BILLING_GRACE_ENDING_NOTICE
from controlplane.db.models import Tenant
from controlplane.db.session import Database
from controlplane.enums import BillingStatus

log = structlog.get_logger(__name__)

ACTOR = "system"


@dataclass(slots=True)
class BillingGraceReport:
    examined: int = 0
    stopped: int = 0


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
            report.examined += 1
            before = snapshot(tenant)
            until = tenant.billing_grace_until
            reason = (
                f"billing grace ended {until:%Y-%m-%d %H:%M} UTC"
                if until and now >= until
                else "billing grace ends soon"
            )
            changed = await commit_change(
                session, tenant, before, now, actor=ACTOR, action="billing.grace_expired", reason=reason
            )
            if changed:
                report.stopped += 1
                log.info("billing.grace_expired", tenant_id=tenant.id)
    return report


__all__ = ["BillingGraceReport", "run_billing_grace_once"]
