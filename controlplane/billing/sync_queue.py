"""The billing sync queue: Stripe subscriptions to read again. All SQL of ``billing_sync_queue``.

Same contract as the reconcile queue (DESIGN.md), keyed by subscription id:

* :meth:`BillingSyncQueue.mark` (the webhook, in its event transaction): not queued -> due now;
  waiting -> stays one entry, due now, keeps the checkout's tenant reference; being read right now
  (leased) -> ``requeue`` so it is read once more after the current run (the event may describe a
  change the running read did not see);
* :meth:`claim` leases due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, one conditional
  ``UPDATE ... RETURNING`` on SQLite); an expired lease makes the row claimable again;
* :meth:`finish` and :meth:`retry` are conditional on still holding the lease: ``finish`` deletes the
  row (or, if requeued meanwhile, makes it due again), ``retry`` frees it with a backoff delay from
  :class:`controlplane.retry.Backoff`.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.billing._sql import claim_leased, table_of
from controlplane.db.models import BillingSyncItem
from controlplane.db.types import UTCDateTime
from controlplane.retry import Backoff

_T = table_of(BillingSyncItem)


@dataclass(frozen=True, slots=True)
class SyncClaim:
    """A leased subscription to read again."""

    subscription_id: str
    customer_id: str | None
    tenant_ref: str | None
    last_event_id: str | None
    reason: str | None
    attempts: int


@functools.cache
def _mark_statement(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """The mark upsert, built once per dialect (on the webhook's request path: building DML costs
    more than running it)."""
    now = bindparam("now", type_=UTCDateTime())
    insert = postgresql.insert(_T) if dialect == "postgresql" else sqlite.insert(_T)
    stmt = insert.values(
        subscription_id=bindparam("subscription_id", type_=_T.c.subscription_id.type),
        customer_id=bindparam("customer_id", type_=_T.c.customer_id.type),
        tenant_ref=bindparam("tenant_ref", type_=_T.c.tenant_ref.type),
        last_event_id=bindparam("last_event_id", type_=_T.c.last_event_id.type),
        reason=bindparam("reason", type_=_T.c.reason.type),
        run_after=now,
        attempts=0,
        requeue=False,
        enqueued_at=now,
    )
    return stmt.on_conflict_do_update(
        index_elements=[_T.c.subscription_id],
        set_={
            "reason": stmt.excluded.reason,
            "last_event_id": func.coalesce(stmt.excluded.last_event_id, _T.c.last_event_id),
            "customer_id": func.coalesce(stmt.excluded.customer_id, _T.c.customer_id),
            "tenant_ref": func.coalesce(stmt.excluded.tenant_ref, _T.c.tenant_ref),
            "run_after": case((_T.c.run_after > now, now), else_=_T.c.run_after),
            "requeue": case((_T.c.lease_owner.isnot(None), literal(True)), else_=_T.c.requeue),
        },
    )


class BillingSyncQueue:
    """See the module docstring."""

    def __init__(
        self,
        *,
        lease: timedelta = timedelta(seconds=60),
        backoff: Backoff = Backoff(initial=5.0, factor=2.0, cap=900.0),
        rng: random.Random | None = None,
    ) -> None:
        self.lease = lease
        self.backoff = backoff
        self._rng = rng

    async def mark(
        self,
        session: AsyncSession,
        subscription_id: str,
        *,
        now: datetime,
        reason: str,
        customer_id: str | None = None,
        tenant_ref: str | None = None,
        event_id: str | None = None,
    ) -> None:
        """Ask for ``subscription_id`` to be read again (see the module docstring)."""
        params = {
            "subscription_id": subscription_id,
            "customer_id": customer_id,
            "tenant_ref": tenant_ref,
            "last_event_id": event_id,
            "reason": reason[:255],
            "now": now,
        }
        await session.execute(_mark_statement(session.get_bind().dialect.name), params)

    async def claim(
        self, session: AsyncSession, *, owner: str, now: datetime, limit: int = 20
    ) -> list[SyncClaim]:
        rows = await claim_leased(
            session,
            _T,
            key="subscription_id",
            due=_T.c.run_after <= now,
            order_by=[_T.c.run_after, _T.c.subscription_id],
            owner=owner,
            now=now,
            until=now + self.lease,
            limit=limit,
        )
        return [
            SyncClaim(
                subscription_id=r.subscription_id,
                customer_id=r.customer_id,
                tenant_ref=r.tenant_ref,
                last_event_id=r.last_event_id,
                reason=r.reason,
                attempts=r.attempts,
            )
            for r in rows
        ]

    async def finish(self, session: AsyncSession, subscription_id: str, *, owner: str, now: datetime) -> bool:
        """Done with a claim. ``False`` if the lease was lost (another worker has it now)."""
        mine = (_T.c.subscription_id == subscription_id) & (_T.c.lease_owner == owner)
        requeued = await session.execute(
            update(_T)
            .where(mine, _T.c.requeue.is_(True))
            .values(
                requeue=False,
                lease_owner=None,
                lease_expires_at=None,
                run_after=now,
                attempts=0,
                last_error=None,
            )
        )
        if requeued.rowcount:  # type: ignore[attr-defined]
            return True
        deleted = await session.execute(delete(_T).where(mine))
        return bool(deleted.rowcount)  # type: ignore[attr-defined]

    async def retry(
        self, session: AsyncSession, claim: SyncClaim, *, owner: str, now: datetime, error: str
    ) -> datetime | None:
        """Free a failed claim until ``now + backoff``; ``None`` if the lease was lost."""
        run_after = now + timedelta(seconds=self.backoff.delay(claim.attempts, self._rng))
        result = await session.execute(
            update(_T)
            .where(_T.c.subscription_id == claim.subscription_id, _T.c.lease_owner == owner)
            .values(
                lease_owner=None,
                lease_expires_at=None,
                requeue=False,
                attempts=_T.c.attempts + 1,
                run_after=run_after,
                last_error=error[:2000],
            )
        )
        return run_after if result.rowcount else None  # type: ignore[attr-defined]

    async def still_leased(self, session: AsyncSession, subscription_id: str, *, owner: str) -> bool:
        found = await session.scalar(
            select(func.count())
            .select_from(_T)
            .where(_T.c.subscription_id == subscription_id, _T.c.lease_owner == owner)
        )
        return bool(found)

    async def size(self, session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(_T)) or 0)


__all__ = ["BillingSyncQueue", "SyncClaim"]
