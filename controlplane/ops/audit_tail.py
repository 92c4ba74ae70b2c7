"""``controlplane audit tail``: the audit log, filtered, newest last, optionally followed.

Following polls by time, not by id: a PostgreSQL identity is handed out when a row is inserted, not
when its transaction commits, so a row with a lower id can appear after a higher one. Each poll reads
the rows written in the last :data:`SETTLE` before the newest one already seen, and skips the ids
already printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import AuditLog, Tenant
from controlplane.errors import BadInput

#: How far back (before the newest row seen) a follow poll looks for late commits.
SETTLE = timedelta(seconds=60)
_RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_FILTER = re.compile(r"^[A-Za-z0-9._@:-]{1,128}\*?$")


def parse_since(value: str, now: datetime) -> datetime:
    """``30s``, ``15m``, ``2h``, ``7d`` before ``now``, or an ISO 8601 date or time (UTC if naive)."""
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(
            "--since", "not a time: give 30s, 15m, 2h, 7d or an ISO 8601 date/time (2026-12-01T09:00)"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def check_filter(value: str | None, field: str) -> str | None:
    """An exact value, or a prefix ending with ``*`` (``cli:*``, ``tenant.*``)."""
    if value is not None and not _FILTER.match(value):
        raise BadInput(field, "letters, digits and . _ @ : - only, optionally ending with * (a prefix)")
    return value


@dataclass(frozen=True, slots=True)
class AuditFilter:
    tenant_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None

    def apply(self, stmt: Any) -> Any:
        if self.tenant_id is not None:
            stmt = stmt.where(AuditLog.tenant_id == self.tenant_id)
        for column, value in ((AuditLog.actor, self.actor), (AuditLog.action, self.action)):
            if value is None:
                continue
            if value.endswith("*"):
                prefix = value[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                stmt = stmt.where(column.like(prefix + "%", escape="\\"))
            else:
                stmt = stmt.where(column == value)
        if self.since is not None:
            stmt = stmt.where(AuditLog.at >= self.since)
        return stmt


def _select() -> Any:
    return select(AuditLog, Tenant.external_id).outerjoin(Tenant, Tenant.id == AuditLog.tenant_id)


def _view(row: AuditLog, external_id: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "tenant": external_id,
        "tenant_id": row.tenant_id,
        "actor": row.actor,
        "action": row.action,
        "reason": row.reason,
        "before": row.before,
        "after": row.after,
    }


async def tail(session: AsyncSession, where: AuditFilter, *, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` rows matching, oldest first."""
    stmt = where.apply(_select()).order_by(AuditLog.id.desc()).limit(limit)
    rows = (await session.execute(stmt)).all()
    return [_view(row, external_id) for row, external_id in reversed(rows)]


async def newer(
    session: AsyncSession, where: AuditFilter, *, newest_at: datetime | None, seen: set[int]
) -> list[dict[str, Any]]:
    """Rows not in ``seen`` written since ``newest_at - SETTLE``, in id order (a follow poll)."""
    stmt = where.apply(_select())
    if newest_at is not None:
        stmt = stmt.where(AuditLog.at >= newest_at - SETTLE)
    rows = (await session.execute(stmt.order_by(AuditLog.id).limit(10_000))).all()
    return [_view(row, external_id) for row, external_id in rows if row.id not in seen]


__all__ = ["SETTLE", "AuditFilter", "check_filter", "newer", "parse_since", "tail"]
