"""The key grace period of migrated users: 30 days on the operator's key, then a usable own key or a
stop.

A tenant moved to a BYOK plan without a usable key (:func:`start_key_grace`, called by plan
migration) keeps running on the plan's platform fallback until ``key_grace_until``. The periodic
job :func:`run_key_grace_once` (called by the scheduler, once per period across processes -- and safe
to call from several at once):

* a usable key exists (or the plan is no longer BYOK) -> the grace ends (:func:`end_key_grace`; the
  key service also ends it the moment a key is saved), the agent re-renders on the user's key;
* day 7, 14, 21, 28 -> one reminder each: an announcement, a notice for the operator's mailer
  (:mod:`.notices`) and an audit row; from day 28 the ``grace_period_ending`` banner shows. If the
  job did not run for a while, only the latest due reminder is sent (the others are recorded as
  skipped): nobody gets three e-mails at once;
* day 30 over (the 31st day begins) -> the ``key_missing`` banner, an announcement, a notice and an
  audit row, once, and a reconcile mark: the reconciler stops the agent (no usable key and no grace
  left: ``workers/decide.py``).

"Once" is the unique ``dedupe_key`` of each notice (tenant, grace deadline, step), inserted in the
same transaction as the work that goes with it; the tenant row is locked while deciding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.catalog import PlanCatalog
from controlplane import audit
from controlplane.billing.banners import set_banner, sync_billing_banners
from controlplane.billing.changes import commit_change, lock_tenant, snapshot
from controlplane.billing.notices import record_notice
from controlplane.db.models import Announcement, ProviderKey, Tenant
from controlplane.db.queue import mark_for_reconcile
from controlplane.db.session import Database
from controlplane.enums import BannerKind, KeyStatus

log = structlog.get_logger(__name__)

KEY_GRACE = timedelta(days=30)
REMINDER_DAYS = (7, 14, 21, 28)
ACTOR = "system"
#: Key statuses that count as "a usable key" (the same the agent config routes with: not broken).
USABLE_KEY_STATUSES = (KeyStatus.usable, KeyStatus.warning, KeyStatus.unverified)


async def has_usable_key(session: AsyncSession, tenant_id: str) -> bool:
    found = await session.scalar(
        select(ProviderKey.id)
        .where(ProviderKey.tenant_id == tenant_id, ProviderKey.status.in_(USABLE_KEY_STATUSES))
        .limit(1)
    )
    return found is not None


async def start_key_grace(session: AsyncSession, tenant: Tenant, now: datetime) -> bool:
    """Start the grace if ``tenant`` (already moved to a BYOK plan) has no usable key and no grace
    running. The caller records the change (:func:`~controlplane.billing.changes.commit_change`)."""
    if tenant.key_grace_until is not None or await has_usable_key(session, tenant.id):
        return False
    tenant.key_grace_started_at = now
    tenant.key_grace_until = now + KEY_GRACE
    return True


async def end_key_grace(
    session: AsyncSession, tenant: Tenant, now: datetime, *, actor: str, reason: str
) -> bool:
    """End a running (or expired) key grace: the agent runs on the user's key from now on."""
    if tenant.key_grace_until is None:
        return False
    before = snapshot(tenant)
    tenant.key_grace_until = None
    tenant.key_grace_started_at = None
    await set_banner(
        session, tenant.id, BannerKind.key_missing, active=False, now=now, actor=actor, reason=reason
    )
    await commit_change(
        session, tenant, before, now, actor=actor, action="billing.key_grace_ended", reason=reason
    )
    log.info("billing.key_grace_ended", tenant_id=tenant.id, reason=reason)
    return True


@dataclass(slots=True)
class KeyGraceReport:
    reminders: int = 0
    stopped: int = 0
    ended: int = 0


async def run_key_grace_once(
    db: Database, now: datetime, *, catalog: PlanCatalog | None = None, limit: int = 5000
) -> KeyGraceReport:
    """One pass over the tenants in key grace (see the module docstring)."""
    report = KeyGraceReport()
    async with db.read() as session:
        tenant_ids = list(
            await session.scalars(
                select(Tenant.id)
                .where(Tenant.key_grace_until.isnot(None))
                .order_by(Tenant.key_grace_until)
                .limit(limit)
            )
        )
    for tenant_id in tenant_ids:
        async with db.transaction() as session:
            tenant = await lock_tenant(session, tenant_id)
            if tenant is None or tenant.key_grace_until is None:
                continue
            await _one(session, tenant, now, catalog, report)
    return report


async def _one(
    session: AsyncSession, tenant: Tenant, now: datetime, catalog: PlanCatalog | None, report: KeyGraceReport
) -> None:
    assert tenant.key_grace_until is not None
    plan = catalog.plans.get(tenant.plan) if catalog is not None else None
    if plan is not None and plan.key_mode != "byok":
        report.ended += await end_key_grace(
            session, tenant, now, actor=ACTOR, reason=f"plan {plan.id} runs on the platform key"
        )
        return
    if await has_usable_key(session, tenant.id):
        report.ended += await end_key_grace(
            session, tenant, now, actor=ACTOR, reason="a usable key was added"
        )
        return
    until = tenant.key_grace_until
    started = tenant.key_grace_started_at or until - KEY_GRACE
    base = f"key_grace:{tenant.id}:{until.isoformat()}"
    common = {
        "tenant_id": tenant.id,
        "external_id": tenant.external_id,
        "plan": tenant.plan,
        "grace_until": until.isoformat(),
    }

    if now >= until:
        if await record_notice(
            session,
            tenant_id=tenant.id,
            kind="key_grace.expired",
            dedupe_key=f"{base}:expired",
            payload=common,
            now=now,
        ):
            reason = "key grace over: no usable AI key after 30 days"
            await set_banner(
                session, tenant.id, BannerKind.key_missing, active=True, now=now, actor=ACTOR, reason=reason
            )
            session.add(
                Announcement(
                    tenant_id=tenant.id,
                    kind="key_grace_expired",
                    title="Your agent is stopped: add your AI key",
                    body="The 30 days on our AI key are over. Add your own provider key and your agent starts again.",
                    source=base,
                    created_at=now,
                )
            )
            audit.record(
                session,
                actor=ACTOR,
                action="billing.key_grace_expired",
                tenant_id=tenant.id,
                reason=reason,
                after={"grace_until": until.isoformat(), "key_missing": True},
            )
            # The reconciler stops the agent (no usable key, grace over): now, not at its next look.
            await mark_for_reconcile(session, tenant.id, "key grace over")
            await sync_billing_banners(session, tenant, now, actor=ACTOR, reason=reason)
            report.stopped += 1
            log.info("billing.key_grace_expired", tenant_id=tenant.id)
        return

    due = [day for day in REMINDER_DAYS if now >= started + timedelta(days=day)]
    if not due:
        return
    latest = due[-1]
    for day in due:
        inserted = await record_notice(
            session,
            tenant_id=tenant.id,
            kind="key_grace.reminder",
            dedupe_key=f"{base}:day{day}",
            payload={**common, "day": day, "days_left": (until - now).days, "skipped": day != latest},
            now=now,
            deliver=day == latest,
        )
        if inserted and day == latest:
            left = max(0, (until - now).days)
            session.add(
                Announcement(
                    tenant_id=tenant.id,
                    kind="key_grace_reminder",
                    title=f"Add your AI key: {left} days left",
                    body=(
                        f"Your agent runs on our AI key until {until:%Y-%m-%d}. Add your own provider key "
                        "before then to keep it running."
                    ),
                    source=base,
                    created_at=now,
                )
            )
            audit.record(
                session,
                actor=ACTOR,
                action="billing.key_grace_reminder",
                tenant_id=tenant.id,
                reason=f"key grace day {day}: {left} days left",
                after={"day": day, "grace_until": until.isoformat()},
            )
            report.reminders += 1
            log.info("billing.key_grace_reminder", tenant_id=tenant.id, day=day)
    await sync_billing_banners(session, tenant, now, actor=ACTOR, reason=f"key grace ends {until:%Y-%m-%d}")


__all__ = [
    "KEY_GRACE",
    "REMINDER_DAYS",
    "USABLE_KEY_STATUSES",
    "KeyGraceReport",
    "end_key_grace",
    "has_usable_key",
    "run_key_grace_once",
    "start_key_grace",
]
