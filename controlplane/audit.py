"""The audit log: every state transition with who, what, why, before and after.

Actors: ``webhook``, ``api`` (``api:<user>`` when the dashboard names its user), ``cli:<user>``,
``worker``, ``poller``. Details pass through the redactor before they are stored, so a secret handed
in by mistake never reaches the table.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import AuditLog, utcnow
from controlplane.redaction import redact_text, redact_value

ACTOR = re.compile(r"^(webhook|api|worker|poller|system|(?:cli|api):[A-Za-z0-9._@-]{1,100})$")


def check_actor(actor: str) -> str:
    if not ACTOR.match(actor):
        raise ValueError(
            f"actor {actor!r} is not one of webhook, api, api:<user>, worker, poller, system or cli:<user>"
        )
    return actor


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    tenant_id: str | None = None,
    reason: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to the caller's transaction and return it."""
    row = AuditLog(
        at=utcnow(),
        tenant_id=tenant_id,
        actor=check_actor(actor),
        action=action,
        reason=redact_text(reason) if reason else None,
        before=redact_value(before) if before is not None else None,
        after=redact_value(after) if after is not None else None,
    )
    session.add(row)
    return row


async def delete_older_than(session: AsyncSession, before: datetime, *, batch: int = 5000) -> int:
    """Audit retention: delete up to ``batch`` rows written before ``before`` (the periodic job
    calls it until it returns less than ``batch``)."""
    ids = select(AuditLog.id).where(AuditLog.at < before).order_by(AuditLog.at).limit(batch)
    result = await session.execute(delete(AuditLog).where(AuditLog.id.in_(ids)))
    return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["ACTOR", "check_actor", "delete_older_than", "record"]
