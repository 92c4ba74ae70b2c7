"""Marking tenants "to reconcile": the enqueue half of the reconcile queue.

The queue holds tenant keys, not events (table ``reconcile_queue``). Entry points call
:func:`mark_for_reconcile` in the same transaction as their desired-state change. The claim/lease
half (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, conditional ``UPDATE ... RETURNING`` on SQLite)
belongs to the workers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import ReconcileItem, utcnow
from controlplane.db.types import UTCDateTime


def _insert_for(session: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(ReconcileItem)
    if dialect == "sqlite":
        return sqlite.insert(ReconcileItem)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


async def mark_for_reconcile(
    session: AsyncSession,
    tenant_id: str,
    reason: str,
    *,
    explicit: bool = True,
    now: datetime | None = None,
) -> None:
    """Ask for ``tenant_id`` to be reconciled.

    * not queued → queued, due now;
    * already waiting → stays one entry; an ``explicit`` mark (a user, operator or billing change)
      makes it due now even if it was backing off, and un-parks it (invariant 6: explicit actions are
      never blocked by background backoff); a background mark (``explicit=False``, e.g. the periodic
      resync) changes nothing;
    * being reconciled right now (leased) and marked ``explicit`` → flagged ``requeue`` so it is
      looked at again as soon as the current run ends (a background mark of a leased tenant changes
      nothing: the run in progress reads the world fresh anyway).
    """
    now = now or utcnow()
    stmt = _insert_for(session).values(
        tenant_id=tenant_id,
        run_after=now,
        reason=reason[:255],
        attempts=0,
        requeue=False,
        enqueued_at=now,
    )
    leased = ReconcileItem.__table__.c.lease_owner.isnot(None)
    if explicit:
        stmt = stmt.on_conflict_do_update(
            index_elements=[ReconcileItem.__table__.c.tenant_id],
            set_={
                "reason": stmt.excluded.reason,
                "run_after": case(
                    (
                        ReconcileItem.__table__.c.run_after > literal(now, type_=UTCDateTime()),
                        literal(now, type_=UTCDateTime()),
                    ),
                    else_=ReconcileItem.__table__.c.run_after,
                ),
                "requeue": case((leased, literal(True)), else_=ReconcileItem.__table__.c.requeue),
                "parked_reason": None,
            },
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=[ReconcileItem.__table__.c.tenant_id])
    await session.execute(stmt)


__all__ = ["mark_for_reconcile"]
