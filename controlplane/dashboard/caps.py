"""Monthly service caps (web search, browser minutes, email, phone minutes) for the operator's
service proxies: ``check`` before spending, ``report`` after.

* Months are UTC calendar months (``"YYYY-MM"``); a counter row per tenant, service and month
  (``service_usage``).
* ``check`` is ONE indexed read: the tenant by its unique external id joined to its counter by
  primary key; the limit comes from the plan catalog in memory.
* ``report`` is idempotent per report id: the report row (primary key tenant + report id) and the
  counter change in the same transaction, so a proxy's retry never counts twice; the same id with
  a different service or amount is refused.
* A service the plan does not include (limit 0, e.g. phone on starter) answers ``included: false``
  and ``allowed: false`` with a sentence, never "0 of 0"; reports for it are refused.

Counting usage is not a desired-state change of the agent: no audit row or reconcile mark per
report (the report rows are the record).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.catalog import Plan, PlanCatalog
from controlplane.dashboard.tenants import find_tenant, plan_of
from controlplane.db.models import ServiceUsage, ServiceUsageReport, Tenant, utcnow
from controlplane.db.reads import autocommit_read
from controlplane.db.session import Database
from controlplane.db.upsert import upsert
from controlplane.enums import UsageService
from controlplane.errors import BadInput, NotFound, Refused
from controlplane.redaction import redact_text

REPORT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_AMOUNT = 1_000_000
#: How far a proxy's clock may run ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)

_REPORT_ID = re.compile(REPORT_ID_PATTERN)

#: The plan's monthly cap for each service (``agents_config.catalog.ServiceCaps``) and its unit.
CAP_FIELD: dict[UsageService, str] = {
    UsageService.web_search: "web_searches_per_month",
    UsageService.browser_minutes: "browser_minutes_per_month",
    UsageService.email: "emails_per_month",
    UsageService.phone_minutes: "phone_minutes_per_month",
}
SERVICE_NAME: dict[UsageService, str] = {
    UsageService.web_search: "web searches",
    UsageService.browser_minutes: "browser minutes",
    UsageService.email: "emails",
    UsageService.phone_minutes: "phone calls",
}


def month_of(at: datetime) -> str:
    """The UTC month ``at`` falls in, ``"YYYY-MM"``."""
    return at.astimezone(UTC).strftime("%Y-%m")


def next_month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def cap_limit(plan: Plan, service: UsageService) -> int:
    limit: int = getattr(plan.caps, CAP_FIELD[service])
    return limit


@dataclass(frozen=True, slots=True)
class CapState:
    """The answer to "may this tenant use ``amount`` more of ``service`` now?"."""

    service: UsageService
    included: bool
    allowed: bool
    used: int | None  # None when the plan does not include the service
    limit: int | None
    remaining: int | None
    period: str
    resets_at: datetime
    reason: str | None  # a sentence when not allowed


@dataclass(frozen=True, slots=True)
class ReportResult:
    counted: bool  # False: this report id was already counted (a retry)
    state: CapState


# Built once: the hot path only binds values (building a statement costs more than running it).
_CHECK = (
    select(Tenant.plan, ServiceUsage.used)
    .select_from(Tenant)
    .outerjoin(
        ServiceUsage,
        and_(
            ServiceUsage.tenant_id == Tenant.id,
            ServiceUsage.service == bindparam("service", type_=ServiceUsage.__table__.c.service.type),
            ServiceUsage.period == bindparam("period"),
        ),
    )
    .where(Tenant.external_id == bindparam("external_id"))
)


def _state(plan: Plan, service: UsageService, used: int, amount: int, now: datetime) -> CapState:
    limit = cap_limit(plan, service)
    period, resets = month_of(now), next_month_start(now)
    name = SERVICE_NAME[service]
    if limit <= 0:
        return CapState(
            service,
            included=False,
            allowed=False,
            used=None,
            limit=None,
            remaining=None,
            period=period,
            resets_at=resets,
            reason=f"{name.capitalize()} are not included in the {plan.display_name} plan.",
        )
    remaining = max(0, limit - used)
    allowed = used + amount <= limit
    reason = None
    if not allowed:
        reason = (
            f"The {plan.display_name} plan's {limit} {name} this month are used up; "
            f"they reset on {resets.date().isoformat()}."
            if remaining == 0
            else f"Only {remaining} of the {plan.display_name} plan's {limit} {name} are left this month."
        )
    return CapState(service, True, allowed, used, limit, remaining, period, resets, reason)


class ServiceCaps:
    """Cap checks and usage reports of the operator's service proxies."""

    def __init__(self, db: Database, catalog: PlanCatalog, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._catalog = catalog
        self._clock = clock

    async def check(self, external_id: str, service: UsageService, amount: int = 1) -> CapState:
        """Allowed, used, limit this month: one indexed read."""
        _check_amount(amount)
        now = self._clock()
        period = month_of(now)
        params = {"external_id": external_id, "service": service, "period": period}
        async with autocommit_read(self._db) as conn:
            row = (await conn.execute(_CHECK, params)).first()
        if row is None:
            raise NotFound("external_id", "no tenant with this external id")
        plan_id, used = row
        plan = plan_of(self._catalog, plan_id)
        return _state(plan, service, int(used or 0), amount, now)

    async def overview(self, external_id: str) -> list[CapState]:
        """This month's state of every service: one indexed read."""
        now = self._clock()
        stmt = (
            select(Tenant.plan, ServiceUsage.service, ServiceUsage.used)
            .select_from(Tenant)
            .outerjoin(
                ServiceUsage,
                and_(ServiceUsage.tenant_id == Tenant.id, ServiceUsage.period == month_of(now)),
            )
            .where(Tenant.external_id == external_id)
        )
        async with autocommit_read(self._db) as conn:
            rows = (await conn.execute(stmt)).all()
        if not rows:
            raise NotFound("external_id", "no tenant with this external id")
        plan = plan_of(self._catalog, rows[0][0])
        used = {service: int(count) for _, service, count in rows if service is not None}
        return [_state(plan, service, used.get(service, 0), 1, now) for service in UsageService]

    async def report(
        self,
        external_id: str,
        service: UsageService,
        *,
        report_id: str,
        amount: int,
        occurred_at: datetime | None = None,
    ) -> ReportResult:
        """Count ``amount`` of ``service`` once per ``report_id`` in the month it occurred (UTC)."""
        if not _REPORT_ID.match(report_id):
            raise BadInput("report_id", "must be 1-128 characters: letters, digits and . _ : -")
        if redact_text(report_id) != report_id:  # stored as given: never a pasted key
            raise BadInput("report_id", "looks like a key or token; use the proxy's own id of the usage")
        _check_amount(amount)
        now = self._clock()
        at = occurred_at or now
        if at.tzinfo is None:
            raise BadInput("occurred_at", "needs a time zone (e.g. 2026-11-21T12:00:00Z)")
        if at > now + CLOCK_SKEW:
            raise BadInput("occurred_at", "is in the future")
        if at < month_start(month_start(now) - timedelta(days=1)):
            raise BadInput(
                "occurred_at", "is older than the previous month; such usage can no longer be counted"
            )
        period = month_of(at)
        async with self._db.transaction() as session:
            tenant = await find_tenant(session, external_id)
            plan = plan_of(self._catalog, tenant.plan)
            if cap_limit(plan, service) <= 0:
                raise Refused(
                    "service", f"{SERVICE_NAME[service]} are not included in the {plan.display_name} plan"
                )
            counted = await _insert_report(session, tenant.id, report_id, service, period, amount, now)
            if not counted:
                earlier = await session.get(ServiceUsageReport, (tenant.id, report_id))
                if earlier is None or earlier.service is not service or earlier.amount != amount:
                    raise Refused("report_id", "was already used for a different report")
            else:
                await _add_usage(session, tenant.id, service, period, amount, now)
            used = await session.scalar(
                select(ServiceUsage.used).where(
                    ServiceUsage.tenant_id == tenant.id,
                    ServiceUsage.service == service,
                    ServiceUsage.period == month_of(now),
                )
            )
        return ReportResult(counted, _state(plan, service, int(used or 0), 1, now))


def _check_amount(amount: int) -> None:
    if not 1 <= amount <= MAX_AMOUNT:
        raise BadInput("amount", f"must be between 1 and {MAX_AMOUNT}")


async def _insert_report(
    session: AsyncSession,
    tenant_id: str,
    report_id: str,
    service: UsageService,
    period: str,
    amount: int,
    now: datetime,
) -> bool:
    """Insert the report row unless its id is known; ``True`` if it was new."""
    stmt = (
        upsert(session, ServiceUsageReport)
        .values(
            tenant_id=tenant_id,
            report_id=report_id,
            service=service,
            period=period,
            amount=amount,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "report_id"])
        .returning(ServiceUsageReport.report_id)
    )
    return (await session.execute(stmt)).first() is not None


async def _add_usage(
    session: AsyncSession, tenant_id: str, service: UsageService, period: str, amount: int, now: datetime
) -> None:
    stmt = upsert(session, ServiceUsage).values(
        tenant_id=tenant_id, service=service, period=period, used=amount, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "service", "period"],
        set_={"used": ServiceUsage.__table__.c.used + stmt.excluded.used, "updated_at": now},
    )
    await session.execute(stmt)


__all__ = [
    "CAP_FIELD",
    "MAX_AMOUNT",
    "REPORT_ID_PATTERN",
    "CapState",
    "ReportResult",
    "ServiceCaps",
    "cap_limit",
    "month_of",
    "next_month_start",
]
